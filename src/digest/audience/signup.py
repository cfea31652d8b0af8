"""Sign-up from the public form: double opt-in, consent records, and nothing that reveals who is subscribed.

The public form must not let a stranger change an existing subscriber's settings: for a known address
only a pending or unsubscribed subscription takes the new choices, and only the mailbox owner's confirm
click turns it on. Everything else is left to the preference centre, which needs a signed link.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.audience.subscribers import SubscriberData, insert_new, topics_key
from digest.db import audience as queries
from digest.db.models import MailingList, Subscription, SubscriptionStatus, utcnow


@dataclass
class Origin:
    """Where a consent came from, kept with the consent record."""

    ip: str = ""
    source: str = "web"
    wording_version: str = ""


def request_subscription(session: Session, mailing_list: MailingList, data: SubscriberData,
                         origin: Origin) -> tuple[int, int] | None:
    """Record a sign-up; returns (subscriber_id, list_id) when a confirmation mail should go out."""
    if queries.is_suppressed(session, data.email):
        return None
    subscriber = queries.subscriber_by_email(session, data.email)
    if subscriber is None:
        subscriber_id, _, status = insert_new(session, mailing_list, data, confirmed=False, source=origin.source)
    else:
        found = queries.subscription(session, mailing_list.id, subscriber.id)
        if found is not None and found.status in (SubscriptionStatus.confirmed, SubscriptionStatus.paused):
            return None  # already receiving it; the page says the same as for anyone else
        if found is None:
            found = Subscription(list_id=mailing_list.id, subscriber_id=subscriber.id, status=SubscriptionStatus.pending,
                                 consent_source=origin.source)
            session.add(found)
        found.status = SubscriptionStatus.pending
        found.topics, found.topics_key = data.topics, topics_key(data.topics)
        found.frequency, found.weekly_day = data.frequency, data.weekly_day
        session.flush()
        subscriber_id, status = subscriber.id, found.status
    queries.record_consent(session, subscriber_id, mailing_list.id, "requested", ip=origin.ip,
                           source=origin.source, wording_version=origin.wording_version)
    if status == SubscriptionStatus.confirmed:  # a list without double opt-in
        return None
    return subscriber_id, mailing_list.id


def confirm_subscription(session: Session, sub: Subscription, origin: Origin) -> bool:
    """The confirm click: the subscription starts and the consent record says when, from where, under which wording."""
    if sub.status == SubscriptionStatus.unsubscribed:
        return False  # an old confirm link must not undo a later unsubscribe
    changed = queries.confirm(session, sub, how=origin.source)
    if changed:
        queries.record_consent(session, sub.subscriber_id, sub.list_id, "confirmed", ip=origin.ip,
                               source=origin.source, wording_version=origin.wording_version)
    return changed


def withdraw(session: Session, sub: Subscription, origin: Origin, *, how: str) -> bool:
    """Unsubscribe, and note the withdrawal of consent next to the grant."""
    changed = queries.unsubscribe(session, sub, how=how, now=utcnow())
    if changed:
        queries.record_consent(session, sub.subscriber_id, sub.list_id, "withdrawn", ip=origin.ip, source=how,
                               wording_version=origin.wording_version)
    return changed
