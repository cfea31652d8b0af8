"""The orchestrator: gather → group → build → enqueue → dispatch, wired and nothing else.

Each stage is a function of its own module taking plain data; this module only
decides the order and collects their reports into one `RunReport`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from digest.build.edition import BuildReport, build_due
from digest.config import Settings
from digest.db.models import utcnow
from digest.db.session import Database, exclusive, open_database
from digest.dispatch.worker import Dispatcher, DispatchReport
from digest.gather import SourceOutcome, gather_sources
from digest.group import GroupReport, group_recent


@dataclass
class RunReport:
    sources: list[SourceOutcome] = field(default_factory=list)
    group: GroupReport | None = None
    build: BuildReport | None = None
    extra_builds: list[BuildReport] = field(default_factory=list)  # e.g. the weekly edition on its day
    dispatch: DispatchReport | None = None

    @property
    def failed_sources(self) -> list[SourceOutcome]:
        return [s for s in self.sources if not s.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": [asdict(s) for s in self.sources],
            "group": asdict(self.group) if self.group else None,
            "edition": self.build.as_dict() if self.build else None,
            "extra_editions": [b.as_dict() for b in self.extra_builds],
            "dispatch": self.dispatch.as_dict() if self.dispatch else None,
        }


@dataclass
class Hooks:
    """Progress callbacks for interactive runs; all optional."""

    source_done: Callable[[SourceOutcome], None] | None = None
    stage: Callable[[str], None] | None = None
    sent: Callable[[DispatchReport], None] | None = None


def connect(settings: Settings) -> Database:
    return open_database(settings.database.url, echo=settings.database.echo)


def run(settings: Settings, slug: str, *, send: bool = True, now: dt.datetime | None = None,
        database: Database | None = None, hooks: Hooks | None = None) -> RunReport:
    """One list's current edition end to end; running it again in the same period sends nothing new."""
    settings.get_list(slug)  # fail fast on an unknown list
    hooks = hooks or Hooks()
    now = now or utcnow()
    own = database is None
    database = database or connect(settings)
    report = RunReport()
    try:
        with exclusive(database):  # one gather → group → build at a time per database
            _stage(hooks, "gather")
            report.sources = gather_sources(database, settings, now=now, progress=hooks.source_done)
            _stage(hooks, "group")
            report.group = group_recent(database, settings, now=now)
            _stage(hooks, "build")
            report.build, *report.extra_builds = build_due(database, settings, slug, now=now)
        if send:
            _stage(hooks, "dispatch")
            edition_ids = [b.edition_id for b in (report.build, *report.extra_builds)]
            report.dispatch = Dispatcher(database, settings, clock=shifted_clock(now)).run(
                edition_ids=edition_ids, progress=hooks.sent)
        return report
    finally:
        if own:
            database.dispose()


def shifted_clock(start: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that reads `start` now and advances in real time (a run "as of" another instant)."""
    offset = start - utcnow()
    return lambda: utcnow() + offset


def _stage(hooks: Hooks, name: str) -> None:
    if hooks.stage:
        hooks.stage(name)
