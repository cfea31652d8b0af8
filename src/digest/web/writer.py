"""One writer thread per web process on SQLite, committing the requests' units of work in groups.

SQLite takes one writer at a time, so concurrent request threads only queue for its lock; each of them then
pays for its own BEGIN IMMEDIATE and COMMIT, and dozens of threads waiting on a lock spend the GIL on
hand-overs. Here the event loop hands each unit to one thread, which takes whatever has queued up (up to
`max_batch`) and runs it in one transaction, each unit in its own session on a SAVEPOINT: a unit that
raises is rolled back alone and its caller gets the exception; the others commit together. A request is
answered only after the COMMIT that holds its work, so nothing is reported done before it is durable.

The thread stops after `idle` seconds without work and starts again on the next unit, so short-lived
apps (tests, one-off commands) leave no thread behind for long.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from digest.db.session import Database

T = TypeVar("T")


@dataclass
class _Unit:
    work: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


class GroupWriter:
    """Runs `work(session, *args)` units on one thread, many units per transaction."""

    def __init__(self, database: Database, *, max_batch: int = 64, idle: float = 5.0) -> None:
        self.database = database
        self.max_batch = max_batch
        self.idle = idle
        self._queue: deque[_Unit] = deque()
        self._ready = threading.Condition()
        self._running = False
        self.batches = 0  # transactions committed or rolled back, for tests and the curious
        self.units = 0

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        unit = _Unit(work, args, loop, loop.create_future())
        with self._ready:
            self._queue.append(unit)
            if self._running:
                self._ready.notify()
            else:
                self._running = True
                threading.Thread(target=self._serve, name="digest-web-writer", daemon=True).start()
        return await unit.future  # type: ignore[no-any-return]

    def _take(self) -> list[_Unit]:
        with self._ready:
            if not self._queue:
                self._ready.wait(self.idle)
            if not self._queue:
                self._running = False
                return []
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _serve(self) -> None:
        while batch := self._take():
            self._commit(batch)
            for unit in batch:
                unit.loop.call_soon_threadsafe(_settle, unit)

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            with self.database.engine.connect() as connection:
                with connection.begin():  # BEGIN IMMEDIATE (db/session.py): the write lock, once per batch
                    for unit in batch:
                        try:
                            with Session(bind=connection, join_transaction_mode="create_savepoint",
                                         expire_on_commit=False) as session:
                                unit.result = unit.work(session, *unit.args)
                                session.commit()  # RELEASE SAVEPOINT; the outer transaction commits below
                        except Exception as exc:  # this unit only: its savepoint is rolled back
                            unit.error = exc
        except Exception as exc:  # BEGIN or COMMIT failed: nothing in this batch was stored
            for unit in batch:
                if unit.error is None:
                    unit.error, unit.result = exc, None
        self.batches += 1
        self.units += len(batch)


def _settle(unit: _Unit) -> None:
    if unit.future.cancelled():  # the client went away; its work is committed (or not) all the same
        return
    if unit.error is not None:
        unit.future.set_exception(unit.error)
    else:
        unit.future.set_result(unit.result)
