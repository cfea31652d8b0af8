"""The send loop: claim a batch, send each row, record each outcome; repeat until nothing is due."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.utils import parseaddr

from sqlalchemy.orm import Session

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db import deliveries as ledger
from digest.db.models import Delivery, EditionVariant, MailingList, utcnow
from digest.db.session import Database
from digest.dispatch.smtp import SmtpTransport
from digest.errors import DispatchError, PermanentDispatchError
from digest.render.digest_email import greeting
from digest.render.message import Envelope, build_message, list_id, personalise, sender_domain

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


@dataclass
class DispatchReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    recovered: int = 0
    elapsed_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "rate_per_second": round(self.rate, 1)}


@dataclass
class Outgoing:
    """One message ready for SMTP, built before any network I/O."""

    delivery_id: int
    sender: str
    recipient: str
    message: bytes
    message_id: str
    suppressed: bool


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def message_id_for(delivery: Delivery, secret: bytes, domain: str) -> str:
    """Stable per delivery (a resend after a crash reuses it), unguessable from outside."""
    tag = hmac.new(secret, f"msgid:{delivery.id}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"<{delivery.edition_id}.{delivery.id}.{tag}@{domain}>"


class Dispatcher:
    """Sends due deliveries through one SMTP transport; one instance per worker thread/process."""

    def __init__(self, database: Database, settings: Settings, *, worker_id: str | None = None,
                 clock: Clock = utcnow) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.secret = settings.secret_key()
        self.signer = Signer(self.secret)
        self._variants: dict[int, EditionVariant] = {}
        self._lists: dict[int, MailingList] = {}

    def run(self, *, edition_ids: list[int] | None = None, progress: Callable[[DispatchReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> DispatchReport:
        report = DispatchReport()
        started = time.perf_counter()
        d = self.settings.dispatch
        with SmtpTransport(self.settings.smtp, self.settings.smtp_password()) as transport:
            while not should_stop():
                with self.database.session() as session:
                    report.recovered += ledger.recover_ambiguous(session, self.clock(), d.ambiguous)
                    batch = ledger.claim_batch(session, self.worker_id, self.clock(), lease_seconds=d.lease_seconds,
                                               limit=d.batch_size, edition_ids=edition_ids)
                    work = [self._prepare(session, row) for row in batch]
                if not work:
                    break
                for index, item in enumerate(work):
                    if should_stop():
                        with self.database.session() as session:
                            ledger.release(session, [w.delivery_id for w in work[index:]], self.worker_id)
                        break
                    self._send_one(transport, item, report=report)
                    if progress:
                        report.elapsed_seconds = time.perf_counter() - started
                        progress(report)
        report.elapsed_seconds = time.perf_counter() - started
        return report

    def _prepare(self, session: Session, row: Delivery) -> Outgoing:
        variant = self._variants.get(row.variant_id) or session.get(EditionVariant, row.variant_id)
        assert variant is not None
        self._variants[row.variant_id] = variant
        list_row = self._lists.get(row.edition.list_id) or row.edition.mailing_list
        self._lists[row.edition.list_id] = list_row
        subscriber = row.subscriber
        domain = sender_domain(list_row.from_address)
        message_id = row.message_id or message_id_for(row, self.secret, domain)
        base = self.settings.web.base_url
        unsubscribe_url = f"{base}/u/{self.signer.make('unsubscribe', subscriber.id, list_row.id)}"
        preferences_url = f"{base}/p/{self.signer.make('preferences', subscriber.id, list_row.id)}"
        greet_html, greet_text = greeting(subscriber.locale, subscriber.name)
        html_body, text_body = personalise(variant.html, variant.text, variant.placeholder_token,
                                           greeting_html=greet_html, greeting_text=greet_text,
                                           unsubscribe_url=unsubscribe_url, preferences_url=preferences_url)
        envelope = Envelope(
            from_header=list_row.from_address, to_email=subscriber.email, to_name=subscriber.name,
            subject=variant.subject, message_id=message_id, list_id=list_id(list_row.name, list_row.slug, domain),
            unsubscribe_url=unsubscribe_url, feedback_id=f"{row.edition_id}:{list_row.slug}:digest",
            date=self.clock(),
        )
        message = build_message(envelope, html_body=html_body, text_body=text_body)
        return Outgoing(delivery_id=row.id, sender=parseaddr(list_row.from_address)[1], recipient=subscriber.email,
                        message=message, message_id=message_id,
                        suppressed=audience_queries.is_suppressed(session, subscriber.email))

    def _send_one(self, transport: SmtpTransport, out: Outgoing, *, report: DispatchReport) -> None:
        d = self.settings.dispatch
        delivery_id, recipient = out.delivery_id, out.recipient
        if out.suppressed:
            with self.database.session() as session:
                ledger.mark_failed(session, delivery_id, self.worker_id, reply="suppressed before sending")
            return

        def before_data() -> bool:
            with self.database.session() as session:
                return ledger.mark_transmitting(session, delivery_id, self.worker_id, message_id=out.message_id,
                                                now=self.clock(), lease_seconds=d.lease_seconds)

        try:
            result = transport.send(out.sender, recipient, out.message, before_data=before_data)
        except PermanentDispatchError as exc:
            with self.database.session() as session:
                ledger.mark_failed(session, delivery_id, self.worker_id, reply=str(exc))
                if exc.code and 500 <= exc.code < 600 and "RCPT" in str(exc):
                    audience_queries.suppress(session, recipient, f"hard bounce: {exc}")
            report.failed += 1
            report.errors.append(f"{recipient}: {exc}")
            log.warning("delivery %d to %s failed: %s", delivery_id, recipient, exc)
            return
        except DispatchError as exc:
            with self.database.session() as session:
                row = session.get(Delivery, delivery_id)
                attempts = row.attempts if row else 0
                if attempts >= d.max_attempts:
                    ledger.mark_failed(session, delivery_id, self.worker_id, reply=f"gave up after {attempts} attempts: {exc}")
                    report.failed += 1
                else:
                    delay = min(d.retry_base_seconds * 2 ** max(attempts - 1, 0), d.retry_max_seconds)
                    ledger.mark_deferred(session, delivery_id, self.worker_id, reply=str(exc),
                                         retry_at=self.clock() + dt.timedelta(seconds=delay),
                                         count_attempt=row is not None and row.state.value == "claimed")
                    report.deferred += 1
            report.errors.append(f"{recipient}: {exc}")
            log.warning("delivery %d to %s deferred: %s", delivery_id, recipient, exc)
            return
        with self.database.session() as session:
            ledger.mark_sent(session, delivery_id, self.worker_id, reply=f"{result.code} {result.reply}", now=self.clock())
        report.sent += 1

