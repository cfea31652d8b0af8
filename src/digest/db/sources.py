"""Queries about sources and their health."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config import SourceConfig
from digest.db.models import Source


def sync_sources(session: Session, configured: list[SourceConfig]) -> list[Source]:
    """Make the sources table match the config (by name); sources dropped from the config are disabled.

    A URL changed in the config replaces the stored one (and brings a retired source back); a URL moved by a
    301/308 stays moved for as long as the config still names the old one.
    """
    existing = {s.name: s for s in session.scalars(select(Source))}
    _insert_new(session, [conf for conf in configured if conf.name not in existing], existing)
    result = []
    for conf in configured:
        source = existing.pop(conf.name, None) or _insert(session, conf)
        if source.config_url != conf.url:
            source.url = source.config_url = conf.url
            source.etag = source.last_modified = None
            source.retired_at = source.next_fetch_at = None
        source.kind, source.topics, source.weight, source.enabled = conf.kind, list(conf.topics), conf.weight, conf.enabled
        result.append(source)
    for leftover in existing.values():
        leftover.enabled = False
    session.flush()
    return result


def _insert_new(session: Session, new: list[SourceConfig], existing: dict[str, Source]) -> None:
    """All new sources in one savepoint (a first run over hundreds of sources); if another process inserted one
    of them first, nothing is added here and `_insert` goes one by one."""
    if len(new) < 2:
        return
    rows = {conf.name: _row(conf) for conf in new}
    try:
        with session.begin_nested():
            session.add_all(rows.values())
    except IntegrityError:
        return
    existing.update(rows)


def _row(conf: SourceConfig) -> Source:
    return Source(name=conf.name, url=conf.url, config_url=conf.url, kind=conf.kind, topics=list(conf.topics),
                  weight=conf.weight, enabled=conf.enabled, consecutive_failures=0, items_seen=0)


def _insert(session: Session, conf: SourceConfig) -> Source:
    """A new source row; when another process inserted it first (two schedulers racing), that row."""
    source = _row(conf)
    try:
        with session.begin_nested():
            session.add(source)
    except IntegrityError:
        return session.scalars(select(Source).where(Source.name == conf.name)).one()
    return source


def record_success(source: Source, now: dt.datetime, *, etag: str | None, last_modified: str | None, seen: int,
                   status: int | None = None) -> None:
    """A fetch that worked; `seen` counts items this source carried for the first time."""
    source.last_success_at = now
    source.consecutive_failures = 0
    source.last_error = None
    source.last_status = status
    source.next_fetch_at = None
    source.etag = etag or source.etag
    source.last_modified = last_modified or source.last_modified
    source.items_seen = (source.items_seen or 0) + seen


def record_failure(source: Source, now: dt.datetime, reason: str, *, status: int | None = None) -> None:
    source.last_error = reason[:1000]
    source.last_error_at = now
    source.last_status = status
    source.consecutive_failures = (source.consecutive_failures or 0) + 1


def retire(source: Source, now: dt.datetime, reason: str) -> None:
    """410 Gone: never fetched again until its URL changes in the config."""
    record_failure(source, now, reason, status=410)
    source.retired_at = now


def defer(source: Source, now: dt.datetime, until: dt.datetime, reason: str, *, status: int | None = None) -> None:
    """429/503 with Retry-After: not fetched again before `until`."""
    record_failure(source, now, reason, status=status)
    source.next_fetch_at = until


def move(source: Source, url: str) -> None:
    """A permanent redirect: fetch the new URL from now on."""
    source.url = url


def health(source: Source, now: dt.datetime | None = None) -> dict[str, Any]:
    """One source's health as plain data (`digest sources` and its --json share it)."""
    now = now or dt.datetime.now(dt.UTC)
    if not source.enabled:
        state = "disabled"
    elif source.retired_at:
        state = "retired"
    elif source.next_fetch_at and source.next_fetch_at > now:
        state = "waiting"
    elif source.consecutive_failures:
        state = "failing"
    else:
        state = "ok" if source.last_success_at else "new"
    return {"name": source.name, "url": source.url, "kind": source.kind, "enabled": source.enabled, "state": state,
            "last_success_at": source.last_success_at, "last_error": source.last_error,
            "last_error_at": source.last_error_at, "last_status": source.last_status,
            "consecutive_failures": source.consecutive_failures, "items_seen": source.items_seen,
            "retired_at": source.retired_at, "next_fetch_at": source.next_fetch_at}


def sources_by_id(session: Session, ids: list[int]) -> dict[int, Source]:
    found: dict[int, Source] = {}
    for start in range(0, len(ids), 500):
        found.update((s.id, s) for s in session.scalars(select(Source).where(Source.id.in_(ids[start:start + 500]))))
    return found


def all_sources(session: Session) -> list[Source]:
    return list(session.scalars(select(Source).order_by(Source.name)))
