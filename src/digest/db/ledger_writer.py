"""The send path's own ledger connection: one commit per message, at most one row per connection in doubt.

`LedgerWriter.start_transmitting()` begins, and `finish_transmitting()` completes, one transaction
holding the outcomes recorded since the last commit (the previous message's `sent`) and this
message's `transmitting` mark; DATA starts only after `finish_transmitting()` returned True. So a
connection has at most one row between its mark and a committed outcome, and a message costs one
commit. `flush()` commits what is pending (the sender calls it whenever it has nothing to send at once).

SQLite: one `SqliteCommitter` thread per worker runs the statements of every sender thread, whatever
has queued up in one BEGIN IMMEDIATE … COMMIT under the process-wide writer lock (`dispatch.sessions`):
a group commit, started by `start_transmitting()` so it too overlaps MAIL FROM and RCPT TO (sqlite3
releases the GIL while SQLite works). PostgreSQL: the connection is its own (out of the
pool, autocommit) and driven through libpq directly: the updates go as one prepared statement
(data-modifying CTE), sent by `start_transmitting()` without waiting, so the commit can overlap
the SMTP round trips of MAIL FROM and RCPT TO (`overlaps`); `finish_transmitting()` waits for it
with the GIL released. With `synchronous_commit=False` the connection runs
`SET synchronous_commit = off` (dispatch.md, "Commit of the marks").
"""

from __future__ import annotations

import datetime as dt
import select
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from digest.db.models import UTCDateTime

_TRANSMIT = ("UPDATE deliveries SET state = 'transmitting', message_id = {0}, attempts = attempts + 1, "
             "lease_until = {1} WHERE id = {2} AND worker_id = {3} AND state = 'claimed'")
_SENT = ("UPDATE deliveries SET state = 'sent', sent_at = {0}, last_reply = {1}, lease_until = NULL "
         "WHERE id = {2} AND worker_id = {3}")

Params = tuple[Any, ...]


class LedgerWriter:
    """One sender thread's ledger connection (see the module docstring).

    On SQLite pass the worker's shared `SqliteCommitter`; without one the writer starts its own."""

    def __init__(self, engine: Engine, worker_id: str, lock: threading.Lock | None = None,
                 on_commit: Callable[[list[int]], None] = lambda ids: None, *, synchronous_commit: bool = True,
                 committer: SqliteCommitter | None = None) -> None:
        self.worker_id = worker_id
        self._on_commit = on_commit  # told the rows whose recorded outcome is now committed
        self._pending: list[tuple[str, Params]] = []  # ("sent", params) for now; kept until committed
        self._pending_ids: list[int] = []
        self._mark: Params | None = None  # started, not yet finished
        self._ticket: _Ticket | None = None  # SQLite: the started commit
        self._pg: _PgLink | None = None
        self._own_committer = False
        if engine.dialect.name != "sqlite":
            self._conn: Any = engine.raw_connection()
            self._conn.detach()  # held for a whole run: outside the pool's size (and its autocommit outside the pool)
            self._conn.dbapi_connection.autocommit = True
            self._pg = _PgLink(self._conn.dbapi_connection.pgconn, synchronous_commit)
            self._stamp: Callable[[dt.datetime], Any] = _iso
        else:
            self._stamp = UTCDateTime().bind_processor(engine.dialect) or (lambda value: value)
            self._own_committer = committer is None
            self._committer = committer or SqliteCommitter(engine, lock)

    @property
    def overlaps(self) -> bool:
        """True when `start_transmitting()` returns before the commit."""
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def sent(self, delivery_id: int, reply: str, now: dt.datetime) -> None:
        """Recorded with the next commit (the next message's mark, or `flush()`)."""
        self._pending.append(("sent", (self._stamp(now), reply[:500], delivery_id, self.worker_id)))
        self._pending_ids.append(delivery_id)

    def transmitting(self, delivery_id: int, message_id: str, lease_until: dt.datetime) -> bool:
        """Commit what is pending and mark this row; False when the claim was lost (do not send)."""
        self.start_transmitting(delivery_id, message_id, lease_until)
        return self.finish_transmitting()

    def start_transmitting(self, delivery_id: int, message_id: str, lease_until: dt.datetime) -> None:
        """Begin the commit of what is pending plus this row's mark (on PostgreSQL: sent, not waited for)."""
        if self._mark is not None:
            self.finish_transmitting()
        self._mark = (message_id, self._stamp(lease_until), delivery_id, self.worker_id)
        try:
            if self._pg is not None:
                self._pg.send([*self._pending, ("transmit", self._mark)])
            else:
                self._ticket = self._committer.submit([*self._pending, ("transmit", self._mark)])
        except BaseException:
            self._mark = None
            raise

    def finish_transmitting(self) -> bool:
        """Wait for the started commit; True when the row is marked (send DATA), False when the claim was lost."""
        mark, self._mark = self._mark, None
        if mark is None:
            raise RuntimeError("finish_transmitting() without start_transmitting()")
        if self._pg is not None:
            return bool(self._committed(self._pg.wait()))
        ticket, self._ticket = self._ticket, None
        assert ticket is not None
        return bool(self._committed(ticket.wait()))

    def flush(self) -> None:
        if self._mark is not None:  # a mark started and never finished (an error in between): settle it first
            self.finish_transmitting()
        if not self._pending:
            return
        if self._pg is not None:
            self._pg.send(self._pending)
            self._committed(self._pg.wait())
        else:
            self._committed(self._committer.submit(list(self._pending)).wait())

    def _committed(self, count: int) -> int:
        self._pending = []  # kept on failure (an exception skips this): the next commit tries them again
        done, self._pending_ids = self._pending_ids, []
        if done:
            self._on_commit(done)
        return count

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pg is not None:
                self._conn.close()
            elif self._own_committer:
                self._committer.close()


class _Ticket:
    """One submitted unit's result; `wait()` blocks on a lock the committer releases (cheaper than an Event)."""

    __slots__ = ("statements", "count", "error", "_done")

    def __init__(self, statements: list[tuple[str, Params]]) -> None:
        self.statements = statements
        self.count = 0
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, count: int, error: BaseException | None = None) -> None:
        self.count, self.error = count, error
        self._done.release()

    def wait(self) -> int:
        self._done.acquire()
        if self.error is not None:
            raise self.error
        return self.count


class SqliteCommitter:
    """A worker's SQLite ledger thread: the units queued by its sender threads go in one transaction each round.

    A unit's count is the row count of its last statement (the `transmitting` mark: 0 means the claim was
    lost). An error fails every unit of that transaction; their senders re-raise it and keep their outcomes
    pending. The thread starts on the first unit and ends with `close()`."""

    def __init__(self, engine: Engine, lock: threading.Lock | None = None) -> None:
        self._engine, self._lock = engine, lock
        self._sql = {"transmit": _TRANSMIT.format(*"????"), "sent": _SENT.format(*"????")}
        self._queue: list[_Ticket] = []
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self.commits = 0  # transactions committed (a round holds every unit queued meanwhile)

    def submit(self, statements: list[tuple[str, Params]]) -> _Ticket:
        ticket = _Ticket(statements)
        with self._cond:
            if self._closed:
                raise RuntimeError("the ledger committer is closed")
            if self._thread is None:
                self._conn = self._engine.raw_connection()
                self._conn.detach()  # held for the whole run, outside the pool's size
                self._thread = threading.Thread(target=self._run, name="digest-ledger", daemon=True)
                self._thread.start()
            self._queue.append(ticket)
            self._cond.notify()
        return ticket

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
            self._conn.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            try:
                counts = self._commit(batch)
            except BaseException as exc:  # handed to every waiting sender
                for ticket in batch:
                    ticket.finish(0, exc)
            else:
                for ticket, count in zip(batch, counts):
                    ticket.finish(count)

    def _commit(self, batch: list[_Ticket]) -> list[int]:
        if self._lock is not None:
            self._lock.acquire()
        try:
            cursor = self._conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                counts = []
                for ticket in batch:
                    count = 0
                    for kind, params in ticket.statements:
                        cursor.execute(self._sql[kind], params)
                        count = cursor.rowcount
                    counts.append(int(count))
                cursor.execute("COMMIT")
                self.commits += 1
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cursor.close()
        finally:
            if self._lock is not None:
                self._lock.release()
        return counts


def _iso(value: dt.datetime) -> str:
    return (value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)).isoformat()


class _PgLink:
    """libpq, asynchronously: one statement in flight at most; the usual shapes prepared once."""

    _SHAPES = {("transmit",): "digest_mark", ("sent", "transmit"): "digest_sent_mark", ("sent",): "digest_sent"}

    def __init__(self, pgconn: Any, synchronous_commit: bool) -> None:
        from psycopg import pq

        self.pq, self.pgconn = pq, pgconn
        self.socket = pgconn.socket
        if not synchronous_commit:
            self._run(lambda: pgconn.send_query(b"SET synchronous_commit = off"))
        for shape, name in self._SHAPES.items():
            sql = self._sql(shape).encode()
            self._run(lambda sql=sql, name=name: pgconn.send_prepare(name.encode(), sql))

    @staticmethod
    def _sql(shape: tuple[str, ...]) -> str:
        """One statement: every update but the last as a data-modifying CTE (atomic in autocommit)."""
        templates = {"transmit": _TRANSMIT, "sent": _SENT}
        parts = [templates[kind].format(*(f"${4 * i + j + 1}" for j in range(4))) for i, kind in enumerate(shape)]
        *before, last = parts
        if not before:
            return last
        return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(before)) + " " + last

    def _run(self, send: Callable[[], None]) -> int:
        send()
        self._flush()
        return self.wait()

    def send(self, statements: list[tuple[str, Params]]) -> None:
        shape = tuple(kind for kind, _ in statements)
        values = [None if v is None else str(v).encode() for _, params in statements for v in params]
        name = self._SHAPES.get(shape)
        if name is not None:
            self.pgconn.send_query_prepared(name.encode(), values)
        else:  # several outcomes pending after an error: rare, not prepared
            self.pgconn.send_query_params(self._sql(shape).encode(), values)
        self._flush()

    def _flush(self) -> None:
        pgconn, fd = self.pgconn, self.socket
        while pgconn.flush():  # a non-blocking connection may keep output back
            readable, _, _ = select.select([fd], [fd], [])
            if readable:
                pgconn.consume_input()

    def wait(self) -> int:
        """The statement's row count (of its last update); raises on an error. Waits in select(), GIL released."""
        pgconn, fd = self.pgconn, self.socket
        self._flush()
        while pgconn.is_busy():
            select.select([fd], [], [])
            pgconn.consume_input()
        first = None
        while (result := pgconn.get_result()) is not None:
            first = first or result
        if first is None:
            return 0
        if first.status == self.pq.ExecStatus.FATAL_ERROR:
            import psycopg

            raise psycopg.DatabaseError(first.error_message.decode("utf-8", "replace").strip())
        return int(first.command_tuples or 0)
