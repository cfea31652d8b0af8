"""The send loop: claim batches, personalise each row, hand it to the sender pool, record each outcome.

One `Dispatcher` per worker process. Its main thread claims due rows (at most about two batches
ahead of the senders), builds each message and queues it; `smtp.max_connections` sender threads
(`pool.py`) send them over reused connections under the rate limits and record every outcome in
the ledger; a heartbeat (`lease.py`) keeps the leases of the rows in hand. A row is marked
`transmitting` only after RCPT succeeded and just before DATA, so a crash leaves every row either
safely due again or explicitly ambiguous (`dispatch.ambiguous`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import parseaddr

from sqlalchemy.orm import Session

from digest.audience.tokens import Signer
from digest.bounces.codes import enhanced_status, severity
from digest.bounces.scoring import Thresholds, record_bounce
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db import deliveries as ledger
from digest.db.models import Delivery, DeliveryState, EditionVariant, MailingList, utcnow
from digest.db.session import Database
from digest.dispatch.dkim import sign_message
from digest.dispatch.domains import DomainQueue, domain_of
from digest.dispatch.lease import LeaseKeeper
from digest.dispatch.limits import RateLimiter
from digest.dispatch.policy import Decision, decide
from digest.dispatch.pool import SenderPool, Transport
from digest.dispatch.report import DispatchReport
from digest.dispatch.sessions import Sessions
from digest.dispatch.smtp import SmtpTransport
from digest.dispatch.verp import verp_address
from digest.errors import DigestError, DispatchError
from digest.render.digest_email import greeting
from digest.render.headers import default_unsubscribe_mailto
from digest.render.message import list_id, sender_domain
from digest.render.skeleton import Recipient, cached_skeleton

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
PREPARE_CHUNK = 25

__all__ = ["Dispatcher", "DispatchReport", "Outgoing", "default_worker_id", "message_id_for"]


@dataclass
class Outgoing:
    """One message ready for SMTP, built before any network I/O."""

    delivery_id: int
    sender: str
    recipient: str
    message: bytes
    message_id: str
    suppressed: bool
    edition_id: int = 0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def message_id_for(delivery: Delivery, secret: bytes, domain: str) -> str:
    """Stable per delivery (a resend after a crash reuses it), unguessable from outside."""
    tag = hmac.new(secret, f"msgid:{delivery.id}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"<{delivery.edition_id}.{delivery.id}.{tag}@{domain}>"


class Dispatcher:
    """Sends due deliveries over a pool of SMTP connections; one instance per worker process."""

    def __init__(self, database: Database, settings: Settings, *, worker_id: str | None = None,
                 clock: Clock = utcnow, transport_factory: Callable[[], Transport] | None = None) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.secret = settings.secret_key()
        self.signer = Signer(self.secret)
        self.thresholds = Thresholds.from_settings(settings)
        self.limiter = RateLimiter.from_settings(settings.smtp)  # kept across runs of one worker
        self.transport_factory = transport_factory
        self.sessions = Sessions(database)
        self._variants: dict[int, EditionVariant] = {}
        self._lists: dict[int, MailingList] = {}

    def run(self, *, edition_ids: list[int] | None = None, progress: Callable[[DispatchReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> DispatchReport:
        """Send everything due (for these editions, or all), then return; `should_stop` ends it early and gracefully."""
        report = DispatchReport()
        started = time.perf_counter()
        d, smtp = self.settings.dispatch, self.settings.smtp
        make_transport = self.transport_factory or self._smtp_factory()
        queue: DomainQueue[Outgoing] = DomainQueue(smtp, key=lambda o: domain_of(o.recipient))
        keeper = LeaseKeeper(self.sessions, self.worker_id, d.lease_seconds, self.clock)

        def deliver(transport: Transport, out: Outgoing) -> Decision | None:
            try:
                return self._deliver(transport, out, report)
            finally:
                keeper.drop(out.delivery_id)
                if progress:
                    report.elapsed_seconds = time.perf_counter() - started
                    progress(report)

        pool = SenderPool(smtp.max_connections, queue, self.limiter, make_transport, deliver,
                          throttle_seconds=d.throttle_seconds)
        with keeper, pool:
            while not should_stop():
                if len(queue) >= d.batch_size:  # far enough ahead of the senders
                    queue.wait_until(lambda: len(queue) < d.batch_size or should_stop(), 0.5)
                    continue
                work = self._claim(edition_ids, report, keeper)
                if work:
                    queue.put_many(work)
                    continue
                if queue.busy() == 0:
                    break
                queue.wait_until(lambda: queue.busy() == 0 or should_stop(), 0.5)
            if should_stop():
                self._release(pool.stop(), report)
        report.elapsed_seconds = time.perf_counter() - started
        return report

    def _smtp_factory(self) -> Callable[[], Transport]:
        password = self.settings.smtp_password()
        return lambda: SmtpTransport(self.settings.smtp, password)

    def _claim(self, edition_ids: list[int] | None, report: DispatchReport, keeper: LeaseKeeper) -> list[Outgoing]:
        d = self.settings.dispatch
        with self.sessions() as session:
            recovered = ledger.recover_ambiguous(session, self.clock(), d.ambiguous)
            if recovered:
                log.warning("%d ambiguous deliveries of dead workers: policy %s", recovered, d.ambiguous)
                report.recovered += recovered
            ids = [row.id for row in ledger.claim_batch(session, self.worker_id, self.clock(),
                                                         lease_seconds=d.lease_seconds, limit=d.batch_size,
                                                         edition_ids=edition_ids)]
        keeper.hold(ids)
        if ids:
            log.info("claimed %d deliveries", len(ids))
        work: list[Outgoing] = []
        # Short transactions: the sender threads record outcomes in between (one writer at a time on SQLite).
        for start in range(0, len(ids), PREPARE_CHUNK):
            with self.sessions() as session:
                rows = ledger.load_claimed(session, ids[start:start + PREPARE_CHUNK])
                suppressed = audience_queries.suppressed_among(session, [r.subscriber.email for r in rows])
                for row in rows:
                    try:
                        out = self._prepare(session, row, row.subscriber.email in suppressed)
                    except DigestError as exc:  # a broken variant fails its rows with the reason, never loops
                        ledger.mark_failed(session, row.id, self.worker_id, reply=f"cannot build: {exc}")
                        keeper.drop(row.id)
                        report.count("failed", f"delivery {row.id}: {exc}")
                        continue
                    work.append(replace(out, sender=self._envelope_sender(out), edition_id=row.edition_id))
        return work

    def _envelope_sender(self, out: Outgoing) -> str:
        """VERP when [bounces] is configured: the bounce names its delivery."""
        if self.settings.bounces is None:
            return out.sender
        return verp_address(out.delivery_id, self.secret, self.settings.bounces)

    def _release(self, unsent: list[Outgoing], report: DispatchReport) -> None:
        with self.sessions() as session:
            ledger.release(session, [o.delivery_id for o in unsent], self.worker_id)
        report.released += len(unsent)

    def _prepare(self, session: Session, row: Delivery, suppressed: bool) -> Outgoing:
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
        # The variant's skeleton is built once per process; a recipient only fills its placeholders.
        skeleton = cached_skeleton(variant.html, variant.text, variant.placeholder_token, variant.subject,
                                   list_row.from_address, list_id(list_row.name, list_row.slug, domain),
                                   f"{row.edition_id}:{list_row.slug}:digest",
                                   default_unsubscribe_mailto(list_row.from_address))
        message = skeleton.render(Recipient(email=subscriber.email, message_id=message_id, name=subscriber.name,
                                            date=self.clock(), greeting_html=greet_html, greeting_text=greet_text,
                                            unsubscribe_url=unsubscribe_url, preferences_url=preferences_url))
        message = sign_message(self.settings.dkim, message)  # unchanged when [dkim] is not configured
        return Outgoing(delivery_id=row.id, sender=parseaddr(list_row.from_address)[1], recipient=subscriber.email,
                        message=message, message_id=message_id, suppressed=suppressed)

    def _deliver(self, transport: Transport, out: Outgoing, report: DispatchReport) -> Decision | None:
        d = self.settings.dispatch
        if out.suppressed:
            with self.sessions() as session:
                ledger.mark_final(session, out.delivery_id, self.worker_id, DeliveryState.suppressed,
                                  reply="address is suppressed; not sent")
            report.count("suppressed")
            return None
        data_started = False

        def before_data() -> bool:
            nonlocal data_started
            with self.sessions() as session:
                data_started = ledger.mark_transmitting(session, out.delivery_id, self.worker_id,
                                                        message_id=out.message_id, now=self.clock(),
                                                        lease_seconds=d.lease_seconds)
            return data_started

        try:
            result = transport.send(out.sender, out.recipient, out.message, before_data=before_data)
        except DispatchError as exc:
            return self._record_failure(out, exc, data_started, report)
        with self.sessions() as session:
            ledger.mark_sent(session, out.delivery_id, self.worker_id, reply=f"{result.code} {result.reply}",
                             now=self.clock())
        report.count("sent")
        return None

    def _record_failure(self, out: Outgoing, exc: DispatchError, data_started: bool,
                        report: DispatchReport) -> Decision:
        d = self.settings.dispatch
        now = self.clock()
        with self.sessions() as session:
            attempts = ledger.attempts_of(session, out.delivery_id)
            decision = decide(exc, attempts, d, data_started=data_started)
            reply = str(exc)
            if decision.state is None:
                report.count("lost_claims")
                return decision
            if decision.state == DeliveryState.deferred:
                ledger.mark_deferred(session, out.delivery_id, self.worker_id, reply=reply,
                                     retry_at=now + dt.timedelta(seconds=decision.delay),
                                     count_attempt=decision.count_attempt)
            else:
                if decision.state == DeliveryState.skipped:
                    reply = f"ambiguous: connection lost during DATA; not resent (policy skip): {exc}"
                elif decision.bounce != "hard":
                    reply = f"gave up after {attempts + (0 if data_started else 1)} attempts: {exc}"
                ledger.mark_final(session, out.delivery_id, self.worker_id, decision.state, reply=reply)
            if decision.bounce:
                kind = severity(enhanced_status(reply), exc.code) if decision.bounce == "hard" else "soft"
                if record_bounce(session, out.recipient, kind, reply, now, self.thresholds, edition_id=out.edition_id):
                    log.info("%s suppressed after %s bounce", out.recipient, kind)
        report.count(decision.state.value, f"{out.recipient}: {exc}")
        log.warning("delivery %d to %s %s: %s", out.delivery_id, out.recipient, decision.state.value, exc)
        return decision
