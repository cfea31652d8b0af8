"""Personalising a claimed row: the variant's skeleton with the recipient's fills, in a sender thread.

No database access per message: the variants a batch needs are loaded with its claim (`load_variants`),
and each recipient costs a few string fills and two HMACs (`Personaliser.build`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Protocol

from sqlalchemy.orm import Session

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db.deliveries import Claimed
from digest.db.models import EditionVariant
from digest.dispatch.dkim import sign_message
from digest.dispatch.verp import verp_address
from digest.errors import DigestError
from digest.render.digest_email import greeting
from digest.render.headers import default_unsubscribe_mailto
from digest.render.message import list_id, sender_domain
from digest.render.skeleton import MessageSkeleton, Recipient, cached_skeleton


@dataclass
class Outgoing:
    """One message for SMTP; claimed rows are queued with `row` set and built by their sender thread."""

    delivery_id: int
    sender: str
    recipient: str
    message: bytes
    message_id: str
    suppressed: bool = False
    edition_id: int = 0
    row: Claimed | None = None  # not built yet
    date: dt.datetime | None = None  # the Date header (one per claimed batch)
    error: DigestError | None = None  # could not be built: fails with the reason
    wire: bytes | None = None  # the message as DATA carries it (`SmtpTransport.wire`), made while building


class _Row(Protocol):
    id: int
    edition_id: int


def message_id_for(delivery: _Row, secret: bytes, domain: str) -> str:
    """Stable per delivery (a resend after a crash reuses it), unguessable from outside."""
    tag = hmac.new(secret, f"msgid:{delivery.id}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"<{delivery.edition_id}.{delivery.id}.{tag}@{domain}>"


@dataclass
class _Variant:
    """What every recipient of one edition variant shares; built once per worker process."""

    list_id: int
    sender: str
    domain: str
    skeleton: MessageSkeleton | None
    error: DigestError | None = None


class Personaliser:
    def __init__(self, settings: Settings, secret: bytes, clock: Callable[[], dt.datetime]) -> None:
        self.settings, self.secret, self.clock = settings, secret, clock
        self.links = Signer(secret)
        self._message_ids = hmac.new(secret, digestmod=hashlib.sha256)
        self._greetings: dict[str, tuple[str, str]] = {}  # per locale, for subscribers without a name
        self._variants: dict[int, _Variant] = {}

    def load_variants(self, session: Session, variant_ids: set[int]) -> None:
        """The skeletons of the variants not loaded yet (in the claim's transaction)."""
        for variant_id in sorted(variant_ids - self._variants.keys()):
            variant = session.get(EditionVariant, variant_id)
            if variant is None:
                self._variants[variant_id] = _Variant(0, "", "", None, DigestError(f"variant {variant_id} is gone"))
                continue
            list_row = variant.edition.mailing_list
            domain = sender_domain(list_row.from_address)
            entry = _Variant(list_row.id, parseaddr(list_row.from_address)[1], domain, None)
            try:
                entry.skeleton = cached_skeleton(
                    variant.html, variant.text, variant.placeholder_token, variant.subject, list_row.from_address,
                    list_id(list_row.name, list_row.slug, domain), f"{variant.edition_id}:{list_row.slug}:digest",
                    default_unsubscribe_mailto(list_row.from_address))
            except DigestError as exc:
                entry.error = exc
            self._variants[variant_id] = entry

    def build(self, row: Claimed, now: dt.datetime | None = None) -> Outgoing:
        """The recipient's message: the variant's skeleton with its placeholders filled (no database access)."""
        variant = self._variants[row.variant_id]
        if variant.skeleton is None:
            raise variant.error or DigestError(f"variant {row.variant_id} cannot be built")
        message_id = row.message_id or self.message_id(row, variant.domain)
        base = self.settings.web.base_url
        unsubscribe_url = f"{base}/u/{self.links.make('unsubscribe', row.subscriber_id, variant.list_id)}"
        preferences_url = f"{base}/p/{self.links.make('preferences', row.subscriber_id, variant.list_id)}"
        if row.name:
            greet_html, greet_text = greeting(row.locale, row.name)
        else:
            cached = self._greetings.get(row.locale)
            if cached is None:
                cached = self._greetings[row.locale] = greeting(row.locale, "")
            greet_html, greet_text = cached
        message = variant.skeleton.render(Recipient(
            email=row.email, message_id=message_id, name=row.name, date=now or self.clock(), greeting_html=greet_html,
            greeting_text=greet_text, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url))
        message = sign_message(self.settings.dkim, message)  # unchanged when [dkim] is not configured
        return Outgoing(delivery_id=row.id, sender=variant.sender, recipient=row.email, message=message,
                        message_id=message_id, edition_id=row.edition_id)

    def message_id(self, row: Claimed, domain: str) -> str:
        """`message_id_for`, with the HMAC key schedule done once."""
        mac = self._message_ids.copy()
        mac.update(b"msgid:%d" % row.id)
        return f"<{row.edition_id}.{row.id}.{mac.hexdigest()[:16]}@{domain}>"

    def envelope_sender(self, out: Outgoing) -> str:
        """VERP when [bounces] is configured: the bounce names its delivery."""
        if self.settings.bounces is None:
            return out.sender
        return verp_address(out.delivery_id, self.secret, self.settings.bounces)
