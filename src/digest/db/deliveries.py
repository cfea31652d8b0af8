"""The delivery ledger: claiming due rows and recording each outcome.

States: queued → claimed (worker + lease) → transmitting (committed before the message is written) →
sent | deferred (retry later) | failed (permanent) | suppressed | skipped | cancelled.
A claimed row whose lease expired never had its message written: it is simply due again.
A transmitting row whose lease expired is ambiguous; `recover_ambiguous`
applies the configured policy (resend with the same Message-ID, or skip and report).
A live worker renews its leases (`renew_leases`), so only a dead one's rows come back.
Every update of a claimed row checks the worker id: a worker that lost its claim changes nothing.

The queue is read through partial indexes (`Delivery`): the claim walks `ix_delivery_due` in
(next_attempt_at, id) order and stops after `limit` rows, so its cost does not grow with the queue.
Their predicates are repeated verbatim in the queries (SQLite uses a partial index only then).
`LedgerWriter` (`ledger_writer.py`, re-exported here) is the send path's own connection: one commit per message.
The deliveries table has no foreign keys: `delete_for_*` remove what ON DELETE CASCADE used to.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from digest.db.ledger_writer import LedgerWriter as LedgerWriter  # re-exported: the send path's connection
from digest.db.ledger_commit import Committer as Committer
from digest.db.ledger_commit import make_committer as make_committer
from digest.db.models import (DUE_PREDICATE, HELD_PREDICATE, Delivery, DeliveryState, Edition, UTCDateTime)

DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)
OPEN_STATES = (DeliveryState.queued, DeliveryState.deferred, DeliveryState.claimed, DeliveryState.transmitting)
ACTIVE_EDITION = ("ready", "sending")


def _at(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


_AMBIGUOUS = f"WHERE {HELD_PREDICATE} AND state = 'transmitting' AND lease_until < :now"
_RECOVER = {
    "skip": text("UPDATE deliveries SET state = 'skipped', worker_id = NULL, lease_until = NULL, last_reply = "
                 f"'ambiguous: worker died during DATA; not resent (policy skip)' {_AMBIGUOUS}").bindparams(_at("now")),
    "resend": text("UPDATE deliveries SET state = 'queued', worker_id = NULL, lease_until = NULL, "
                   f"last_reply = 'ambiguous: worker died during DATA; resending', next_attempt_at = :now {_AMBIGUOUS}")
    .bindparams(_at("now")),
}


def recover_ambiguous(session: Session, now: dt.datetime, policy: str) -> int:
    """Rows a dead worker left mid-DATA: requeue them ("resend") or park them as skipped ("skip")."""
    result = session.execute(_RECOVER["skip" if policy == "skip" else "resend"], {"now": now})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Claimed(NamedTuple):
    """A claimed row with what personalising it needs (no ORM objects on the send path)."""

    id: int
    edition_id: int
    variant_id: int
    subscriber_id: int
    message_id: str
    email: str
    name: str
    locale: str
    suppressed: bool


# Expired claims of dead workers (ix_delivery_lease), then due rows in claim order (ix_delivery_due). The unary
# plus keeps SQLite from taking the (edition_id, subscriber_id) key instead and sorting every due row of the edition.
_EXPIRED_IDS = (f"SELECT id FROM deliveries WHERE {HELD_PREDICATE} AND state = 'claimed' AND lease_until < :now "
                "AND +edition_id IN :editions ORDER BY lease_until LIMIT :limit")
_DUE_IDS = (f"SELECT id FROM deliveries WHERE {DUE_PREDICATE} AND next_attempt_at <= :now "
            "AND +edition_id IN :editions ORDER BY next_attempt_at, id LIMIT :limit")
_CLAIM = "UPDATE deliveries SET state = 'claimed', worker_id = :worker, lease_until = :lease WHERE id IN ({ids})"
# The ids go as one parameter (a JSON array), so this is one statement: written inline, every batch was a new
# statement, and sqlite3 keeps the last 128 compiled per pooled connection (about 3 MB each, which a long send
# filled: most of its growth in peak RSS).
_LOAD = ("SELECT d.id, d.edition_id, d.variant_id, d.subscriber_id, d.message_id, s.email, s.name, s.locale, "
         "EXISTS (SELECT 1 FROM suppressions p WHERE p.email = s.email) "
         "FROM {rows} d JOIN subscribers s ON s.id = d.subscriber_id {where}ORDER BY d.next_attempt_at, d.id")
_LOAD_SQLITE = _LOAD.format(rows="deliveries", where="WHERE d.id IN (SELECT value FROM json_each(?)) ")


def _claim_statement(select_ids: str, postgres: bool) -> Any:
    if postgres:  # the claim returns its rows with their address: one round trip instead of two
        sql = (f"WITH claimed AS ({_CLAIM.format(ids=select_ids + ' FOR UPDATE SKIP LOCKED')} "
               "RETURNING id, edition_id, variant_id, subscriber_id, message_id, next_attempt_at) "
               + _LOAD.format(rows="claimed", where=""))
    else:
        sql = _CLAIM.format(ids=select_ids) + " RETURNING id"
    return text(sql).bindparams(_at("now"), _at("lease"), bindparam("editions", expanding=True))


_CLAIMS = {(sql, pg): _claim_statement(sql, pg) for sql in (_EXPIRED_IDS, _DUE_IDS) for pg in (False, True)}
# A claim's plans must not depend on statistics: right after a large enqueue (or a large import of subscribers)
# they describe a near-empty table, and PostgreSQL then sorted every due row (0.5 s per claim at a million rows)
# and hashed every subscriber to join 200 of them (11 ms per claim at 20,000 subscribers, growing with the
# list). Index order and index lookups are right at any size. A disabled node's cost would then call in the JIT
# compiler (0.26 s per claim), useless for a statement of 200 rows. Transaction-local, set in one round trip.
_PIN_PLANS = text("SELECT set_config('enable_sort', 'off', true), set_config('enable_hashjoin', 'off', true), "
                  "set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)")


# Asked before every claim: plain SQL on the session's connection, a third of the CPU of the ORM query it replaces.
_ACTIVE = f"SELECT id FROM editions WHERE status IN ({', '.join(repr(s) for s in ACTIVE_EDITION)})"
_ACTIVE_EDITIONS = {False: text(_ACTIVE), True: text(_ACTIVE + " AND id IN :ids").bindparams(bindparam("ids", expanding=True))}


def active_editions(session: Session, edition_ids: list[int] | None = None) -> list[int]:
    """The editions whose rows may be claimed (ready or sending; not paused, cancelled or done)."""
    if edition_ids is not None and not edition_ids:
        return []
    statement = _ACTIVE_EDITIONS[edition_ids is not None]
    params = {} if edition_ids is None else {"ids": [int(i) for i in edition_ids]}
    return [row[0] for row in session.connection().execute(statement, params)]


def claim_batch(session: Session, worker_id: str, now: dt.datetime, *, lease_seconds: int, limit: int,
                edition_ids: list[int] | None = None) -> list[Claimed]:
    """Claim up to `limit` due rows for this worker (SKIP LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite).

    Expired claims of dead workers first, then due rows in (next_attempt_at, id) order; each read is an
    index range scan that stops after `limit` rows. Returns them with their subscriber's address and
    whether it is suppressed (one query for the batch).
    """
    editions = active_editions(session, edition_ids)
    if not editions:
        return []
    postgres = session.get_bind().dialect.name == "postgresql"
    params = {"worker": worker_id, "now": now, "lease": now + dt.timedelta(seconds=lease_seconds),
              "editions": editions}
    if postgres:
        session.execute(_PIN_PLANS)
        claimed: list[Claimed] = []
        for select_ids in (_EXPIRED_IDS, _DUE_IDS):
            if len(claimed) >= limit:
                break
            result = session.execute(_CLAIMS[select_ids, True], {**params, "limit": limit - len(claimed)})
            claimed += [Claimed(*row[:8], bool(row[8])) for row in result]
        return claimed
    ids: list[int] = []
    for select_ids in (_EXPIRED_IDS, _DUE_IDS):
        if len(ids) >= limit:
            break
        result = session.execute(_CLAIMS[select_ids, False], {**params, "limit": limit - len(ids)})
        ids += [row[0] for row in result]
    if not ids:
        return []
    rows = session.connection().exec_driver_sql(_LOAD_SQLITE, ("[" + ",".join(str(int(i)) for i in ids) + "]",))
    return [Claimed(*row[:8], bool(row[8])) for row in rows]


def mark_suppressed(session: Session, delivery_ids: list[int], worker_id: str) -> None:
    """Claimed rows whose address is on the suppression list leave the queue unsent, set-based."""
    if delivery_ids:
        session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.worker_id == worker_id)
                        .values(state=DeliveryState.suppressed, last_reply="address is suppressed; not sent",
                                lease_until=None))


def delete_for_subscriber(session: Session, subscriber_id: int) -> int:
    """A subscriber's ledger rows (GDPR erasure): what ON DELETE CASCADE did before 0006."""
    result = session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    return int(result.rowcount or 0)


def delete_for_editions(session: Session, edition_ids: list[int]) -> int:
    """The ledger rows of editions about to be deleted (and so of their variants)."""
    if not edition_ids:
        return 0
    result = session.execute(delete(Delivery).where(Delivery.edition_id.in_(edition_ids)))
    return int(result.rowcount or 0)


def renew_leases(session: Session, worker_id: str, now: dt.datetime, lease_seconds: int,
                 delivery_ids: list[int]) -> int:
    """A live worker's heartbeat: the claimed and transmitting rows it still holds stay its own.

    On PostgreSQL rows locked by a sender's update at this moment are skipped (that update sets or ends
    their lease itself): waiting for them could deadlock with a sender's two-row transaction."""
    total = 0
    postgres = session.get_bind().dialect.name == "postgresql"
    lease = now + dt.timedelta(seconds=lease_seconds)
    for start in range(0, len(delivery_ids), 1000):
        chunk = [int(i) for i in delivery_ids[start:start + 1000]]
        result = session.execute(_RENEW[postgres], {"ids": chunk if postgres else json.dumps(chunk), "worker": worker_id,
                                                    "lease": lease})
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total


# One statement whatever the number of ids (see _LOAD).
_RENEW = {
    False: text(f"UPDATE deliveries SET lease_until = :lease WHERE id IN (SELECT value FROM json_each(:ids)) "
                f"AND worker_id = :worker AND {HELD_PREDICATE}").bindparams(_at("lease")),
    True: text(f"UPDATE deliveries SET lease_until = :lease WHERE id IN (SELECT id FROM deliveries WHERE id = ANY(:ids) "
               f"AND worker_id = :worker AND {HELD_PREDICATE} FOR UPDATE SKIP LOCKED)").bindparams(_at("lease")),
}


def _mine(delivery_id: int, worker_id: str) -> object:
    return and_(Delivery.id == delivery_id, Delivery.worker_id == worker_id)


# The per-message outcomes other than `sent` are built once with bind parameters (the marks and `sent` go
# through the ledger, `ledger_commit.py`): building an ORM update per row cost more than SQLite's work.
_T = Delivery.__table__
_OWNED = and_(_T.c.id == bindparam("b_id"), _T.c.worker_id == bindparam("b_worker"))
_FINAL = update(_T).where(_OWNED).values(state=bindparam("b_state"), last_reply=bindparam("b_reply"), lease_until=None)
_DEFER = update(_T).where(_OWNED).values(state=DeliveryState.deferred.value, last_reply=bindparam("b_reply"),
                                         next_attempt_at=bindparam("b_retry"), lease_until=None, worker_id=None,
                                         attempts=_T.c.attempts + bindparam("b_count"))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def mark_deferred(session: Session, delivery_id: int, worker_id: str, *, reply: str, retry_at: dt.datetime,
                  count_attempt: bool, refund_attempt: bool = False) -> None:
    """`count_attempt`: this try was not counted yet (it failed before its mark); `refund_attempt`: it was
    counted by an early mark but failed on our own side (connection, MAIL FROM), which spends no attempt."""
    count = 1 if count_attempt else -1 if refund_attempt else 0
    session.execute(_DEFER, {"b_id": delivery_id, "b_worker": worker_id, "b_reply": reply[:500],
                             "b_retry": _utc(retry_at), "b_count": count})


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


# `dispatch.worker.message_id_for`: <edition.delivery.tag@domain>
_OUR_MESSAGE_ID = re.compile(r"<?\d+\.(\d+)\.[0-9a-f]{16}@[^<>\s]+>?")


def delivery_for_message_id(session: Session, message_id: str) -> Delivery | None:
    """The delivery a Message-ID of ours names: by the id it carries, then the stored value must match
    (no index on Message-IDs: each would cost two index entries per message sent)."""
    message_id = message_id.strip()
    match = _OUR_MESSAGE_ID.fullmatch(message_id)
    if match is None:
        return None
    delivery = session.get(Delivery, int(match.group(1)))
    if delivery is None or delivery.message_id.strip("<>") != message_id.strip("<>"):
        return None
    return delivery


def record_bounce(session: Session, delivery_id: int, kind: str, now: dt.datetime) -> None:
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(bounce_kind=kind, bounced_at=now))
