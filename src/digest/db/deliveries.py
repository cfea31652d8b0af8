"""The delivery ledger: claiming due rows and recording each outcome.

States: queued → claimed (worker + lease) → transmitting (just before DATA) →
sent | deferred (retry later) | failed (permanent) | skipped.
A claimed row whose lease expired never reached DATA: it is simply due again.
A transmitting row whose lease expired is ambiguous; `recover_ambiguous`
applies the configured policy (resend with the same Message-ID, or skip).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from digest.db.models import Delivery, DeliveryState, Edition

DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


def recover_ambiguous(session: Session, now: dt.datetime, policy: str) -> int:
    """Rows a dead worker left mid-DATA: requeue them ("resend") or park them as skipped ("skip")."""
    stale = and_(Delivery.state == DeliveryState.transmitting, Delivery.lease_until < now)
    if policy == "skip":
        values = {"state": DeliveryState.skipped, "last_reply": "ambiguous: worker died during DATA; not resent (policy skip)",
                  "worker_id": None, "lease_until": None}
    else:
        values = {"state": DeliveryState.queued, "last_reply": "ambiguous: worker died during DATA; resending",
                  "worker_id": None, "lease_until": None}
    result = session.execute(update(Delivery).where(stale).values(**values))
    return int(result.rowcount or 0)


def claim_batch(session: Session, worker_id: str, now: dt.datetime, *, lease_seconds: int, limit: int,
                edition_ids: list[int] | None = None) -> list[Delivery]:
    """Claim up to `limit` due rows for this worker (SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite)."""
    due = or_(
        and_(Delivery.state.in_(DUE_STATES), Delivery.next_attempt_at <= now),
        and_(Delivery.state == DeliveryState.claimed, Delivery.lease_until < now),
    )
    active = select(Edition.id).where(Edition.status.in_(("ready", "sending")))
    query = select(Delivery).where(due, Delivery.edition_id.in_(active))
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    query = query.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    rows = list(session.scalars(query))
    lease = now + dt.timedelta(seconds=lease_seconds)
    for row in rows:
        row.state = DeliveryState.claimed
        row.worker_id = worker_id
        row.lease_until = lease
    session.flush()
    return rows


def _mine(delivery_id: int, worker_id: str) -> object:
    return and_(Delivery.id == delivery_id, Delivery.worker_id == worker_id)


def mark_transmitting(session: Session, delivery_id: int, worker_id: str, *, message_id: str, now: dt.datetime,
                      lease_seconds: int) -> bool:
    """False when the claim was lost (lease expired and another worker took it): do not send."""
    result = session.execute(
        update(Delivery).where(_mine(delivery_id, worker_id), Delivery.state == DeliveryState.claimed)
        .values(state=DeliveryState.transmitting, message_id=message_id, attempts=Delivery.attempts + 1,
                lease_until=now + dt.timedelta(seconds=lease_seconds)))
    return bool(result.rowcount)


def mark_sent(session: Session, delivery_id: int, worker_id: str, *, reply: str, now: dt.datetime) -> None:
    session.execute(update(Delivery).where(_mine(delivery_id, worker_id))
                    .values(state=DeliveryState.sent, sent_at=now, last_reply=reply[:500], lease_until=None))


def mark_deferred(session: Session, delivery_id: int, worker_id: str, *, reply: str, retry_at: dt.datetime,
                  count_attempt: bool) -> None:
    values: dict[str, object] = {"state": DeliveryState.deferred, "last_reply": reply[:500], "next_attempt_at": retry_at,
                                 "lease_until": None, "worker_id": None}
    if count_attempt:
        values["attempts"] = Delivery.attempts + 1
    session.execute(update(Delivery).where(_mine(delivery_id, worker_id)).values(**values))


def mark_failed(session: Session, delivery_id: int, worker_id: str, *, reply: str) -> None:
    session.execute(update(Delivery).where(_mine(delivery_id, worker_id))
                    .values(state=DeliveryState.failed, last_reply=reply[:500], lease_until=None))


def release(session: Session, delivery_ids: list[int], worker_id: str) -> None:
    """Give unsent claims back (graceful stop)."""
    if delivery_ids:
        session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.worker_id == worker_id,
                                               Delivery.state == DeliveryState.claimed)
                        .values(state=DeliveryState.queued, worker_id=None, lease_until=None))


def retry_failed(session: Session, edition_ids: list[int] | None, now: dt.datetime) -> int:
    query = update(Delivery).where(Delivery.state == DeliveryState.failed)
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    result = session.execute(query.values(state=DeliveryState.queued, next_attempt_at=now, worker_id=None))
    return int(result.rowcount or 0)
