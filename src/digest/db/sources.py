"""Queries about sources and their health."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import SourceConfig
from digest.db.models import Source


def sync_sources(session: Session, configured: list[SourceConfig]) -> list[Source]:
    """Make the sources table match the config (by name); sources dropped from the config are disabled."""
    existing = {s.name: s for s in session.scalars(select(Source))}
    result = []
    for conf in configured:
        source = existing.pop(conf.name, None)
        if source is None:
            source = Source(name=conf.name, url=conf.url, kind=conf.kind, topics=list(conf.topics), weight=conf.weight,
                            enabled=conf.enabled, consecutive_failures=0, items_seen=0)
            session.add(source)
        else:
            if source.url != conf.url and not source.last_success_at:
                source.url = conf.url
            source.kind, source.topics, source.weight, source.enabled = conf.kind, list(conf.topics), conf.weight, conf.enabled
        result.append(source)
    for leftover in existing.values():
        leftover.enabled = False
    session.flush()
    return result


def record_success(source: Source, now: dt.datetime, *, etag: str | None, last_modified: str | None, seen: int) -> None:
    source.last_success_at = now
    source.consecutive_failures = 0
    source.last_error = None
    source.etag = etag or source.etag
    source.last_modified = last_modified or source.last_modified
    source.items_seen = (source.items_seen or 0) + seen


def record_failure(source: Source, now: dt.datetime, reason: str) -> None:
    source.last_error = reason[:1000]
    source.last_error_at = now
    source.consecutive_failures = (source.consecutive_failures or 0) + 1


def all_sources(session: Session) -> list[Source]:
    return list(session.scalars(select(Source).order_by(Source.name)))
