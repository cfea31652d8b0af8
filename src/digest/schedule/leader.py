"""Scheduler leadership: on PostgreSQL one scheduler acts at a time, by a session advisory lock.

The lock lives as long as the leader's connection: when the leader process dies, PostgreSQL drops the
connection and the lock with it, and the next standby's `acquire()` wins. SQLite deployments are one
process by design, so there every scheduler leads (unique keys still make a second one harmless).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

from digest.db.session import Database

log = logging.getLogger(__name__)

LOCK_KEY = 0x6469_6765_7374  # "digest"


class Leadership:
    def __init__(self, database: Database, key: int = LOCK_KEY) -> None:
        self.database = database
        self.key = key
        self._conn: Connection | None = None

    @property
    def is_leader(self) -> bool:
        return self.database.is_sqlite or self._conn is not None

    def acquire(self) -> bool:
        """True when this process leads (keeps leading); cheap to call on every tick."""
        if self.database.is_sqlite:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # the connection died: so did the lock
                log.warning("lost the scheduler lock with its connection")
                self._drop()
        conn = self.database.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        conn.commit()
        if got:
            self._conn = conn
            log.info("this scheduler is the leader")
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                self._conn.commit()
            finally:
                self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
