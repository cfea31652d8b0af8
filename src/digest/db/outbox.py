"""Queries for the outbox: transactional mails queued with the change that asks for them, claimed with a lease."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from digest.db.models import OutboxMail, utcnow


_insert = OutboxMail.__table__.insert()


class Claimed(NamedTuple):
    id: int
    kind: str
    subscriber_id: int
    list_id: int
    attempts: int


def queue(session: Session, pending: Iterable[tuple[int, int]], *, kind: str = "confirm",
          now: dt.datetime | None = None) -> int:
    """Queue one mail per (subscriber_id, list_id), in the caller's transaction."""
    at = now or utcnow()
    rows = [{"kind": kind, "subscriber_id": s, "list_id": lst, "created_at": at, "not_before": at, "attempts": 0,
             "last_error": ""} for s, lst in pending]
    if rows:
        session.connection().execute(_insert, rows)
    return len(rows)


def claim(session: Session, now: dt.datetime, lease: dt.timedelta, limit: int) -> list[Claimed]:
    """Take up to `limit` due mails for `lease`; a mailer that dies leaves them to be taken again after it.

    SKIP LOCKED lets several mailers share PostgreSQL; SQLite serialises writers and ignores the clause.
    """
    due = (select(OutboxMail.id)
           .where(OutboxMail.failed_at.is_(None), OutboxMail.not_before <= now,
                  (OutboxMail.claimed_until.is_(None)) | (OutboxMail.claimed_until < now))
           .order_by(OutboxMail.id).limit(limit).with_for_update(skip_locked=True))
    rows = session.execute(update(OutboxMail).where(OutboxMail.id.in_(due)).values(claimed_until=now + lease)
                           .returning(OutboxMail.id, OutboxMail.kind, OutboxMail.subscriber_id, OutboxMail.list_id,
                                      OutboxMail.attempts)).all()
    return sorted(Claimed(*row) for row in rows)


def done(session: Session, ids: Iterable[int]) -> None:
    """Sent (or no longer wanted: the subscriber was erased or suppressed meanwhile)."""
    ids = list(ids)
    if ids:
        session.execute(delete(OutboxMail).where(OutboxMail.id.in_(ids)))


def retry_later(session: Session, mail_id: int, error: str, not_before: dt.datetime) -> None:
    session.execute(update(OutboxMail).where(OutboxMail.id == mail_id).values(
        attempts=OutboxMail.attempts + 1, last_error=error[:1000], not_before=not_before, claimed_until=None))


def give_up(session: Session, mail_id: int, error: str, now: dt.datetime) -> None:
    """Kept, not deleted, so an operator can see what never went out and why."""
    session.execute(update(OutboxMail).where(OutboxMail.id == mail_id).values(
        attempts=OutboxMail.attempts + 1, last_error=error[:1000], failed_at=now, claimed_until=None))


class Counts(NamedTuple):
    waiting: int
    failed: int
    oldest_waiting: dt.datetime | None


def counts(session: Session) -> Counts:
    waiting, oldest = session.execute(select(func.count(), func.min(OutboxMail.created_at))
                                      .where(OutboxMail.failed_at.is_(None))).one()
    failed = session.scalar(select(func.count()).where(OutboxMail.failed_at.is_not(None))) or 0
    if isinstance(oldest, str):  # SQLite's func.min bypasses the column type
        oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
    return Counts(int(waiting), int(failed), oldest)


def failures(session: Session, limit: int = 20) -> list[tuple[int, int, int, str]]:
    """(subscriber_id, list_id, attempts, last_error) of mails given up on, newest first."""
    rows = session.execute(select(OutboxMail.subscriber_id, OutboxMail.list_id, OutboxMail.attempts,
                                  OutboxMail.last_error).where(OutboxMail.failed_at.is_not(None))
                           .order_by(OutboxMail.failed_at.desc()).limit(limit)).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]
