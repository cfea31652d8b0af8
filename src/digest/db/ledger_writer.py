"""A sender thread's ledger handle: one commit per message, at most one row per connection in doubt.

`LedgerWriter.start_transmitting()` hands the worker's ledger (`ledger_commit.py`) one unit:
the outcomes recorded since this sender's last commit (the previous message's `sent`) and this
message's `transmitting` mark; `finish_transmitting()` waits for its commit (once the DATA command is
written), and the message is written only after it returned True. So a connection has at most one row between its mark and a committed
outcome. `flush()` commits what is pending (the sender calls it whenever it has nothing to send at once).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from digest.db.ledger_commit import Committer, Params, Ticket, make_committer


class LedgerWriter:
    """One sender thread's handle on the worker's ledger; without a shared `committer` it makes its own."""

    def __init__(self, engine: Engine, worker_id: str, lock: threading.Lock | None = None,
                 on_commit: Callable[[list[int]], None] = lambda ids: None, *, synchronous_commit: bool = True,
                 committer: Committer | None = None) -> None:
        self.worker_id = worker_id
        self._on_commit = on_commit  # told the rows whose recorded outcome is now committed
        self._pending: list[tuple[str, Params]] = []  # ("sent", params); kept until committed
        self._pending_ids: list[int] = []
        self._ticket: Ticket | None = None  # the started commit
        self._own_committer = committer is None
        self._committer = committer or make_committer(engine, lock, synchronous_commit=synchronous_commit)
        self._stamp = self._committer.stamp

    @property
    def pending(self) -> int:
        return len(self._pending)

    def sent(self, delivery_id: int, reply: str, now: dt.datetime) -> None:
        """Recorded with the next commit (the next message's mark, or `flush()`)."""
        # A NUL cannot be stored in PostgreSQL's text: one server reply with it would fail every later commit.
        self._pending.append(("sent", (self._stamp(now), reply[:500].replace("\x00", ""), delivery_id, self.worker_id)))
        self._pending_ids.append(delivery_id)

    def transmitting(self, delivery_id: int, message_id: str, lease_until: dt.datetime) -> bool:
        """Commit what is pending and mark this row; False when the claim was lost (do not send)."""
        self.start_transmitting(delivery_id, message_id, lease_until)
        return self.finish_transmitting()

    def start_transmitting(self, delivery_id: int, message_id: str, lease_until: dt.datetime) -> None:
        """Hand the ledger what is pending plus this row's mark; returns at once (or after running a round
        when this unit completes the set: `ledger_commit.Committer`)."""
        if self._ticket is not None:
            self.finish_transmitting()
        self._ticket = self._committer.submit(
            [*self._pending, ("transmit", (message_id, self._stamp(lease_until), delivery_id, self.worker_id))])

    def finish_transmitting(self) -> bool:
        """Wait for the started commit; True when the row is marked (send DATA), False when the claim was lost."""
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            raise RuntimeError("finish_transmitting() without start_transmitting()")
        return bool(self._committed(ticket.wait()))

    def flush(self) -> None:
        if self._ticket is not None:  # a mark started and never finished (an error in between): settle it first
            self.finish_transmitting()
        if self._pending:
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
            if self._own_committer:
                self._committer.close()
