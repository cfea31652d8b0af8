"""Read-only questions about the ledger: counts by state, send rate, top errors, rows behind a count.

For `digest status`, the admin ledger page and the progress bar; the writes are in `digest.db.deliveries`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.db.deliveries import ACTIVE_EDITION, OPEN_STATES
from digest.db.models import Delivery, DeliveryState, Edition, Subscriber


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



def count_open(session: Session, edition_ids: list[int] | None = None) -> int:
    """Rows not yet finished in active editions (the progress bar's total)."""
    active = select(Edition.id).where(Edition.status.in_(ACTIVE_EDITION))
    query = select(func.count()).where(Delivery.state.in_(OPEN_STATES), Delivery.edition_id.in_(active))
    if edition_ids is not None:
        query = query.where(Delivery.edition_id.in_(edition_ids))
    return int(session.scalar(query) or 0)
