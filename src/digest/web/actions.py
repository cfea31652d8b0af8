"""What the admin UI and the API do (not only show): edition state, preview, test send, subscriber edits.

Shared by both faces, so a button and an API call take the same path and the same checks.
"""

from __future__ import annotations

import secrets
from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session

from digest.audience.preferences import languages
from digest.audience.subscribers import validate_row
from digest.config import Settings
from digest.db import admin as admin_queries
from digest.db import audience as queries
from digest.db import deliveries as ledger
from digest.db.models import EditionVariant, Subscriber, utcnow
from digest.db.session import Database
from digest.dispatch.dkim import sign_message
from digest.dispatch.smtp import SmtpTransport
from digest.errors import AudienceError
from digest.render.digest_email import greeting
from digest.render.message import Envelope, build_message, list_id, personalise, sender_domain
from digest.web.data import edition_by_id
from digest.web.errors import Conflict, NotFound

# action -> (new status, statuses it may come from)
TRANSITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pause": ("paused", ("ready", "sending")),
    "resume": ("ready", ("paused",)),
    "cancel": ("cancelled", ("building", "ready", "sending", "paused")),
}
EDITION_ACTIONS = (*TRANSITIONS, "retry")


def edition_action(session: Session, edition_id: int, action: str) -> dict[str, Any]:
    """pause / resume / cancel an edition (workers only claim rows of ready or sending editions), or retry its failed rows."""
    edition = edition_by_id(session, edition_id)
    if action == "retry":
        return {"edition": edition_id, "status": edition.status,
                "requeued": ledger.retry_failed(session, [edition_id], utcnow())}
    if action not in TRANSITIONS:
        raise NotFound(f"unknown action {action!r}; use one of {', '.join(EDITION_ACTIONS)}")
    status, allowed = TRANSITIONS[action]
    if not admin_queries.set_edition_status(session, edition_id, status, only_from=allowed):
        raise Conflict(f"edition {edition_id} is {edition.status}; {action} needs one of: {', '.join(allowed)}")
    session.refresh(edition)
    queries.record_event(session, f"edition {action}", edition_id=edition_id)
    return {"edition": edition_id, "status": edition.status, "requeued": 0}


def variant_of(session: Session, edition_id: int, key: str | None = None) -> EditionVariant:
    edition = edition_by_id(session, edition_id)
    variants = [v for v in edition.variants if v.html]
    if key:
        variants = [v for v in variants if v.variant_key == key]
    if not variants:
        raise NotFound(f"edition {edition_id} has no rendered body" + (f" for variant {key!r}" if key else ""))
    return variants[0]


def preview_html(session: Session, edition_id: int, key: str | None = None) -> str:
    variant = variant_of(session, edition_id, key)
    greet_html, greet_text = greeting(variant.variant_key.rsplit(":", 1)[-1], "Preview Reader")
    html, _ = personalise(variant.html, variant.text, variant.placeholder_token, greeting_html=greet_html,
                          greeting_text=greet_text, unsubscribe_url="#unsubscribe", preferences_url="#preferences")
    return html


def send_test(database: Database, settings: Settings, edition_id: int, email: str, key: str | None = None) -> str:
    """Mail one variant of the edition to `email`, marked as a test; nothing is written to the ledger."""
    with database.session() as session:
        variant = variant_of(session, edition_id, key)
        mailing_list = variant.edition.mailing_list
        greet_html, greet_text = greeting(variant.variant_key.rsplit(":", 1)[-1], "")
        html, text = personalise(variant.html, variant.text, variant.placeholder_token, greeting_html=greet_html,
                                 greeting_text=greet_text, unsubscribe_url=f"{settings.web.base_url}/",
                                 preferences_url=f"{settings.web.base_url}/")
        domain = sender_domain(mailing_list.from_address)
        envelope = Envelope(from_header=mailing_list.from_address, to_email=email, to_name="",
                            subject=f"[test] {variant.subject}", message_id=f"<test.{secrets.token_hex(12)}@{domain}>",
                            list_id=list_id(mailing_list.name, mailing_list.slug, domain), bulk=False, date=utcnow())
        sender = parseaddr(mailing_list.from_address)[1]
    with SmtpTransport(settings.smtp, settings.smtp_password()) as transport:
        transport.send(sender, email, sign_message(settings.dkim, build_message(envelope, html_body=html, text_body=text)))
    return envelope.message_id


def edit_subscriber(session: Session, subscriber: Subscriber, changes: dict[str, Any]) -> None:
    """Apply admin edits of name, time zone, send hour and language, validated like an imported row."""
    row = {"email": subscriber.email, "name": subscriber.name, "timezone": subscriber.timezone,
           "send_hour": "" if subscriber.send_hour is None else str(subscriber.send_hour), "locale": subscriber.locale}
    row.update({k: "" if v is None else str(v) for k, v in changes.items() if k in ("name", "timezone", "send_hour", "locale")})
    data = validate_row(row)
    if data.locale not in languages():
        raise AudienceError(f"language must be one of {', '.join(languages())}")
    subscriber.name, subscriber.timezone, subscriber.send_hour, subscriber.locale = (data.name, data.timezone,
                                                                                     data.send_hour, data.locale)
    queries.record_event(session, "edited by admin", subscriber_id=subscriber.id, fields=sorted(changes))


def set_subscription_status(session: Session, subscriber: Subscriber, slug: str, status: str) -> None:
    mailing_list = queries.list_by_slug(session, slug)
    sub = queries.subscription(session, mailing_list.id, subscriber.id) if mailing_list else None
    if sub is None:
        raise NotFound(f"{subscriber.email} has no subscription to {slug!r}")
    if status == "unsubscribed":
        queries.unsubscribe(session, sub, how="admin")
    elif status == "confirmed":
        queries.confirm(session, sub, how="admin")
    else:
        raise AudienceError("status must be confirmed or unsubscribed")
