"""Adding subscribers, and CSV import/export (`email[,name,timezone,send_hour,topics,locale]`).

A bad row is reported with its line number and the good rows still import.
Importing never resurrects someone who unsubscribed, and never un-suppresses.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import EllipsisType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from digest.audience.addresses import normalise_address
from digest.db import audience as queries
from digest.db.models import MailingList, Subscriber, Subscription, SubscriptionStatus, utcnow
from digest.errors import AudienceError

CSV_FIELDS = ["email", "name", "timezone", "send_hour", "topics", "locale", "frequency", "weekly_day"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class SubscriberData:
    email: str
    name: str = ""
    timezone: str = "UTC"
    send_hour: int | None = None
    topics: list[str] = field(default_factory=list)
    locale: str = "en"
    frequency: str = "daily"
    weekly_day: int = 0


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    pending: list[tuple[int, int]] = field(default_factory=list)  # (subscriber_id, list_id) needing a confirm mail

    def as_dict(self) -> dict[str, object]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "errors": [{"line": line, "error": error} for line, error in self.errors],
                "confirmations_due": len(self.pending)}


def topics_key(topics: list[str]) -> str:
    """Stable key of a topic choice; subscribers with equal keys share a compiled variant."""
    if not topics:
        return ""
    return hashlib.sha1(";".join(sorted(topics)).encode()).hexdigest()[:16]


def validate_row(row: dict[str, str]) -> SubscriberData:
    email = normalise_address(row.get("email", ""))
    tz = (row.get("timezone") or "").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise AudienceError(f"unknown time zone {tz!r} (use an IANA name such as Asia/Seoul)") from None
    hour_text = (row.get("send_hour") or "").strip()
    send_hour = None
    if hour_text:
        if not hour_text.isdigit() or not 0 <= int(hour_text) <= 23:
            raise AudienceError(f"send_hour must be a whole hour 0-23, got {hour_text!r}")
        send_hour = int(hour_text)
    topics = sorted({t.strip().lower() for t in (row.get("topics") or "").replace("|", ";").split(";") if t.strip()})
    locale = (row.get("locale") or "").strip() or "en"
    if len(locale) > 20 or not locale.replace("-", "").replace("_", "").isalnum():
        raise AudienceError(f"locale {locale!r} is not a language tag such as en or ko")
    name = " ".join((row.get("name") or "").split())[:200]
    frequency = (row.get("frequency") or "").strip().lower() or "daily"
    if frequency not in ("daily", "weekly"):
        raise AudienceError(f"frequency must be daily or weekly, got {frequency!r}")
    day_text = (row.get("weekly_day") or "").strip().lower()[:3] or "mon"
    if day_text not in WEEKDAYS:
        raise AudienceError(f"weekly_day must be a weekday name such as mon or fri, got {row.get('weekly_day')!r}")
    return SubscriberData(email=email, name=name, timezone=tz, send_hour=send_hour, topics=topics, locale=locale,
                          frequency=frequency, weekly_day=WEEKDAYS.index(day_text))


def add_subscriber(session: Session, mailing_list: MailingList, data: SubscriberData, *, confirmed: bool,
                   source: str, existing: Subscriber | None | EllipsisType = ...) -> tuple[str, Subscription]:
    """Create or update; returns ("added"|"updated"|"unchanged", subscription).

    `existing`: what the caller's own lookup of this address found (None: nobody), to save a query.
    """
    subscriber = queries.subscriber_by_email(session, data.email) if existing is ... else existing
    if subscriber is None:
        _, subscription_id, _ = insert_new(session, mailing_list, data, confirmed=confirmed, source=source)
        sub = session.get(Subscription, subscription_id)
        assert sub is not None
        return "added", sub
    outcome = "unchanged"
    changes = {"name": data.name or subscriber.name, "timezone": data.timezone, "send_hour": data.send_hour,
               "locale": data.locale}
    for key, value in changes.items():
        if getattr(subscriber, key) != value:
            setattr(subscriber, key, value)
            outcome = "updated"
    sub = queries.subscription(session, mailing_list.id, subscriber.id)
    if sub is None:
        status = SubscriptionStatus.confirmed if confirmed or not mailing_list.double_opt_in else SubscriptionStatus.pending
        sub = Subscription(list_id=mailing_list.id, subscriber_id=subscriber.id, status=status, topics=data.topics,
                           topics_key=topics_key(data.topics), frequency=data.frequency, weekly_day=data.weekly_day,
                           consent_source=source, confirmed_at=utcnow() if status == SubscriptionStatus.confirmed else None)
        session.add(sub)
        session.flush()
        queries.record_event(session, "subscribed", subscriber_id=subscriber.id, list_id=mailing_list.id,
                             source=source, confirmed=status == SubscriptionStatus.confirmed)
        outcome = "updated"
    else:
        if (sub.topics, sub.frequency, sub.weekly_day) != (data.topics, data.frequency, data.weekly_day):
            sub.topics, sub.frequency, sub.weekly_day = data.topics, data.frequency, data.weekly_day
            sub.topics_key = topics_key(data.topics)
            outcome = "updated"
        if confirmed and sub.status == SubscriptionStatus.pending:
            queries.confirm(session, sub, how=source)
            outcome = "updated"
    return outcome, sub


def insert_new(session: Session, mailing_list: MailingList, data: SubscriberData, *, confirmed: bool,
               source: str) -> tuple[int, int, SubscriptionStatus]:
    """A new address: subscriber, subscription and event as plain inserts (the public form's hot path).

    Returns (subscriber id, subscription id, status): confirmed when the caller vouches for it or the list has no double
    opt-in, else pending.
    """
    status = SubscriptionStatus.confirmed if confirmed or not mailing_list.double_opt_in else SubscriptionStatus.pending
    subscriber_id = queries.insert_subscriber(session, email=data.email, name=data.name, timezone=data.timezone,
                                              send_hour=data.send_hour, locale=data.locale)
    subscription_id = queries.insert_subscription(
        session, list_id=mailing_list.id, subscriber_id=subscriber_id, status=status, topics=data.topics,
        topics_key=topics_key(data.topics), frequency=data.frequency, weekly_day=data.weekly_day, consent_source=source,
        confirmed_at=utcnow() if status == SubscriptionStatus.confirmed else None)
    queries.record_event(session, "subscribed", subscriber_id=subscriber_id, list_id=mailing_list.id, source=source,
                         confirmed=status == SubscriptionStatus.confirmed)
    return subscriber_id, subscription_id, status


def import_csv(session: Session, mailing_list: MailingList, lines: Iterable[str], *, confirmed: bool,
               source: str = "import") -> ImportReport:
    report = ImportReport()
    reader = csv.DictReader(lines)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        report.errors.append((1, f"header must start with 'email' (columns: {', '.join(CSV_FIELDS)})"))
        return report
    unknown = [h for h in header if h not in CSV_FIELDS]
    if unknown:
        report.errors.append((1, f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(CSV_FIELDS)}"))
        return report
    reader.fieldnames = header
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        if None in row:
            report.errors.append((line, "more fields than the header has"))
            continue
        try:
            data = validate_row({k: v or "" for k, v in row.items()})
        except AudienceError as exc:
            report.errors.append((line, str(exc)))
            continue
        if data.email in seen:
            report.errors.append((line, f"{data.email} appears twice in this file; first one kept"))
            continue
        seen.add(data.email)
        if queries.is_suppressed(session, data.email):
            report.errors.append((line, f"{data.email} is on the suppression list; not imported"))
            continue
        with session.begin_nested():
            known = queries.subscriber_by_email(session, data.email)
            before = queries.subscription(session, mailing_list.id, known.id) if known else None
            outcome, sub = add_subscriber(session, mailing_list, data, confirmed=confirmed, source=source,
                                          existing=known)
            if before is None:  # a new subscription: keep the consent record the admin vouched for
                queries.record_consent(session, sub.subscriber_id, mailing_list.id,
                                       "imported" if confirmed else "requested", source=source)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if sub.status == SubscriptionStatus.pending and outcome == "added":
            report.pending.append((sub.subscriber_id, sub.list_id))
    return report


def export_csv(session: Session, mailing_list: MailingList) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, "status"])
    for sub in queries.subscriptions_of_list(session, mailing_list.id):
        s = sub.subscriber
        writer.writerow([_cell(s.email), _cell(s.name), s.timezone, "" if s.send_hour is None else s.send_hour,
                         ";".join(sub.topics), s.locale, sub.frequency, WEEKDAYS[sub.weekly_day], sub.status.value])
    return out.getvalue()


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ is prefixed with a quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
