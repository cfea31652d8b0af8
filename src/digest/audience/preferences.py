"""The preference centre's library side: what a subscriber chose, changing it, GDPR export and erasure.

Reached through a signed link from any email, so whoever holds it controls the mailbox: changes take
effect at once, and subscribing to another list from here needs no second confirmation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from digest.audience.signup import Origin, confirm_subscription, withdraw
from digest.audience.subscribers import WEEKDAYS, topics_key, validate_row
from digest.config import ListConfig, Settings
from digest.db import audience as queries
from digest.db.models import Subscriber, Subscription, SubscriptionStatus, utcnow
from digest.errors import AudienceError
from digest.render.i18n import available_languages


@dataclass
class ListChoice:
    slug: str
    subscribed: bool
    topics: list[str] = field(default_factory=list)
    frequency: str = "daily"
    weekly_day: int = 0


@dataclass
class Preferences:
    name: str
    timezone: str
    send_hour: int | None
    locale: str
    paused: bool
    lists: list[ListChoice]


def offered_topics(settings: Settings, conf: ListConfig) -> list[str]:
    """The topics a subscriber may pick for a list: the list's own, or every source's when it has none."""
    return sorted(set(conf.topics) or {t for s in settings.sources for t in s.topics})


def languages() -> list[str]:
    return available_languages() or ["en"]


def preferences_view(session: Session, settings: Settings, subscriber: Subscriber) -> dict[str, Any]:
    """Everything the page and its JSON twin show: the person's settings and one entry per configured list."""
    subs = {s.mailing_list.slug: s for s in queries.subscriptions_of(session, subscriber.id)}
    lists = []
    for conf in settings.lists:
        sub = subs.get(conf.slug)
        status = sub.status.value if sub else "none"
        lists.append({"slug": conf.slug, "name": conf.name, "description": conf.description, "status": status,
                      "subscribed": status in ("confirmed", "paused", "pending"),
                      "topics": list(sub.topics) if sub else [], "offered_topics": offered_topics(settings, conf),
                      "frequency": sub.frequency if sub else "daily", "weekly_day": WEEKDAYS[sub.weekly_day if sub else 0]})
    return {"email": subscriber.email, "name": subscriber.name, "timezone": subscriber.timezone,
            "send_hour": subscriber.send_hour, "locale": subscriber.locale, "languages": languages(),
            "paused": any(s.status == SubscriptionStatus.paused for s in subs.values()), "lists": lists}


def parse_preferences(settings: Settings, email: str, form: Mapping[str, Sequence[str]]) -> Preferences:
    """Validate the submitted form (field -> values); AudienceError names the first problem."""
    def one(key: str, default: str = "") -> str:
        values = form.get(key) or [default]
        return str(values[0])

    base = validate_row({"email": email, "name": one("name"), "timezone": one("timezone", "UTC"),
                         "send_hour": one("send_hour"), "locale": one("locale", "en")})
    if base.locale not in languages():
        raise AudienceError(f"language must be one of {', '.join(languages())}")
    chosen = {str(v) for v in form.get("list", [])}
    unknown = chosen - {c.slug for c in settings.lists}
    if unknown:
        raise AudienceError(f"no such list: {', '.join(sorted(unknown))}")
    lists = []
    for conf in settings.lists:
        row = validate_row({"email": email, "topics": ";".join(str(t) for t in form.get(f"topics:{conf.slug}", [])),
                            "frequency": one(f"frequency:{conf.slug}", "daily"),
                            "weekly_day": one(f"weekly_day:{conf.slug}", "mon")})
        extra = set(row.topics) - set(offered_topics(settings, conf))
        if extra:
            raise AudienceError(f"{conf.name} has no topic {', '.join(sorted(extra))}")
        lists.append(ListChoice(conf.slug, conf.slug in chosen, row.topics, row.frequency, row.weekly_day))
    return Preferences(base.name, base.timezone, base.send_hour, base.locale, one("paused") in ("1", "on", "true"), lists)


def apply_preferences(session: Session, subscriber: Subscriber, prefs: Preferences, origin: Origin) -> None:
    subscriber.name, subscriber.timezone = prefs.name, prefs.timezone
    subscriber.send_hour, subscriber.locale = prefs.send_hour, prefs.locale
    now = utcnow()
    for choice in prefs.lists:
        mailing_list = queries.list_by_slug(session, choice.slug)
        if mailing_list is None:
            continue
        sub = queries.subscription(session, mailing_list.id, subscriber.id)
        if not choice.subscribed:
            if sub is not None and sub.status != SubscriptionStatus.unsubscribed:
                withdraw(session, sub, origin, how="preferences")
            continue
        if sub is None:
            sub = Subscription(list_id=mailing_list.id, subscriber_id=subscriber.id, status=SubscriptionStatus.pending,
                               consent_source=origin.source)
            session.add(sub)
            session.flush()
        if sub.status in (SubscriptionStatus.pending, SubscriptionStatus.unsubscribed):
            sub.status = SubscriptionStatus.pending  # confirm_subscription refuses to revive an unsubscribed row
            confirm_subscription(session, sub, origin)
        sub.topics, sub.topics_key = choice.topics, topics_key(choice.topics)
        sub.frequency, sub.weekly_day = choice.frequency, choice.weekly_day
        _pause(sub, prefs.paused, now)
    queries.record_event(session, "preferences", subscriber_id=subscriber.id, source=origin.source)


def _pause(sub: Subscription, paused: bool, now: dt.datetime) -> None:
    if paused and sub.status == SubscriptionStatus.confirmed:
        sub.status, sub.paused_at = SubscriptionStatus.paused, now
    elif not paused and sub.status == SubscriptionStatus.paused:
        sub.status, sub.paused_at = SubscriptionStatus.confirmed, None


def export_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about one person (GDPR art. 15/20), as plain JSON-ready data."""
    def when(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "subscriber": {"email": subscriber.email, "name": subscriber.name, "timezone": subscriber.timezone,
                       "send_hour": subscriber.send_hour, "locale": subscriber.locale,
                       "created_at": when(subscriber.created_at)},
        "subscriptions": [{"list": s.mailing_list.slug, "status": s.status.value, "topics": list(s.topics),
                           "frequency": s.frequency, "weekly_day": WEEKDAYS[s.weekly_day],
                           "created_at": when(s.created_at), "confirmed_at": when(s.confirmed_at),
                           "unsubscribed_at": when(s.unsubscribed_at), "paused_at": when(s.paused_at),
                           "consent_source": s.consent_source}
                          for s in queries.subscriptions_of(session, subscriber.id)],
        "consents": consent_records(session, subscriber.id),
        "suppressed": queries.is_suppressed(session, subscriber.email),
    }


def consent_records(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    slugs: dict[int | None, str | None] = {s.list_id: s.mailing_list.slug for s in queries.subscriptions_of(session, subscriber_id)}
    return [{"list": slugs.get(c.list_id), "action": c.action, "at": c.created_at.isoformat(), "ip": c.ip,
             "source": c.source, "wording_version": c.wording_version}
            for c in queries.consents_of(session, subscriber_id)]


def erase(session: Session, subscriber: Subscriber, *, how: str) -> None:
    """Delete the person and what hangs off them; the audit trail keeps only that an erasure happened."""
    queries.record_event(session, "erased", how=how)
    queries.erase_subscriber(session, subscriber.id)
