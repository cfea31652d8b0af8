"""Queries for the admin UI and the REST API: admin users, API tokens, editions and the delivery ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from digest.db.models import AdminUser, ApiToken, Delivery, DeliveryState, Edition, Source, Subscriber, utcnow

# --- admin users ----------------------------------------------------------------------------------


def user_by_name(session: Session, username: str) -> AdminUser | None:
    return session.scalar(select(AdminUser).where(AdminUser.username == username))


def users(session: Session) -> list[AdminUser]:
    return list(session.scalars(select(AdminUser).order_by(AdminUser.username)))


def add_user(session: Session, username: str, password_hash: str, role: str) -> AdminUser:
    user = AdminUser(username=username, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    return user


def delete_user(session: Session, username: str) -> bool:
    user = user_by_name(session, username)
    if user is None:
        return False
    session.delete(user)
    return True


# --- API tokens -----------------------------------------------------------------------------------

def add_token(session: Session, name: str, token_hash: str, role: str) -> ApiToken:
    token = ApiToken(name=name, token_hash=token_hash, role=role)
    session.add(token)
    session.flush()
    return token


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None)))


def tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, now: dt.datetime | None = None) -> bool:
    result = session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                             .values(revoked_at=now or utcnow()))
    return bool(result.rowcount)


# --- sources, editions, ledger --------------------------------------------------------------------

def sources(session: Session) -> list[Source]:
    return list(session.scalars(select(Source).order_by(Source.name)))


def editions(session: Session, *, list_id: int | None = None, status: str | None = None, limit: int = 50,
             offset: int = 0) -> list[Edition]:
    query = select(Edition).options(selectinload(Edition.mailing_list))
    if list_id is not None:
        query = query.where(Edition.list_id == list_id)
    if status is not None:
        query = query.where(Edition.status == status)
    return list(session.scalars(query.order_by(Edition.created_at.desc(), Edition.id.desc()).limit(limit).offset(offset)))


def edition(session: Session, edition_id: int) -> Edition | None:
    return session.get(Edition, edition_id)


def set_edition_status(session: Session, edition_id: int, status: str, *, only_from: tuple[str, ...]) -> bool:
    """Move an edition to `status` if it is in one of `only_from`; False when it was not (nothing changes)."""
    result = session.execute(update(Edition).where(Edition.id == edition_id, Edition.status.in_(only_from))
                             .values(status=status))
    return bool(result.rowcount)


def delivery_counts(session: Session, edition_id: int | None = None) -> dict[str, int]:
    query = select(Delivery.state, func.count()).group_by(Delivery.state)
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    return {str(getattr(state, "value", state)): int(count) for state, count in session.execute(query)}


def deliveries(session: Session, *, edition_id: int | None = None, state: str | None = None, limit: int = 50,
               offset: int = 0) -> list[tuple[Delivery, str]]:
    query = select(Delivery, Subscriber.email).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    rows = session.execute(query.order_by(Delivery.id.desc()).limit(limit).offset(offset))
    return [(delivery, email) for delivery, email in rows]


def daily_ledger(session: Session, since: dt.datetime) -> dict[str, dict[str, int]]:
    """Per UTC day: messages sent, deliveries that needed a retry (deferrals) and bounces reported."""
    out: dict[str, dict[str, int]] = {}

    def add(kind: str, column: Any, *conditions: Any) -> None:
        day = func.date(column)
        rows = session.execute(select(day, func.count()).where(column >= since, *conditions).group_by(day))
        for value, count in rows:
            out.setdefault(str(value)[:10], {"sent": 0, "deferred": 0, "bounced": 0})[kind] += int(count)

    add("sent", Delivery.sent_at, Delivery.sent_at.is_not(None))
    # A deferral leaves no timestamp of its own: count rows that are, or were, deferred by the day they were queued.
    add("deferred", Delivery.created_at, (Delivery.state == DeliveryState.deferred) | (Delivery.attempts > 1))
    add("bounced", Delivery.bounced_at, Delivery.bounced_at.is_not(None))
    return dict(sorted(out.items()))
