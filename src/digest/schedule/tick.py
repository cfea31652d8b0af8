"""One scheduler tick: build and enqueue every list edition that is due, send on SQLite.

A tick is idempotent: the (list, period) unique key means a second tick, a
restart catch-up or a second scheduler finds the edition already there.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field

from digest.build.edition import build_edition
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db.models import Edition
from digest.db.session import Database
from digest.dispatch.worker import Dispatcher
from digest.gather import gather_sources
from digest.group import group_recent
from digest.schedule.periods import current_period

log = logging.getLogger(__name__)

# A period whose fire time is further back than this is not caught up on after downtime.
DEFAULT_GRACE = dt.timedelta(hours=6)


@dataclass
class TickReport:
    now: str
    built: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    sent: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def tick(database: Database, settings: Settings, now: dt.datetime, *, send: bool | None = None,
         grace: dt.timedelta = DEFAULT_GRACE) -> TickReport:
    report = TickReport(now=now.isoformat())
    due = []
    with database.session() as session:
        lists = audience_queries.sync_lists(session, settings.lists)
        for conf in settings.lists:
            period = current_period(conf.schedule, conf.timezone, now)
            exists = session.query(Edition.id).filter_by(list_id=lists[conf.slug].id, period=period.key).first()
            if exists:
                continue
            if now - period.starts_at > grace:
                report.skipped.append({"list": conf.slug, "period": period.key,
                                       "reason": f"fired {now - period.starts_at} ago, past the {grace} grace"})
                continue
            due.append((conf.slug, period))
    if due:
        gather_sources(database, settings, now=now)
        group_recent(database, settings, now=now)
        for slug, period in due:
            built = build_edition(database, settings, slug, now=now, period=period)
            report.built.append(built.as_dict())
    if send if send is not None else database.is_sqlite:
        report.sent = Dispatcher(database, settings).run().sent
    return report
