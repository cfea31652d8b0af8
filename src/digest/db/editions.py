"""Queries about editions, variants and the delivery ledger's enqueue side."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.db.models import (Delivery, DeliveryState, Edition, EditionVariant, MailingList, Subscriber,
                              Subscription, SubscriptionStatus, Suppression)


def get_or_create_edition(session: Session, mailing_list: MailingList, period: str,
                          now: dt.datetime) -> tuple[Edition, bool]:
    """The edition of (list, period); the unique key makes a racing second creator find the first one's row."""
    found = session.scalar(select(Edition).where(Edition.list_id == mailing_list.id, Edition.period == period))
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            edition = Edition(list_id=mailing_list.id, period=period, status="building", created_at=now)
            session.add(edition)
            session.flush()
        return edition, True
    except IntegrityError:
        found = session.scalar(select(Edition).where(Edition.list_id == mailing_list.id, Edition.period == period))
        assert found is not None
        return found, False


def previous_edition(session: Session, edition: Edition) -> Edition | None:
    query = (select(Edition).where(Edition.list_id == edition.list_id, Edition.id != edition.id,
                                   Edition.created_at <= edition.created_at, Edition.status != "skipped")
             .order_by(Edition.created_at.desc(), Edition.id.desc()).limit(1))
    return session.scalar(query)


def variant_choices(session: Session, list_id: int) -> list[tuple[str, list[str], str]]:
    """Distinct (topics_key, topics, locale) among confirmed subscribers: one compiled variant each."""
    query = (select(Subscription.topics_key, Subscription.topics, Subscriber.locale)
             .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
             .where(Subscription.list_id == list_id, Subscription.status == SubscriptionStatus.confirmed))
    seen: dict[tuple[str, str], list[str]] = {}
    for key, topics, locale in session.execute(query):
        seen.setdefault((key, locale), list(topics or []))
    return [(key, topics, locale) for (key, locale), topics in sorted(seen.items())]


def variant_key(topics_key: str, locale: str) -> str:
    return f"{topics_key}:{locale}"


def enqueue(session: Session, edition: Edition, now: dt.datetime) -> int:
    """One queued delivery per confirmed, unsuppressed subscriber, set-based; repeats add nothing."""
    key_expr = Subscription.topics_key + literal(":") + Subscriber.locale
    already = exists().where(Delivery.edition_id == edition.id, Delivery.subscriber_id == Subscription.subscriber_id)
    suppressed = exists().where(Suppression.email == Subscriber.email)
    source = (
        select(literal(edition.id), Subscription.subscriber_id, EditionVariant.id, literal(DeliveryState.queued.value),
               literal(0), literal(now, type_=Delivery.__table__.c.next_attempt_at.type), literal(""), literal(""),
               literal(now, type_=Delivery.__table__.c.created_at.type))
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(EditionVariant, and_(EditionVariant.edition_id == edition.id, EditionVariant.variant_key == key_expr))
        .where(Subscription.list_id == edition.list_id, Subscription.status == SubscriptionStatus.confirmed,
               ~suppressed, ~already)
    )
    columns = ["edition_id", "subscriber_id", "variant_id", "state", "attempts", "next_attempt_at", "last_reply",
               "message_id", "created_at"]
    result = session.execute(insert(Delivery).from_select(columns, source))
    # Variants with no stories for their topics: recorded, not sent.
    empty = select(EditionVariant.id).where(EditionVariant.edition_id == edition.id,
                                            func.coalesce(EditionVariant.html, "") == "")
    session.execute(update(Delivery).where(Delivery.edition_id == edition.id, Delivery.variant_id.in_(empty),
                                           Delivery.state == DeliveryState.queued)
                    .values(state=DeliveryState.skipped, last_reply="no stories match the subscriber's topics"))
    return int(result.rowcount or 0)


def edition_counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(select(Delivery.state, func.count()).where(Delivery.edition_id == edition_id)
                           .group_by(Delivery.state))
    return {str(state.value if hasattr(state, "value") else state): count for state, count in rows}


def editions_of_list(session: Session, list_id: int, limit: int = 20) -> list[Edition]:
    return list(session.scalars(select(Edition).where(Edition.list_id == list_id)
                                .order_by(Edition.created_at.desc(), Edition.id.desc()).limit(limit)))


def latest_editions(session: Session) -> list[Edition]:
    """The newest edition of each list."""
    newest = (select(Edition.list_id, func.max(Edition.id).label("id")).group_by(Edition.list_id).subquery())
    return list(session.scalars(select(Edition).join(newest, newest.c.id == Edition.id).order_by(Edition.list_id)))


def top_errors(session: Session, edition_id: int, limit: int = 5) -> list[tuple[str, int]]:
    rows = session.execute(
        select(Delivery.last_reply, func.count()).where(
            Delivery.edition_id == edition_id,
            Delivery.state.in_((DeliveryState.deferred, DeliveryState.failed, DeliveryState.skipped)))
        .group_by(Delivery.last_reply).order_by(func.count().desc()).limit(limit))
    return [(reply, count) for reply, count in rows]


def send_window(session: Session, edition_id: int) -> tuple[dt.datetime | None, dt.datetime | None]:
    row = session.execute(select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                          .where(Delivery.edition_id == edition_id)).one()
    return row[0], row[1]
