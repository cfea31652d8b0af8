"""A worker's ledger: the marks of all its sender threads, committed together.

Each sender hands its unit (the outcomes recorded since its last commit plus, usually, its next
row's `transmitting` mark) to `submit()` once MAIL FROM is written and waits for the `Ticket` once
the DATA command is written. A round commits whatever units are queued in one transaction: a group commit (SQLite
writes each touched page once per commit; PostgreSQL pays its per-statement cost once per round).

With several senders there is no thread: the sender that waits for its unit runs the round in its
own thread, taking the units the other senders queued meanwhile (a unit is handed over two round
trips before it is needed), and the sender whose unit completes the set runs it at once. On the
benchmark box that made 3.3–3.6 units per round at 4 connections, against 1.1 when a ledger thread
started a round for each unit as it came, and spared that thread's two hand-offs per round
(benchmarks/dispatch.py, PostgreSQL at 4 connections: 0.73 → 0.83–0.91 of the bare loop; dispatch.md). One sender:
a thread commits each unit as it comes, which on SQLite overlaps the commit with the envelope;
PostgreSQL sends the round from the sender's thread and collects it at the wait (direct mode).

A unit's count is 1 when its `transmitting` mark took (0: the claim was lost, do not send). An
error fails every unit of that round: their senders re-raise it and keep their outcomes pending
for their next unit; the next round goes on (reconnecting PostgreSQL if the connection broke).

SQLite: BEGIN IMMEDIATE … COMMIT under the process-wide writer lock (`dispatch.sessions`); sqlite3
releases the GIL while SQLite works. PostgreSQL: libpq directly, autocommit, one statement per
round (every update a data-modifying CTE by primary key, prepared once per shape), waited for in
select() with the GIL released; `synchronous_commit=False` runs `SET synchronous_commit = off`
(dispatch.md, "Commit of the marks").
"""

from __future__ import annotations

import datetime as dt
import select
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from digest.db.models import UTCDateTime

Params = tuple[Any, ...]
Unit = list[tuple[str, Params]]  # ("sent", (at, reply, id, worker)) and ("transmit", (message_id, lease, id, worker))

# COALESCE hides the state test from PostgreSQL's partial-index matching: `state = 'claimed'` implies the lease
# index's predicate, and with statistics from when every row was queued (autovacuum's ANALYZE after an enqueue)
# the planner then reads every held row of every worker through that index for each message, not one by key.
_TRANSMIT = ("UPDATE deliveries SET state = 'transmitting', message_id = ?, attempts = attempts + 1, "
             "lease_until = ? WHERE id = ? AND worker_id = ? AND COALESCE(state, '') = 'claimed'")
_SENT = "UPDATE deliveries SET state = 'sent', sent_at = ?, last_reply = ?, lease_until = NULL WHERE id = ? AND worker_id = ?"

_PG_SETUP = "SET jit = off"


def _pg_round(shape: tuple[str, ...]) -> str:
    """One statement for a round: each update a data-modifying CTE by primary key (atomic in autocommit);
    it returns the ids whose `transmitting` mark took."""
    sql = {"transmit": _TRANSMIT, "sent": _SENT}
    parts, marks = [], []
    for i, kind in enumerate(shape):
        numbered = sql[kind]
        for j in range(4):
            numbered = numbered.replace("?", f"${4 * i + j + 1}", 1)
        if kind == "transmit":
            numbered += " RETURNING id"
            marks.append(f"SELECT id FROM u{i}")
        parts.append(f"u{i} AS ({numbered})")
    return "WITH " + ", ".join(parts) + " " + (" UNION ALL ".join(marks) or "SELECT NULL::bigint WHERE false")


class Ticket:
    """One submitted unit's result; `wait()` blocks on a lock the round releases (cheaper than an Event)."""

    __slots__ = ("unit", "count", "error", "resolve", "taken", "_done")

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.count = 0
        self.error: BaseException | None = None
        self.resolve: Callable[[], None] | None = None  # run by the waiter: it completes the round itself
        self.taken = False  # in a round (several senders)
        self._done = threading.Lock()
        self._done.acquire()

    @property
    def done(self) -> bool:
        return not self._done.locked()

    def finish(self, count: int, error: BaseException | None = None) -> None:
        self.count, self.error = count, error
        self._done.release()

    def wait(self) -> int:
        if self.resolve is not None:
            resolve, self.resolve = self.resolve, None
            resolve()
        self._done.acquire()
        self._done.release()  # a second wait() returns at once too
        if self.error is not None:
            raise self.error
        return self.count


class Committer:
    """The queue of units and how rounds run; subclasses commit one round.

    One sender: a thread commits each unit as it comes (on SQLite that thread is what overlaps the commit
    with the envelope). Several senders: no thread, rounds run in the senders' own threads; a sender that
    waits for its unit commits everything queued, and a sender that completes the set (every sender has a
    unit queued) commits it at once, while its MAIL FROM is answered.
    """

    def __init__(self, senders: int = 1) -> None:
        self._queue: list[Ticket] = []
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._senders = senders
        self._busy = False  # several senders: a round is running in some sender's thread
        self._waiting = 0  # senders waiting for a running round to end, their unit still queued
        self._thread: threading.Thread | None = None
        self.commits = 0  # rounds committed

    def stamp(self, value: dt.datetime) -> Any:
        raise NotImplementedError

    def submit(self, unit: Unit) -> Ticket:
        ticket = Ticket(unit)
        with self._cond:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            self._queue.append(ticket)
            if self._senders == 1:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="digest-ledger", daemon=True)
                    self._thread.start()
                self._cond.notify()
                return ticket
            complete = len(self._queue) >= self._senders and not self._busy
        ticket.resolve = lambda: self._combine(ticket)
        if complete:
            self._combine(None)
        return ticket

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._combine(None)  # units nobody waited for
        self._disconnect()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            self._round(batch)

    def _combine(self, ticket: Ticket | None) -> None:
        """Run the round that takes `ticket` in this thread, unless one already took it (then `wait()` waits for
        that round); None: one round of what is queued, unless a round is running."""
        with self._cond:
            while self._busy and ticket is not None and not ticket.taken:
                self._waiting += 1
                self._cond.wait()
                self._waiting -= 1
            if (ticket.taken if ticket is not None else self._busy) or not self._queue:
                return
            batch, self._queue = self._queue, []
            for queued in batch:
                queued.taken = True
            self._busy = True
            if self._waiting:  # senders waiting for a unit of this batch: wait for it on its own lock now
                self._cond.notify_all()
        try:
            self._round(batch)
        finally:
            with self._cond:
                self._busy = False
                if self._waiting:  # the units queued meanwhile: one of their senders runs the next round
                    self._cond.notify_all()

    def _round(self, batch: list[Ticket]) -> None:
        try:
            counts = self._commit(batch)
        except BaseException as exc:  # handed to every waiting sender
            for ticket in batch:
                ticket.finish(0, exc)
        else:
            self.commits += 1
            for ticket, count in zip(batch, counts):
                ticket.finish(count)

    def _commit(self, batch: list[Ticket]) -> list[int]:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError


class SqliteCommitter(Committer):
    def __init__(self, engine: Engine, lock: threading.Lock | None = None, *, senders: int = 1) -> None:
        super().__init__(senders)
        self._engine, self._lock = engine, lock
        self.stamp = UTCDateTime().bind_processor(engine.dialect) or (lambda value: value)  # type: ignore[method-assign]
        self._sql = {"transmit": _TRANSMIT, "sent": _SENT}
        self._conn: Any = None

    def _commit(self, batch: list[Ticket]) -> list[int]:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
            self._conn.detach()  # held for the whole run, outside the pool's size
        if self._lock is not None:
            self._lock.acquire()
        try:
            cursor = self._conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                counts = []
                for ticket in batch:
                    count = 0
                    for kind, params in ticket.unit:
                        cursor.execute(self._sql[kind], params)
                        count = cursor.rowcount if kind == "transmit" else 0
                    counts.append(int(count))
                cursor.execute("COMMIT")
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cursor.close()
        finally:
            if self._lock is not None:
                self._lock.release()
        return counts

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PgCommitter(Committer):
    """`direct` (a worker with one SMTP connection): no thread; `submit()` sends the round from the sender's
    thread without waiting and `Ticket.wait()` collects it there, which spares two thread hand-offs per message
    when there is nothing to group."""

    def __init__(self, engine: Engine, synchronous_commit: bool = True, *, senders: int = 1) -> None:
        super().__init__(senders)
        self._engine, self._synchronous_commit, self._direct = engine, synchronous_commit, senders == 1
        self._conn: Any = None
        self._pgconn: Any = None
        self._prepared: dict[tuple[str, ...], bytes] = {}
        self._outstanding: Ticket | None = None  # direct mode: the round sent and not yet collected

    def submit(self, unit: Unit) -> Ticket:
        if not self._direct:
            return super().submit(unit)
        if self._outstanding is not None:  # one statement in flight at most
            self._outstanding.wait()
        ticket = Ticket(unit)
        try:
            self._start([ticket])
        except BaseException as exc:
            ticket.finish(0, exc)
            return ticket
        ticket.resolve = lambda: self._collect_direct(ticket)
        self._outstanding = ticket
        return ticket

    def _collect_direct(self, ticket: Ticket) -> None:
        self._outstanding = None
        try:
            counts = self._collect([ticket])
        except BaseException as exc:
            ticket.finish(0, exc)
        else:
            self.commits += 1
            ticket.finish(counts[0])

    def stamp(self, value: dt.datetime) -> str:
        return (value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)).isoformat()

    def _connect(self) -> None:
        from psycopg import pq

        self._conn = self._engine.raw_connection()
        self._conn.detach()  # held for the whole run: outside the pool's size (and its autocommit outside the pool)
        dbapi = self._conn.dbapi_connection
        dbapi.autocommit = True
        self._pq, self._pgconn = pq, dbapi.pgconn
        self._run_once(lambda: self._pgconn.send_query(
            (_PG_SETUP + ("" if self._synchronous_commit else "; SET synchronous_commit = off")).encode()))
        self._prepared = {}  # a new session: nothing prepared yet

    def _commit(self, batch: list[Ticket]) -> list[int]:
        self._start(batch)
        return self._collect(batch)

    def _start(self, batch: list[Ticket]) -> None:
        """Send the round's statement without waiting for it."""
        if self._pgconn is None or self._pgconn.status != self._pq.ConnStatus.OK:
            self._disconnect()
            self._connect()
        shape = tuple(kind for ticket in batch for kind, _ in ticket.unit)
        values = [None if v is None else str(v).encode() for ticket in batch for _, params in ticket.unit for v in params]
        name = self._prepared.get(shape)
        if name is None and len(self._prepared) < 64:  # the usual shapes: one to a few senders' units
            name = self._prepared[shape] = f"digest_round_{len(self._prepared)}".encode()
            self._run_once(lambda: self._pgconn.send_prepare(name, _pg_round(shape).encode()))
        if name is not None:
            self._pgconn.send_query_prepared(name, values)
        else:
            self._pgconn.send_query_params(_pg_round(shape).encode(), values)
        self._flush()  # on its way while the sender waits for the SMTP server

    def _collect(self, batch: list[Ticket]) -> list[int]:
        """Wait for the round's result: per unit, 1 when its mark took."""
        result = self._run_once(lambda: None)
        marked = {int(result.get_value(row, 0)) for row in range(result.ntuples)}
        counts = []
        for ticket in batch:
            marks = [params[2] for kind, params in ticket.unit if kind == "transmit"]
            counts.append(1 if marks and marks[-1] in marked else 0)
        return counts

    def _flush(self) -> None:
        pgconn, fd = self._pgconn, self._pgconn.socket
        while pgconn.flush():  # a non-blocking connection may keep output back
            readable, _, _ = select.select([fd], [fd], [])
            if readable:
                pgconn.consume_input()

    def _run_once(self, send: Any) -> Any:
        """Send, then wait in select() with the GIL released; the (last) result, or raise its error."""
        pgconn, fd = self._pgconn, self._pgconn.socket
        send()
        self._flush()
        while pgconn.is_busy():
            select.select([fd], [], [])
            pgconn.consume_input()
        last = error = None
        while (result := pgconn.get_result()) is not None:
            if result.status == self._pq.ExecStatus.FATAL_ERROR and error is None:
                error = result.error_message.decode("utf-8", "replace").strip()
            last = result
        if error is not None:
            import psycopg

            raise psycopg.DatabaseError(error)
        return last

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken
                pass
            self._conn = self._pgconn = None


def make_committer(engine: Engine, lock: threading.Lock | None = None, *, synchronous_commit: bool = True,
                   senders: int = 2) -> Committer:
    """The ledger of a worker with `senders` sender threads (see `Committer`; PostgreSQL with one sender:
    `PgCommitter`'s direct mode)."""
    if engine.dialect.name == "sqlite":
        return SqliteCommitter(engine, lock, senders=senders)
    return PgCommitter(engine, synchronous_commit, senders=senders)
