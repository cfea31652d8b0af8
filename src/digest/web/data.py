"""The data behind the admin pages and the REST API: one builder per view, shared by both faces.

Each function takes a Session and returns plain JSON-ready data (datetimes as ISO strings), so a page
renders exactly what the API returns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from digest.audience.subscribers import WEEKDAYS
from digest.db import admin as admin_queries
from digest.db import audience as queries
from digest.db.models import Delivery, Edition, Source, Subscriber, Subscription, Suppression, utcnow
from digest.web.errors import NotFound


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def lists_data(session: Session) -> list[dict[str, Any]]:
    return [{"slug": m.slug, "name": m.name, "from_address": m.from_address, "schedule": m.schedule,
             "timezone": m.timezone, "double_opt_in": m.double_opt_in, "max_stories": m.max_stories,
             "topics": list(m.topics or []), "counts": counts}
            for m, counts in queries.lists_with_counts(session)]


def list_data(session: Session, slug: str) -> dict[str, Any]:
    found = next((item for item in lists_data(session) if item["slug"] == slug), None)
    if found is None:
        raise NotFound(f"no list {slug!r}")
    return found


def subscription_data(sub: Subscription) -> dict[str, Any]:
    return {"list": sub.mailing_list.slug, "status": sub.status.value, "topics": list(sub.topics or []),
            "frequency": sub.frequency, "weekly_day": WEEKDAYS[sub.weekly_day % 7],
            "created_at": iso(sub.created_at), "confirmed_at": iso(sub.confirmed_at),
            "unsubscribed_at": iso(sub.unsubscribed_at), "consent_source": sub.consent_source}


def subscriber_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    return {"id": subscriber.id, "email": subscriber.email, "name": subscriber.name, "timezone": subscriber.timezone,
            "send_hour": subscriber.send_hour, "locale": subscriber.locale, "created_at": iso(subscriber.created_at),
            "suppressed": queries.is_suppressed(session, subscriber.email),
            "subscriptions": [subscription_data(s) for s in queries.subscriptions_of(session, subscriber.id)]}


def subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    return subscriber


def list_id_of(session: Session, slug: str | None) -> int | None:
    if not slug:
        return None
    found = queries.list_by_slug(session, slug)
    if found is None:
        raise NotFound(f"no list {slug!r}")
    return found.id


def subscribers_data(session: Session, *, q: str = "", list_slug: str | None = None, status: str | None = None,
                     limit: int = 50, offset: int = 0) -> dict[str, Any]:
    rows, total = queries.search_subscribers(session, q=q, list_id=list_id_of(session, list_slug), status=status,
                                             limit=limit, offset=offset)
    return {"items": [subscriber_data(session, s) for s in rows], "total": total, "limit": limit, "offset": offset}


def source_data(source: Source, now: dt.datetime) -> dict[str, Any]:
    if not source.enabled:
        state = "disabled"
    elif source.retired_at:
        state = "retired"
    elif source.consecutive_failures:
        state = "failing"
    else:
        state = "ok" if source.last_success_at else "new"
    return {"id": source.id, "name": source.name, "url": source.url, "kind": source.kind, "enabled": source.enabled,
            "state": state, "topics": list(source.topics or []), "last_success_at": iso(source.last_success_at),
            "last_error": source.last_error, "last_error_at": iso(source.last_error_at),
            "consecutive_failures": source.consecutive_failures, "items_seen": source.items_seen,
            "retired_at": iso(source.retired_at)}


def sources_data(session: Session) -> list[dict[str, Any]]:
    now = utcnow()
    return [source_data(s, now) for s in admin_queries.sources(session)]


def edition_data(session: Session, edition: Edition) -> dict[str, Any]:
    return {"id": edition.id, "list": edition.mailing_list.slug, "period": edition.period, "kind": edition.kind,
            "status": edition.status, "subject": edition.subject, "skip_reason": edition.skip_reason,
            "story_count": len(edition.story_ids or []), "created_at": iso(edition.created_at),
            "counts": admin_queries.delivery_counts(session, edition.id)}


def edition_by_id(session: Session, edition_id: int) -> Edition:
    edition = admin_queries.edition(session, edition_id)
    if edition is None:
        raise NotFound(f"no edition {edition_id}")
    return edition


def editions_data(session: Session, *, list_slug: str | None = None, status: str | None = None, limit: int = 50,
                  offset: int = 0) -> list[dict[str, Any]]:
    rows = admin_queries.editions(session, list_id=list_id_of(session, list_slug), status=status, limit=limit,
                                  offset=offset)
    return [edition_data(session, e) for e in rows]


def delivery_data(delivery: Delivery, email: str) -> dict[str, Any]:
    return {"id": delivery.id, "edition_id": delivery.edition_id, "email": email,
            "state": getattr(delivery.state, "value", str(delivery.state)), "attempts": delivery.attempts,
            "last_reply": delivery.last_reply, "message_id": delivery.message_id, "sent_at": iso(delivery.sent_at),
            "next_attempt_at": iso(delivery.next_attempt_at), "bounce_kind": getattr(delivery, "bounce_kind", None)}


def deliveries_data(session: Session, *, edition_id: int | None = None, state: str | None = None, limit: int = 50,
                    offset: int = 0) -> dict[str, Any]:
    rows = admin_queries.deliveries(session, edition_id=edition_id, state=state, limit=limit, offset=offset)
    return {"items": [delivery_data(d, e) for d, e in rows], "limit": limit, "offset": offset,
            "counts": admin_queries.delivery_counts(session, edition_id)}


def ledger_data(session: Session, *, days: int = 14, now: dt.datetime | None = None) -> dict[str, Any]:
    """Counts by state, and sends / deferrals / bounces for each of the last `days` UTC days (zeros included)."""
    now = now or utcnow()
    start = (now - dt.timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    found = admin_queries.daily_ledger(session, start)
    series = []
    for offset in range(days):
        day = (start + dt.timedelta(days=offset)).date().isoformat()
        series.append({"day": day, **found.get(day, {"sent": 0, "deferred": 0, "bounced": 0})})
    return {"counts": admin_queries.delivery_counts(session), "days": series}


def suppression_data(row: Suppression) -> dict[str, Any]:
    return {"email": row.email, "reason": row.reason, "kind": getattr(row, "kind", "admin"),
            "created_at": iso(row.created_at)}


def suppressions_data(session: Session, *, q: str = "", limit: int = 100, offset: int = 0) -> dict[str, Any]:
    rows, total = queries.suppressions(session, q=q, limit=limit, offset=offset)
    return {"items": [suppression_data(r) for r in rows], "total": total, "limit": limit, "offset": offset}
