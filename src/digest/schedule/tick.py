"""One scheduler tick: build and enqueue every list edition that is due, and send on SQLite.

A tick is idempotent: the (list, period) unique key means a second tick, a restart catch-up or a second
scheduler finds the edition already there. Deliveries carry their due instant (the subscriber's local send
hour), so every tick also sends what has come due since the last one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from digest.build.edition import build_due
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db import editions as edition_queries
from digest.db.session import Database, exclusive
from digest.dispatch.worker import Dispatcher
from digest.gather import gather_sources
from digest.group import group_recent
from digest.pipeline import shifted_clock
from digest.schedule.periods import current_period

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    now: str
    built: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def tick(database: Database, settings: Settings, now: dt.datetime, *, send: bool | None = None,
         should_stop: Callable[[], bool] = lambda: False) -> TickReport:
    report = TickReport(now=now.isoformat())
    grace = dt.timedelta(hours=settings.schedule.grace_hours)
    due = []
    with database.session() as session:
        lists = audience_queries.sync_lists(session, settings.lists)
        for conf in settings.lists:
            period = current_period(conf.schedule, conf.timezone, now)
            if edition_queries.edition_exists(session, lists[conf.slug].id, period.key):
                continue
            late = now - period.starts_at
            if late > grace:
                reason = f"due at {period.starts_at:%Y-%m-%d %H:%M} UTC, {_hours(late)} late, past the {_hours(grace)} grace"
                edition_queries.record_missed(session, lists[conf.slug], period.key, now, reason)
                report.skipped.append({"list": conf.slug, "period": period.key, "reason": reason})
                log.warning("edition %s/%s skipped: %s", conf.slug, period.key, reason)
                continue
            due.append((conf.slug, period))
    if due:
        with exclusive(database):
            gather_sources(database, settings, now=now)
            group_recent(database, settings, now=now)
            for slug, period in due:
                for built in build_due(database, settings, slug, now=now, period=period):
                    report.built.append(built.as_dict())
    if send if send is not None else database.is_sqlite:
        report.sent = Dispatcher(database, settings, clock=shifted_clock(now)).run(should_stop=should_stop).sent
    return report


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"
