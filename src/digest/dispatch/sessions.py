"""Units of work for the dispatcher's threads.

On SQLite every transaction is BEGIN IMMEDIATE (one writer at a time). Threads of one process
that wait inside SQLite's busy handler sleep in growing steps (1, 2, 5, 10 … ms), which costs
more than the work itself; a process-wide lock taken *before* BEGIN hands the database over at
once. PostgreSQL needs no such lock (row locks, SKIP LOCKED).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from digest.db.session import Database


class Sessions:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.lock = threading.Lock() if database.is_sqlite else None

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        if self.lock is None:
            with self.database.session() as session:
                yield session
            return
        with self.lock, self.database.session() as session:
            yield session
