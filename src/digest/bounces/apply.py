"""Apply one returned message: bounce score, complaint, unsubscribe — or ignore it, with the reason.

Trust rules (the intake is reachable by anyone who can send mail):
* a bounce counts only through a genuine VERP address (HMAC-tagged delivery id);
* a complaint counts through VERP or a Message-ID we generated (unguessable per delivery);
* a mailto: unsubscribe is addressed to a list's From address and names its sender, like any
  List-Unsubscribe mailto; the worst it can do is unsubscribe the address it claims to be.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.bounces.classify import Report, classify, parse, says_unsubscribe, sender_address
from digest.bounces.scoring import Thresholds, record_bounce, record_complaint
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db import deliveries as ledger
from digest.db.models import Delivery, MailingList, Subscriber, utcnow
from digest.db.session import Database
from digest.dispatch.verp import find_verp

log = logging.getLogger(__name__)

_ROUTING_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Return-Path")


@dataclass
class Outcome:
    kind: str  # hard | soft | complaint | unsubscribe | delayed | auto_reply | unknown
    action: str  # suppressed | scored | unsubscribed | ignored
    email: str = ""
    delivery_id: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Summary:
    messages: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.messages += 1
        self.by_kind[outcome.kind] = self.by_kind.get(outcome.kind, 0) + 1
        self.by_action[outcome.action] = self.by_action.get(outcome.action, 0) + 1
        if len(self.outcomes) < 1000:
            self.outcomes.append(outcome)

    def as_dict(self) -> dict[str, object]:
        return {"messages": self.messages, "by_kind": self.by_kind, "by_action": self.by_action,
                "outcomes": [o.as_dict() for o in self.outcomes]}


def process_bytes(database: Database, settings: Settings, data: bytes, rcpts: list[str] | None = None,
                  now: dt.datetime | None = None) -> Outcome:
    return process_message(database, settings, parse(data), rcpts or [], now or utcnow())


def process_message(database: Database, settings: Settings, msg: Message, rcpts: list[str],
                    now: dt.datetime) -> Outcome:
    secret = settings.secret_key()
    candidates = list(rcpts) + [str(v) for h in _ROUTING_HEADERS for v in msg.get_all(h, [])]
    delivery_id = find_verp(candidates, secret, settings.bounces) if settings.bounces else None
    report = classify(msg)
    with database.session() as session:
        if delivery_id is None and report.kind not in ("complaint",):
            unsubscribed = _mailto_unsubscribe(session, settings, msg, candidates)
            if unsubscribed is not None:
                return unsubscribed
        delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
        if report.kind == "complaint" and delivery is None and report.original_message_id:
            delivery = ledger.delivery_for_message_id(session, report.original_message_id)
        return _apply(session, settings, report, delivery, now)


def _apply(session: Session, settings: Settings, report: Report, delivery: Delivery | None, now: dt.datetime) -> Outcome:
    if report.kind in ("delayed", "auto_reply", "unknown"):
        return Outcome(report.kind, "ignored", reason=report.reason)
    if delivery is None:
        why = "names no delivery of ours (no valid VERP address or Message-ID)"
        log.warning("%s report ignored: it %s", report.kind, why)
        return Outcome(report.kind, "ignored", reason=why)
    email = delivery.subscriber.email
    ledger.record_bounce(session, delivery.id, report.kind, now)
    if report.kind == "complaint":
        record_complaint(session, email, f"{report.feedback_type} report", subscriber_id=delivery.subscriber_id,
                         edition_id=delivery.edition_id)
        return Outcome("complaint", "suppressed", email, delivery.id, report.reason)
    suppressed = record_bounce(session, email, report.kind, report.reason, now, Thresholds.from_settings(settings),
                               subscriber_id=delivery.subscriber_id, edition_id=delivery.edition_id)
    return Outcome(report.kind, "suppressed" if suppressed else "scored", email, delivery.id, report.reason)


def _mailto_unsubscribe(session: Session, settings: Settings, msg: Message, candidates: list[str]) -> Outcome | None:
    """Mail to a list's From address asking to unsubscribe (List-Unsubscribe: <mailto:…?subject=unsubscribe>)."""
    if settings.bounces is not None and not settings.bounces.unsubscribe_by_mail:
        return None
    if not says_unsubscribe(msg):
        return None
    addressed = {a.lower() for _, a in getaddresses(candidates) if a}
    lists = [m for m in session.scalars(select(MailingList)) if parseaddr(m.from_address)[1].lower() in addressed]
    if not lists:
        return None
    sender = sender_address(msg)
    subscriber = session.scalar(select(Subscriber).where(func.lower(Subscriber.email) == sender.lower()))
    if subscriber is None:
        return Outcome("unsubscribe", "ignored", sender, reason="sender is not a subscriber")
    changed = False
    for mailing_list in lists:
        sub = audience_queries.subscription(session, mailing_list.id, subscriber.id)
        if sub is not None:
            changed |= audience_queries.unsubscribe(session, sub, how="mailto")
    return Outcome("unsubscribe", "unsubscribed" if changed else "ignored", subscriber.email,
                   reason=", ".join(m.slug for m in lists))
