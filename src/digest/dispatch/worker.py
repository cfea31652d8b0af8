"""The send loop: claim batches, personalise each row, hand it to the sender pool, record each outcome.

One `Dispatcher` per worker process. Its main thread claims due rows (at most about two batches
ahead of the senders) in one transaction that also returns each row's address and suppression
(suppressed rows are recorded there, set-based) and queues them; `smtp.max_connections` sender
threads (`pool.py`) build each message (`personalise.py`; the next one while the server works on the
current DATA) and send it over a reused
connection under the rate limits. Each sender thread records through its own `LedgerWriter`, which
hands the worker's one ledger (`db/ledger_commit.py`, a group commit of every sender's units)
this row's `transmitting` mark together with the previous message's `sent`: the row is marked
(committed) before its message is written, so a crash leaves every row either safely due again or explicitly ambiguous
(`dispatch.ambiguous`), at most one per connection. A heartbeat (`lease.py`) keeps the leases of the
rows in hand.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from digest.bounces.codes import enhanced_status, severity
from digest.bounces.scoring import Thresholds, record_bounce
from digest.config import Settings
from digest.db import deliveries as ledger
from digest.db.models import DeliveryState, utcnow
from digest.db.session import Database
from digest.dispatch.domains import DomainQueue, domain_of
from digest.dispatch.lease import LeaseKeeper
from digest.dispatch.limits import RateLimiter
from digest.dispatch.personalise import Outgoing, Personaliser, message_id_for
from digest.dispatch.policy import Decision, decide
from digest.dispatch.pool import SenderPool, Transport
from digest.dispatch.report import DispatchReport
from digest.dispatch.sessions import Sessions
from digest.dispatch.smtp import SmtpTransport
from digest.errors import DigestError, DispatchError

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

__all__ = ["Dispatcher", "DispatchReport", "Outgoing", "default_worker_id", "message_id_for"]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    """Sends due deliveries over a pool of SMTP connections; one instance per worker process."""

    def __init__(self, database: Database, settings: Settings, *, worker_id: str | None = None,
                 clock: Clock = utcnow, transport_factory: Callable[[], Transport] | None = None) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.secret = settings.secret_key()
        self.personaliser = Personaliser(settings, self.secret, clock)
        self.thresholds = Thresholds.from_settings(settings)
        self.limiter = RateLimiter.from_settings(settings.smtp)  # kept across runs of one worker
        self.transport_factory = transport_factory
        self.sessions = Sessions(database)
        self._local = threading.local()
        self._writers: list[ledger.LedgerWriter] = []
        self._committer: ledger.Committer | None = None  # one ledger for all senders
        self._keeper: LeaseKeeper | None = None
        self._writers_lock = threading.Lock()
        self._next_recovery = 0.0  # monotonic time of the next look for ambiguous rows

    def run(self, *, edition_ids: list[int] | None = None, progress: Callable[[DispatchReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> DispatchReport:
        """Send everything due (for these editions, or all), then return; `should_stop` ends it early and gracefully."""
        report = DispatchReport()
        started = time.perf_counter()
        d, smtp = self.settings.dispatch, self.settings.smtp
        make_transport = self.transport_factory or self._smtp_factory()
        queue: DomainQueue[Outgoing] = DomainQueue(smtp, key=lambda o: domain_of(o.recipient))
        keeper = LeaseKeeper(self.sessions, self.worker_id, d.lease_seconds, self.clock)

        def deliver(transport: Transport, out: Outgoing, build_next: Callable[[], None]) -> Decision | None:
            pending = False
            try:
                if out.error is not None:  # a broken variant fails its rows with the reason, never loops
                    self._record_broken(out, report)
                    return None
                decision, pending = self._deliver(transport, out, report, build_next)
                if decision is not None and decision.state is None:
                    self._drop_if_stopped(out.edition_id, queue, keeper, report)
                return decision
            finally:
                if not pending:  # a recorded `sent` leaves the heartbeat once committed (the writer's on_commit)
                    keeper.drop(out.delivery_id)
                if progress:
                    report.elapsed_seconds = time.perf_counter() - started
                    progress(report)

        pool = SenderPool(smtp.max_connections, queue, self.limiter, make_transport, deliver,
                          throttle_seconds=d.throttle_seconds, idle=self._flush, prepare=self._build)
        self._keeper = keeper
        try:
            with keeper, pool:
                while not should_stop():
                    if len(queue) >= d.batch_size:  # far enough ahead of the senders
                        queue.wait_for_room(d.batch_size, 0.5)
                        continue
                    work = self._claim(edition_ids, report, keeper)
                    if work:
                        queue.put_many(work)
                        continue
                    if queue.busy() == 0:
                        break
                    queue.wait_idle(0.5)
                if should_stop():
                    self._release(pool.stop(), report)
        finally:
            self._close_writers()
        report.elapsed_seconds = time.perf_counter() - started
        return report

    def _smtp_factory(self) -> Callable[[], Transport]:
        password = self.settings.smtp_password()
        return lambda: SmtpTransport(self.settings.smtp, password)

    # --- the sender threads' ledger connections -------------------------------------------------

    def _writer(self) -> ledger.LedgerWriter:
        writer: ledger.LedgerWriter | None = getattr(self._local, "writer", None)
        if writer is None:
            with self._writers_lock:
                if self._committer is None:
                    self._committer = ledger.make_committer(self.database.engine, self.sessions.lock,
                                                            synchronous_commit=self._synchronous_marks(),
                                                            senders=self.settings.smtp.max_connections)
            writer = ledger.LedgerWriter(self.database.engine, self.worker_id, self.sessions.lock,
                                         on_commit=self._keeper.drop_many if self._keeper else lambda ids: None,
                                         synchronous_commit=self._synchronous_marks(), committer=self._committer)
            self._local.writer = writer
            with self._writers_lock:
                self._writers.append(writer)
        return writer

    def _synchronous_marks(self) -> bool:
        """dispatch.synchronous_commit; auto: durable marks only where a lost mark could break the policy's
        promise (under skip, a re-sent row would be a duplicate nobody was told about)."""
        d = self.settings.dispatch
        return d.synchronous_commit == "on" or (d.synchronous_commit == "auto" and d.ambiguous == "skip")

    def _flush(self) -> None:
        """A sender thread with nothing to send at once commits its recorded outcomes."""
        writer: ledger.LedgerWriter | None = getattr(self._local, "writer", None)
        if writer is not None:
            writer.flush()

    def _close_writers(self) -> None:
        with self._writers_lock:
            writers, self._writers = self._writers, []
            committer, self._committer = self._committer, None
        for writer in writers:
            try:
                writer.close()
            except Exception:  # rows not recorded come back through their leases (ambiguous policy)
                log.exception("closing a ledger connection failed")
        if committer is not None:
            committer.close()
        self._local = threading.local()

    # --- claim and personalise --------------------------------------------------------------------

    def _claim(self, edition_ids: list[int] | None, report: DispatchReport, keeper: LeaseKeeper) -> list[Outgoing]:
        d = self.settings.dispatch
        with self.sessions() as session:
            # Rows turn ambiguous only when a dead worker's lease expires: looking as often as the heartbeat beats
            # is soon enough, and spares a statement per batch.
            if time.monotonic() >= self._next_recovery:
                self._next_recovery = time.monotonic() + max(d.lease_seconds / 3, 1.0)
                recovered = ledger.recover_ambiguous(session, self.clock(), d.ambiguous)
                if recovered:
                    log.warning("%d ambiguous deliveries of dead workers: policy %s", recovered, d.ambiguous)
                    report.recovered += recovered
            rows = ledger.claim_batch(session, self.worker_id, self.clock(), lease_seconds=d.lease_seconds,
                                      limit=d.batch_size, edition_ids=edition_ids)
            suppressed = [row.id for row in rows if row.suppressed]
            ledger.mark_suppressed(session, suppressed, self.worker_id)
            self.personaliser.load_variants(session, {row.variant_id for row in rows})
        for _ in suppressed:
            report.count("suppressed")
        rows = [row for row in rows if not row.suppressed]
        keeper.hold([row.id for row in rows])
        if rows:
            log.info("claimed %d deliveries", len(rows))
        now = self.clock()  # one Date for the batch: it is sent within seconds
        return [Outgoing(delivery_id=row.id, sender="", recipient=row.email, message=b"", message_id="",
                         edition_id=row.edition_id, row=row, date=now) for row in rows]

    def _drop_if_stopped(self, edition_id: int, queue: DomainQueue[Outgoing], keeper: LeaseKeeper,
                         report: DispatchReport) -> None:
        """A lost claim: when its edition was paused or cancelled (which re-queued or ended its claimed rows), the
        rows of it still waiting here are not ours either. Dropped at once, not one SMTP envelope each."""
        try:
            with self.sessions() as session:
                if ledger.active_editions(session, [edition_id]):
                    return  # a lease lost on its own: the other rows stand
        except Exception:  # a database outage: each held row's own mark is refused or the lease brings it back
            log.exception("checking edition %d after a lost claim failed", edition_id)
            return
        dropped = queue.discard_where(lambda o: o.edition_id == edition_id)
        keeper.drop_many([o.delivery_id for o in dropped])
        report.add("lost_claims", len(dropped))
        if dropped:
            log.info("edition %d stopped: %d claimed deliveries dropped unsent", edition_id, len(dropped))

    def _build(self, out: Outgoing) -> None:
        """In the sender thread: fill in the message of a claimed row (once; a no-op when built)."""
        row, out.row = out.row, None
        if row is None:
            return
        try:
            built = self._prepare(row, out.date)
        except DigestError as exc:
            out.error = exc
            return
        out.message, out.message_id = built.message, built.message_id
        out.wire = SmtpTransport.wire(built.message)  # here, while the server works on the previous DATA
        out.sender = self.personaliser.envelope_sender(built)

    def _record_broken(self, out: Outgoing, report: DispatchReport) -> None:
        with self.sessions() as session:
            ledger.mark_failed(session, out.delivery_id, self.worker_id, reply=f"cannot build: {out.error}")
        report.count("failed", f"delivery {out.delivery_id}: {out.error}")

    def _release(self, unsent: list[Outgoing], report: DispatchReport) -> None:
        with self.sessions() as session:
            ledger.release(session, [o.delivery_id for o in unsent], self.worker_id)
        report.released += len(unsent)

    def _prepare(self, row: ledger.Claimed, now: dt.datetime | None = None) -> Outgoing:
        return self.personaliser.build(row, now)

    # --- send and record --------------------------------------------------------------------------

    def _deliver(self, transport: Transport, out: Outgoing, report: DispatchReport,
                 after_data: Callable[[], None] | None = None) -> tuple[Decision | None, bool]:
        """Send one message; returns the failure decision (or None) and whether a `sent` awaits its commit.

        The row is marked `transmitting` (committed) before its message is written; the commit is awaited once
        the DATA command is out. Under `ambiguous = resend` it is started once MAIL FROM is written, so it
        overlaps the envelope's round trips; a crash in between leaves an unsent row marked, which `resend`
        queues again (not a duplicate). Under `skip` such a row would be reported as skipped without having
        been sent, so there the mark is started after RCPT TO."""
        writer = self._writer()
        lease_until = self.clock() + dt.timedelta(seconds=self.settings.dispatch.lease_seconds)
        started = marked = data_started = False

        def before_mail() -> None:
            nonlocal started
            writer.start_transmitting(out.delivery_id, out.message_id, lease_until)
            started = True

        def before_data() -> bool:
            nonlocal started, marked, data_started
            if not started:
                writer.start_transmitting(out.delivery_id, out.message_id, lease_until)
            started = False
            marked = data_started = writer.finish_transmitting()
            return data_started

        try:
            if self.settings.dispatch.ambiguous == "resend":
                result = transport.send(out.sender, out.recipient, out.message, before_data=before_data,
                                        before_mail=before_mail, after_data=after_data, wire=out.wire)
            else:
                result = transport.send(out.sender, out.recipient, out.message, before_data=before_data,
                                        after_data=after_data, wire=out.wire)
        except DispatchError as exc:
            if started:  # marked early; the envelope failed before DATA
                marked = writer.finish_transmitting()
            writer.flush()
            return self._record_failure(out, exc, data_started, report, counted=marked), False
        writer.sent(out.delivery_id, f"{result.code} {result.reply}", self.clock())
        report.count("sent")
        return None, True

    def _record_failure(self, out: Outgoing, exc: DispatchError, data_started: bool,
                        report: DispatchReport, *, counted: bool | None = None) -> Decision:
        d = self.settings.dispatch
        now = self.clock()
        counted = data_started if counted is None else counted
        with self.sessions() as session:
            attempts = ledger.attempts_of(session, out.delivery_id)
            decision = decide(exc, attempts, d, data_started=data_started, counted=counted)
            reply = str(exc)
            if decision.state is None:
                report.count("lost_claims")
                return decision
            if decision.state == DeliveryState.deferred:
                ledger.mark_deferred(session, out.delivery_id, self.worker_id, reply=reply,
                                     retry_at=now + dt.timedelta(seconds=decision.delay),
                                     count_attempt=decision.count_attempt, refund_attempt=decision.refund_attempt)
            else:
                if decision.state == DeliveryState.skipped:
                    reply = f"ambiguous: connection lost during DATA; not resent (policy skip): {exc}"
                elif decision.bounce != "hard":
                    reply = f"gave up after {attempts + (0 if counted else 1)} attempts: {exc}"
                ledger.mark_final(session, out.delivery_id, self.worker_id, decision.state, reply=reply)
            if decision.bounce:
                kind = severity(enhanced_status(reply), exc.code) if decision.bounce == "hard" else "soft"
                if record_bounce(session, out.recipient, kind, reply, now, self.thresholds, edition_id=out.edition_id):
                    log.info("%s suppressed after %s bounce", out.recipient, kind)
        report.count(decision.state.value, f"{out.recipient}: {exc}")
        log.warning("delivery %d to %s %s: %s", out.delivery_id, out.recipient, decision.state.value, exc)
        return decision
