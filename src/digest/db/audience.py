"""Queries about lists, subscribers, subscriptions, suppressions and events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from digest.config import ListConfig
from digest.db.deliveries import delete_for_subscriber as delete_deliveries_of_subscriber
from digest.db.models import Consent, Event, MailingList, Subscriber, Subscription, SubscriptionStatus, Suppression, utcnow


def sync_lists(session: Session, configured: list[ListConfig]) -> dict[str, MailingList]:
    """Make the lists table match the config (by slug); returns slug -> row."""
    existing = {m.slug: m for m in session.scalars(select(MailingList))}
    for conf in configured:
        row = existing.get(conf.slug)
        if row is None:
            row = _insert_list(session, conf)
            existing[conf.slug] = row
        row.name, row.from_address, row.schedule, row.timezone = conf.name, conf.from_, conf.schedule, conf.timezone
        row.double_opt_in, row.max_stories, row.topics = conf.double_opt_in, conf.max_stories, list(conf.topics)
    session.flush()
    return existing


def _insert_list(session: Session, conf: ListConfig) -> MailingList:
    """Insert a configured list; a second process inserting it at the same moment is not an error."""
    try:
        with session.begin_nested():
            row = MailingList(slug=conf.slug, name=conf.name, from_address=conf.from_, schedule=conf.schedule,
                              timezone=conf.timezone)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        found = list_by_slug(session, conf.slug)
        assert found is not None
        return found


# The lookups every public request makes, built once and bound per call (building a statement costs
# more than running it on SQLite).
_list_by_slug = select(MailingList).where(MailingList.slug == bindparam("slug"))
_subscriber_by_email = select(Subscriber).where(Subscriber.email == bindparam("email"))
_subscription = select(Subscription).where(Subscription.list_id == bindparam("list_id"),
                                           Subscription.subscriber_id == bindparam("subscriber_id"))
_suppressed = select(exists().where(Suppression.email == bindparam("email")))
_insert_event = Event.__table__.insert()
_insert_consent = Consent.__table__.insert()
_insert_subscriber = Subscriber.__table__.insert()
_insert_subscription = Subscription.__table__.insert()


def list_by_slug(session: Session, slug: str) -> MailingList | None:
    return session.scalar(_list_by_slug, {"slug": slug})


def subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(_subscriber_by_email, {"email": email})


def subscription(session: Session, list_id: int, subscriber_id: int) -> Subscription | None:
    return session.scalar(_subscription, {"list_id": list_id, "subscriber_id": subscriber_id})


def insert_subscriber(session: Session, **values: Any) -> int:
    """A plain insert (no unit-of-work object); returns the new id."""
    return int(session.connection().execute(_insert_subscriber, values).inserted_primary_key[0])


def insert_subscription(session: Session, **values: Any) -> int:
    return int(session.connection().execute(_insert_subscription, values).inserted_primary_key[0])


def is_suppressed(session: Session, email: str) -> bool:
    return bool(session.connection().scalar(_suppressed, {"email": email}))


def suppressed_among(session: Session, emails: list[str]) -> set[str]:
    """The suppressed addresses among `emails`, in one query."""
    if not emails:
        return set()
    return set(session.scalars(select(Suppression.email).where(Suppression.email.in_(emails))))


def suppress(session: Session, email: str, reason: str) -> None:
    if not is_suppressed(session, email):
        session.add(Suppression(email=email, reason=reason))
        session.flush()


def record_event(session: Session, kind: str, *, subscriber_id: int | None = None, edition_id: int | None = None,
                 **detail: Any) -> None:
    # A plain insert, not a unit-of-work object: events are only ever appended.
    session.connection().execute(_insert_event, {"kind": kind, "subscriber_id": subscriber_id, "edition_id": edition_id,
                                                 "detail": detail, "created_at": utcnow()})


def unsubscribe(session: Session, sub: Subscription, *, how: str, now: dt.datetime | None = None) -> bool:
    """Returns False when it was already unsubscribed (repeat clicks are harmless)."""
    if sub.status == SubscriptionStatus.unsubscribed:
        return False
    sub.status = SubscriptionStatus.unsubscribed
    sub.unsubscribed_at = now or utcnow()
    record_event(session, "unsubscribed", subscriber_id=sub.subscriber_id, list_id=sub.list_id, how=how)
    return True


def confirm(session: Session, sub: Subscription, *, how: str, now: dt.datetime | None = None) -> bool:
    if sub.status == SubscriptionStatus.confirmed:
        return False
    sub.status = SubscriptionStatus.confirmed
    sub.confirmed_at = now or utcnow()
    sub.unsubscribed_at = None
    record_event(session, "confirmed", subscriber_id=sub.subscriber_id, list_id=sub.list_id, how=how)
    return True


def subscriptions_of_list(session: Session, list_id: int) -> list[Subscription]:
    query = (select(Subscription).join(Subscriber).where(Subscription.list_id == list_id).order_by(Subscriber.email))
    return list(session.scalars(query))


def counts_by_status(session: Session, list_id: int) -> dict[str, int]:
    rows = session.execute(select(Subscription.status, func.count()).where(Subscription.list_id == list_id)
                           .group_by(Subscription.status))
    return {str(status): count for status, count in rows}


# --- consent records ------------------------------------------------------------------------------

def record_consent(session: Session, subscriber_id: int, list_id: int | None, action: str, *, ip: str = "",
                   source: str = "", wording_version: str = "", now: dt.datetime | None = None) -> None:
    session.connection().execute(_insert_consent, {
        "subscriber_id": subscriber_id, "list_id": list_id, "action": action, "ip": ip[:64], "source": source,
        "wording_version": wording_version[:40], "created_at": now or utcnow()})


def consents_of(session: Session, subscriber_id: int) -> list[Consent]:
    return list(session.scalars(select(Consent).where(Consent.subscriber_id == subscriber_id)
                                .order_by(Consent.created_at, Consent.id)))


# --- subscribers: search, edit, erase -------------------------------------------------------------

def subscriptions_of(session: Session, subscriber_id: int) -> list[Subscription]:
    query = (select(Subscription).where(Subscription.subscriber_id == subscriber_id)
             .options(selectinload(Subscription.mailing_list)).order_by(Subscription.list_id))
    return list(session.scalars(query))


def search_subscribers(session: Session, *, q: str = "", list_id: int | None = None, status: str | None = None,
                       limit: int = 50, offset: int = 0) -> tuple[list[Subscriber], int]:
    """A page of subscribers matching the filters, and how many match in all."""
    query = select(Subscriber)
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(func.lower(Subscriber.email).like(pattern, escape="\\"),
                                func.lower(Subscriber.name).like(pattern, escape="\\")))
    if list_id is not None or status is not None:
        conditions = [Subscription.subscriber_id == Subscriber.id]
        if list_id is not None:
            conditions.append(Subscription.list_id == list_id)
        if status is not None:
            conditions.append(Subscription.status == status)
        query = query.where(exists().where(*conditions))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(query.order_by(Subscriber.email).limit(limit).offset(offset))
    return list(rows), total


def erase_subscriber(session: Session, subscriber_id: int) -> bool:
    """Delete the person (GDPR erasure): subscriptions, consents and ledger rows go with them; events lose the link."""
    delete_deliveries_of_subscriber(session, subscriber_id)  # the ledger has no foreign keys to cascade
    result = session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    session.expunge_all()  # rows deleted by cascade must not linger in the identity map
    return bool(result.rowcount)


# --- suppressions ---------------------------------------------------------------------------------

def suppressions(session: Session, *, q: str = "", limit: int = 100, offset: int = 0) -> tuple[list[Suppression], int]:
    query = select(Suppression)
    if q:
        query = query.where(func.lower(Suppression.email).contains(q.lower(), autoescape=True))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(query.order_by(Suppression.created_at.desc(), Suppression.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def unsuppress(session: Session, email: str) -> bool:
    return bool(session.execute(delete(Suppression).where(Suppression.email == email)).rowcount)


def lists_with_counts(session: Session) -> list[tuple[MailingList, dict[str, int]]]:
    rows = session.execute(select(Subscription.list_id, Subscription.status, func.count())
                           .group_by(Subscription.list_id, Subscription.status))
    counts: dict[int, dict[str, int]] = {}
    for list_id, status, count in rows:
        counts.setdefault(list_id, {})[str(status)] = int(count)
    return [(m, counts.get(m.id, {})) for m in session.scalars(select(MailingList).order_by(MailingList.slug))]
