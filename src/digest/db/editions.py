"""Queries about editions, variants and the delivery ledger's enqueue side."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.db.models import (Delivery, DeliveryState, Edition, EditionVariant, MailingList, Subscriber,
                              Subscription, SubscriptionStatus, Suppression)


def get_or_create_edition(session: Session, mailing_list: MailingList, period: str,
                          now: dt.datetime, kind: str = "daily") -> tuple[Edition, bool]:
    """The edition of (list, period); the unique key makes a racing second creator find the first one's row."""
    found = session.scalar(select(Edition).where(Edition.list_id == mailing_list.id, Edition.period == period))
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            edition = Edition(list_id=mailing_list.id, period=period, kind=kind, status="building", created_at=now)
            session.add(edition)
            session.flush()
        return edition, True
    except IntegrityError:
        found = session.scalar(select(Edition).where(Edition.list_id == mailing_list.id, Edition.period == period))
        assert found is not None
        return found, False


def edition_exists(session: Session, list_id: int, period: str) -> bool:
    return session.scalar(select(Edition.id).where(Edition.list_id == list_id, Edition.period == period)) is not None


def record_missed(session: Session, mailing_list: MailingList, period: str, now: dt.datetime, reason: str) -> None:
    """A period the scheduler was down for: an edition row marked skipped, so it is recorded once and never built."""
    edition, created = get_or_create_edition(session, mailing_list, period, now)
    if created:
        edition.status, edition.skip_reason = "skipped", reason


def previous_edition(session: Session, edition: Edition) -> Edition | None:
    """The latest earlier edition of the same list and kind that was not skipped."""
    query = (select(Edition).where(Edition.list_id == edition.list_id, Edition.id != edition.id, Edition.kind == edition.kind,
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


def has_weekly_subscribers(session: Session, list_id: int, weekday: int) -> bool:
    query = select(func.count()).select_from(Subscription).where(
        Subscription.list_id == list_id, Subscription.status == SubscriptionStatus.confirmed,
        Subscription.frequency == "weekly", Subscription.weekly_day == weekday)
    return bool(session.scalar(query))


def variant_key(topics_key: str, locale: str) -> str:
    return f"{topics_key}:{locale}"


Bucket = tuple[str, int | None]  # (IANA time zone, local send hour or None for "as soon as built")


def _eligible(edition: Edition, frequency: str | None, weekly_day: int | None) -> list[object]:
    conditions: list[object] = [Subscription.list_id == edition.list_id,
                                Subscription.status == SubscriptionStatus.confirmed]
    if frequency is not None:
        conditions.append(Subscription.frequency == frequency)
    if weekly_day is not None:
        conditions.append(Subscription.weekly_day == weekly_day)
    return conditions


def delivery_buckets(session: Session, edition: Edition, *, frequency: str | None = None,
                     weekly_day: int | None = None) -> list[Bucket]:
    """Distinct (time zone, send hour) among the subscribers this edition goes to."""
    query = (select(Subscriber.timezone, Subscriber.send_hour).distinct()
             .join(Subscription, Subscription.subscriber_id == Subscriber.id)
             .where(*_eligible(edition, frequency, weekly_day)))
    return [(tz, hour) for tz, hour in session.execute(query)]


def enqueue(session: Session, edition: Edition, now: dt.datetime, *, due: dict[Bucket, dt.datetime] | None = None,
            frequency: str | None = None, weekly_day: int | None = None) -> int:
    """One queued delivery per eligible, confirmed, unsuppressed subscriber; repeats add nothing.

    Set-based: one INSERT … SELECT per distinct due instant, so subscribers who asked for the same local
    hour in zones with the same UTC offset share a statement. A row is not claimed before its due instant.
    """
    groups: dict[dt.datetime, list[Bucket]] = {}
    for bucket, when in (due or {}).items():
        groups.setdefault(when, []).append(bucket)
    if not groups:
        groups[now] = []  # no buckets given: everyone, now
    total = 0
    for when, buckets in sorted(groups.items()):
        total += _insert(session, edition, now, when, buckets, _eligible(edition, frequency, weekly_day))
    # Variants with no stories for their topics: recorded, not sent.
    empty = select(EditionVariant.id).where(EditionVariant.edition_id == edition.id,
                                            func.coalesce(EditionVariant.html, "") == "")
    session.execute(update(Delivery).where(Delivery.edition_id == edition.id, Delivery.variant_id.in_(empty),
                                           Delivery.state == DeliveryState.queued)
                    .values(state=DeliveryState.skipped, last_reply="no stories match the subscriber's topics"))
    return total


def _insert(session: Session, edition: Edition, now: dt.datetime, when: dt.datetime, buckets: list[Bucket],
            conditions: list[object]) -> int:
    key_expr = Subscription.topics_key + literal(":") + Subscriber.locale
    suppressed = exists().where(Suppression.email == Subscriber.email)
    columns = Delivery.__table__.c
    source = (
        select(literal(edition.id), Subscription.subscriber_id, EditionVariant.id, literal(DeliveryState.queued.value),
               literal(0), literal(when, type_=columns.next_attempt_at.type), literal(""), literal(""),
               literal(now, type_=columns.created_at.type))
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(EditionVariant, and_(EditionVariant.edition_id == edition.id, EditionVariant.variant_key == key_expr))
        .where(*conditions, ~suppressed)
    )
    if buckets:
        source = source.where(or_(*[
            and_(Subscriber.timezone == tz, Subscriber.send_hour.is_(None) if hour is None else Subscriber.send_hour == hour)
            for tz, hour in buckets]))
    names = ["edition_id", "subscriber_id", "variant_id", "state", "attempts", "next_attempt_at", "last_reply",
             "message_id", "created_at"]
    # ON CONFLICT rather than NOT EXISTS: PostgreSQL plans an anti-join against the table being filled as a
    # nested loop (quadratic on a first large edition); the unique key does the same job per row.
    dialect = session.get_bind().dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(Delivery).from_select(names, source)
    statement = statement.on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    result = session.execute(statement.execution_options(preserve_rowcount=True))
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
