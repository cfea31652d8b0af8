"""What the clock will do next: per list, the next fire times and the local-hour delivery buckets."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db.models import Subscriber, Subscription, SubscriptionStatus
from digest.schedule.periods import current_period, fire_times_between, local_hour_after


def upcoming(session: Session, settings: Settings, now: dt.datetime, fires: int = 3) -> list[dict[str, object]]:
    lists = audience_queries.sync_lists(session, settings.lists)
    out: list[dict[str, object]] = []
    for conf in settings.lists:
        period = current_period(conf.schedule, conf.timezone, now)
        horizon = now + max(period.length, dt.timedelta(days=1)) * (fires + 1)
        next_times = fire_times_between(conf.schedule, conf.timezone, now, horizon)[:fires]
        query = (select(Subscriber.timezone, Subscriber.send_hour, func.count())
                 .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                 .where(Subscription.list_id == lists[conf.slug].id, Subscription.status == SubscriptionStatus.confirmed)
                 .group_by(Subscriber.timezone, Subscriber.send_hour).order_by(Subscriber.timezone, Subscriber.send_hour))
        buckets = []
        for tz, hour, count in session.execute(query):
            start = next_times[0] if next_times else now
            when = start if hour is None else local_hour_after(start, tz, hour)
            buckets.append({"timezone": tz, "send_hour": hour, "subscribers": count,
                            "next_delivery": when.strftime("%Y-%m-%d %H:%M")})
        out.append({"list": conf.slug, "schedule": conf.schedule, "timezone": conf.timezone,
                    "current_period": period.key, "next_fire_times": [t.strftime("%Y-%m-%d %H:%M UTC") for t in next_times],
                    "buckets": buckets})
    return out
