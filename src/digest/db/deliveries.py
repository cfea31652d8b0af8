"""The delivery ledger: claiming due rows and recording each outcome.

States: queued → claimed (worker + lease) → transmitting (just before DATA) →
sent | deferred (retry later) | failed (permanent) | suppressed | skipped | cancelled.
A claimed row whose lease expired never reached DATA: it is simply due again.
A transmitting row whose lease expired is ambiguous; `recover_ambiguous`
applies the configured policy (resend with the same Message-ID, or skip and report).
A live worker renews its leases (`renew_leases`), so only a dead one's rows come back.
Every update of a claimed row checks the worker id: a worker that lost its claim changes nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from digest.db.models import Delivery, DeliveryState, Edition, Subscriber

DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)
OPEN_STATES = (DeliveryState.queued, DeliveryState.deferred, DeliveryState.claimed, DeliveryState.transmitting)
ACTIVE_EDITION = ("ready", "sending")


def recover_ambiguous(session: Session, now: dt.datetime, policy: str) -> int:
    """Rows a dead worker left mid-DATA: requeue them ("resend") or park them as skipped ("skip")."""
    stale = and_(Delivery.state == DeliveryState.transmitting, Delivery.lease_until < now)
    if policy == "skip":
        values = {"state": DeliveryState.skipped, "last_reply": "ambiguous: worker died during DATA; not resent (policy skip)",
                  "worker_id": None, "lease_until": None}
    else:
        values = {"state": DeliveryState.queued, "last_reply": "ambiguous: worker died during DATA; resending",
                  "worker_id": None, "lease_until": None, "next_attempt_at": now}
    result = session.execute(update(Delivery).where(stale).values(**values))
    return int(result.rowcount or 0)


def claim_batch(session: Session, worker_id: str, now: dt.datetime, *, lease_seconds: int, limit: int,
                edition_ids: list[int] | None = None) -> list[Delivery]:
    """Claim up to `limit` due rows for this worker (SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite)."""
    due = or_(
        and_(Delivery.state.in_(DUE_STATES), Delivery.next_attempt_at <= now),
        and_(Delivery.state == DeliveryState.claimed, Delivery.lease_until < now),
    )
    active = select(Edition.id).where(Edition.status.in_(ACTIVE_EDITION))
    query = select(Delivery).where(due, Delivery.edition_id.in_(active))
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    query = query.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    rows = list(session.scalars(query.options(selectinload(Delivery.subscriber))))
    lease = now + dt.timedelta(seconds=lease_seconds)
    for row in rows:
        row.state = DeliveryState.claimed
        row.worker_id = worker_id
        row.lease_until = lease
    session.flush()
    return rows


def load_claimed(session: Session, delivery_ids: list[int]) -> list[Delivery]:
    """Claimed rows with what personalising them needs, in one round trip per relation."""
    query = (select(Delivery).where(Delivery.id.in_(delivery_ids)).order_by(Delivery.id)
             .options(selectinload(Delivery.subscriber), selectinload(Delivery.edition).selectinload(Edition.mailing_list)))
    return list(session.scalars(query))


def renew_leases(session: Session, worker_id: str, now: dt.datetime, lease_seconds: int,
                 delivery_ids: list[int]) -> int:
    """A live worker's heartbeat: the claimed and transmitting rows it still holds stay its own."""
    total = 0
    for start in range(0, len(delivery_ids), 1000):
        result = session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids[start:start + 1000]), Delivery.worker_id == worker_id,
                                   Delivery.state.in_((DeliveryState.claimed, DeliveryState.transmitting)))
            .values(lease_until=now + dt.timedelta(seconds=lease_seconds)))
        total += int(result.rowcount or 0)
    return total


def _mine(delivery_id: int, worker_id: str) -> object:
    return and_(Delivery.id == delivery_id, Delivery.worker_id == worker_id)


# The per-message updates are built once with bind parameters: on the send path the SQL
# expression building of an ORM update costs more than SQLite's work (about 1 ms per row).
_T = Delivery.__table__
_OWNED = and_(_T.c.id == bindparam("b_id"), _T.c.worker_id == bindparam("b_worker"))
_TRANSMIT = (update(_T).where(_OWNED, _T.c.state == DeliveryState.claimed.value)
             .values(state=DeliveryState.transmitting.value, message_id=bindparam("b_message_id"),
                     attempts=_T.c.attempts + 1, lease_until=bindparam("b_lease")))
_SENT = update(_T).where(_OWNED).values(state=DeliveryState.sent.value, sent_at=bindparam("b_now"),
                                        last_reply=bindparam("b_reply"), lease_until=None)
_FINAL = update(_T).where(_OWNED).values(state=bindparam("b_state"), last_reply=bindparam("b_reply"), lease_until=None)
_DEFER = update(_T).where(_OWNED).values(state=DeliveryState.deferred.value, last_reply=bindparam("b_reply"),
                                         next_attempt_at=bindparam("b_retry"), lease_until=None, worker_id=None,
                                         attempts=_T.c.attempts + bindparam("b_count"))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def mark_transmitting(session: Session, delivery_id: int, worker_id: str, *, message_id: str, now: dt.datetime,
                      lease_seconds: int) -> bool:
    """False when the claim was lost (lease expired, edition paused or cancelled): do not send."""
    result = session.execute(_TRANSMIT, {"b_id": delivery_id, "b_worker": worker_id, "b_message_id": message_id,
                                         "b_lease": _utc(now + dt.timedelta(seconds=lease_seconds))})
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_sent(session: Session, delivery_id: int, worker_id: str, *, reply: str, now: dt.datetime) -> None:
    session.execute(_SENT, {"b_id": delivery_id, "b_worker": worker_id, "b_now": _utc(now), "b_reply": reply[:500]})


def mark_deferred(session: Session, delivery_id: int, worker_id: str, *, reply: str, retry_at: dt.datetime,
                  count_attempt: bool) -> None:
    session.execute(_DEFER, {"b_id": delivery_id, "b_worker": worker_id, "b_reply": reply[:500],
                             "b_retry": _utc(retry_at), "b_count": 1 if count_attempt else 0})


def mark_final(session: Session, delivery_id: int, worker_id: str, state: DeliveryState, *, reply: str) -> None:
    """failed, suppressed or skipped: the row leaves the queue with its reason."""
    session.execute(_FINAL, {"b_id": delivery_id, "b_worker": worker_id, "b_state": state.value, "b_reply": reply[:500]})


def mark_failed(session: Session, delivery_id: int, worker_id: str, *, reply: str) -> None:
    mark_final(session, delivery_id, worker_id, DeliveryState.failed, reply=reply)


def attempts_of(session: Session, delivery_id: int) -> int:
    return int(session.scalar(select(Delivery.attempts).where(Delivery.id == delivery_id)) or 0)


def release(session: Session, delivery_ids: list[int], worker_id: str) -> None:
    """Give unsent claims back (graceful stop)."""
    if delivery_ids:
        session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.worker_id == worker_id,
                                               Delivery.state == DeliveryState.claimed)
                        .values(state=DeliveryState.queued, worker_id=None, lease_until=None))


def retry_failed(session: Session, edition_ids: list[int] | None, now: dt.datetime) -> int:
    """Failed rows (only those) go back to the queue with a fresh attempt count; suppressed addresses stay out."""
    query = update(Delivery).where(Delivery.state == DeliveryState.failed)
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    result = session.execute(query.values(state=DeliveryState.queued, next_attempt_at=now, worker_id=None,
                                          lease_until=None, attempts=0))
    return int(result.rowcount or 0)


# --- editions: pause, resume, cancel --------------------------------------------------------------

def set_edition_state(session: Session, edition_id: int, action: str) -> dict[str, object]:
    """pause: no new claims, claimed rows go back to the queue (their workers' DATA is refused);
    resume: claims start again; cancel: every row not yet sent leaves the queue as cancelled."""
    edition = session.get(Edition, edition_id, with_for_update=True)
    if edition is None:
        raise LookupError(f"no edition {edition_id}")
    moved = 0
    if action == "pause":
        if edition.status not in (*ACTIVE_EDITION, "paused"):
            raise ValueError(f"edition {edition_id} is {edition.status}; only a ready edition can be paused")
        edition.status = "paused"
        moved = _update_rows(session, edition_id, (DeliveryState.claimed,),
                             state=DeliveryState.queued, worker_id=None, lease_until=None)
    elif action == "resume":
        if edition.status not in ("paused", *ACTIVE_EDITION):
            raise ValueError(f"edition {edition_id} is {edition.status}; only a paused edition can be resumed")
        edition.status = "ready"
    elif action == "cancel":
        if edition.status in ("building", "skipped"):
            raise ValueError(f"edition {edition_id} is {edition.status}; nothing to cancel")
        edition.status = "cancelled"
        moved = _update_rows(session, edition_id, (DeliveryState.queued, DeliveryState.deferred, DeliveryState.claimed),
                             state=DeliveryState.cancelled, worker_id=None, lease_until=None,
                             last_reply="edition cancelled before this was sent")
    else:
        raise ValueError(f"unknown action {action!r}")
    return {"edition": edition_id, "status": edition.status, "rows": moved}


def _update_rows(session: Session, edition_id: int, states: tuple[DeliveryState, ...], **values: object) -> int:
    result = session.execute(update(Delivery).where(Delivery.edition_id == edition_id, Delivery.state.in_(states))
                             .values(**values))
    return int(result.rowcount or 0)


# --- reporting ------------------------------------------------------------------------------------

def counts_by_state(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(select(Delivery.state, func.count()).where(Delivery.edition_id == edition_id)
                           .group_by(Delivery.state))
    return {str(state.value if hasattr(state, "value") else state): int(count) for state, count in rows}


def sent_since(session: Session, edition_id: int, since: dt.datetime) -> int:
    return int(session.scalar(select(func.count()).where(Delivery.edition_id == edition_id,
                                                         Delivery.state == DeliveryState.sent,
                                                         Delivery.sent_at >= since)) or 0)


def sent_window(session: Session, edition_id: int) -> tuple[dt.datetime | None, dt.datetime | None]:
    row = session.execute(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                          .where(Delivery.edition_id == edition_id)).one()
    return row[0], row[1]


def top_errors(session: Session, edition_id: int, limit: int = 5) -> list[tuple[str, int]]:
    rows = session.execute(
        select(Delivery.last_reply, func.count()).where(
            Delivery.edition_id == edition_id, Delivery.last_reply != "",
            Delivery.state.in_((DeliveryState.deferred, DeliveryState.failed, DeliveryState.skipped,
                                DeliveryState.suppressed)))
        .group_by(Delivery.last_reply).order_by(func.count().desc()).limit(limit))
    return [(reply, int(count)) for reply, count in rows]


def rows_in_state(session: Session, edition_id: int, state: DeliveryState, limit: int = 50) -> list[dict[str, object]]:
    """The rows behind a count, for review (e.g. ambiguous rows skipped after a crash)."""
    rows = session.execute(select(Delivery.id, Subscriber.email, Delivery.last_reply, Delivery.message_id)
                           .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                           .where(Delivery.edition_id == edition_id, Delivery.state == state)
                           .order_by(Delivery.id).limit(limit))
    return [{"delivery": i, "email": e, "reason": r, "message_id": m} for i, e, r, m in rows]


def bounce_counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(select(Delivery.bounce_kind, func.count()).where(Delivery.edition_id == edition_id,
                                                                            Delivery.bounce_kind.is_not(None))
                           .group_by(Delivery.bounce_kind))
    return {str(kind): int(count) for kind, count in rows}


def delivery_for_message_id(session: Session, message_id: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.message_id == message_id).limit(1))


def record_bounce(session: Session, delivery_id: int, kind: str, now: dt.datetime) -> None:
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(bounce_kind=kind, bounced_at=now))


def count_open(session: Session, edition_ids: list[int] | None = None) -> int:
    """Rows not yet finished in active editions (the progress bar's total)."""
    active = select(Edition.id).where(Edition.status.in_(ACTIVE_EDITION))
    query = select(func.count()).where(Delivery.state.in_(OPEN_STATES), Delivery.edition_id.in_(active))
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    return int(session.scalar(query) or 0)
