"""Lists as files: `subscribers/` holds list definitions (TOML) and one subscriber CSV per list.

    subscribers/
      daily.csv          subscribers of the list `daily` (header: email[,name,timezone,send_hour,topics,locale,…])
      weekly.toml        a list definition: the keys of a [[lists]] entry; slug defaults to the file name
      weekly.csv

A list defined in digest.toml wins over a file of the same slug (reported). Syncing is idempotent: a
second run changes nothing, a bad row or file is reported with its line and the good ones still import,
and the rows count as confirmed (the files are the admin's own records of consent).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from digest.audience.subscribers import ImportReport, import_csv
from digest.config import ListConfig, Settings
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


def load_definitions(folder: Path, configured: list[ListConfig]) -> tuple[list[ListConfig], list[tuple[str, str]]]:
    """List definitions from folder/*.toml, minus those digest.toml already defines; with per-file problems."""
    known = {c.slug for c in configured}
    found: list[ListConfig] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append((path.name, f"not valid TOML: {exc}"))
            continue
        entries: list[Any] = data["lists"] if isinstance(data.get("lists"), list) else [{"slug": path.stem, **data}]
        for entry in entries:
            try:
                conf = ListConfig(**entry)
            except (ValidationError, TypeError) as exc:
                problems.append((path.name, _first_error(exc)))
                continue
            if conf.slug in known:
                problems.append((path.name, f"list {conf.slug!r} is also defined in digest.toml, which wins"))
                continue
            known.add(conf.slug)
            found.append(conf)
    return found, problems


def sync_folder(database: Database, settings: Settings, folder: Path) -> SyncReport:
    """Define the file lists, then import every <slug>.csv found for a known list."""
    extra, problems = load_definitions(folder, settings.lists)
    merged = settings.model_copy(update={"lists": [*settings.lists, *extra]})
    report = SyncReport(defined=[c.slug for c in extra], problems=problems)
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


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}"
    return str(exc)
