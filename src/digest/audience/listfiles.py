"""Lists as files: `subscribers/` holds list definitions (TOML) and one subscriber CSV per list.

    subscribers/
      daily.csv          subscribers of the list `daily` (header: email[,name,timezone,send_hour,topics,locale,…])
      weekly.toml        a list definition: the keys of a [[lists]] entry; slug defaults to the file name
      weekly.csv

A list defined in digest.toml wins over a file of the same slug (reported). The lists of `audience.folder`
(default `subscribers/` next to digest.toml) are known to every command, not only to `sync`: `load_settings`
adds them to `settings.lists`. Syncing is idempotent: a
second run changes nothing, a bad row or file is reported with its line and the good ones still import,
and the rows count as confirmed (the files are the admin's own records of consent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.audience.subscribers import ImportReport, import_csv
from digest.config import Settings, load_list_files
from digest.db import audience as queries
from digest.db.session import Database


@dataclass
class SyncReport:
    imported: dict[str, ImportReport] = field(default_factory=dict)  # list slug -> its CSV's report
    defined: list[str] = field(default_factory=list)  # lists that came from TOML files
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, problem) for whole files
    ignored: list[str] = field(default_factory=list)  # CSV files with no list

    def as_dict(self) -> dict[str, Any]:
        return {"lists": {slug: r.as_dict() for slug, r in self.imported.items()}, "defined_by_files": self.defined,
                "file_problems": [{"file": f, "problem": p} for f, p in self.problems], "ignored_files": self.ignored}


def sync_folder(database: Database, settings: Settings, folder: Path) -> SyncReport:
    """Define the file lists, then import every <slug>.csv found for a known list.

    When `folder` is `audience.folder`, its lists are in `settings.lists` already (load_settings put them there);
    they are read again here so the report says which lists the files define and what is wrong with them.
    """
    configured = [c for c in settings.lists if c.slug not in settings.file_lists]
    extra, problems = load_list_files(folder, configured)
    merged = settings.model_copy(update={"lists": [*configured, *(conf for conf, _ in extra)]})
    report = SyncReport(defined=[conf.slug for conf, _ in extra], problems=problems)
    with database.session() as session:
        lists = queries.sync_lists(session, merged.lists)
    for conf in merged.lists:
        csv_file = folder / f"{conf.slug}.csv"
        if not csv_file.exists():
            continue
        try:
            text = csv_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            report.problems.append((csv_file.name, f"not UTF-8 text (byte {exc.start}); save the CSV as UTF-8"))
            continue
        with database.session() as session:
            mailing_list = session.merge(lists[conf.slug])
            result = import_csv(session, mailing_list, text.splitlines(keepends=True), confirmed=True,
                                source=f"sync:{csv_file.name}")
        report.imported[conf.slug] = result
    report.ignored = sorted(p.name for p in folder.glob("*.csv") if p.stem not in {c.slug for c in merged.lists})
    return report
