"""Rate-limit counters in the database, so every web process (uvicorn --workers N) sees the same counts.

These run on every subscribe and login, so the statements are built once per dialect, on the table (no ORM
layer), and bound per call.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.db.models import RateCount

_table = RateCount.__table__


def hashed(name: str, key: str) -> str:
    # The table holds no addresses or IPs, only what they hash to.
    return hashlib.sha256(f"{name}\0{key}".encode()).hexdigest()


@cache
def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_table).values(key=bindparam("key"), window_start=bindparam("start"), count=1)
    return statement.on_conflict_do_update(index_elements=["key", "window_start"],
                                           set_={"count": _table.c.count + 1}).returning(_table.c.count)


_read = select(_table.c.count).where(_table.c.key == bindparam("key"), _table.c.window_start == bindparam("start"))


def count_event(session: Session, key: str, window_start: int) -> int:
    """Add one event to (key, window); returns the window's new count. Atomic on both backends."""
    connection = session.connection()
    return int(connection.execute(_upsert(connection.dialect.name), {"key": key, "start": window_start}).scalar_one())


def count_in(session: Session, key: str, window_start: int) -> int:
    return session.connection().execute(_read, {"key": key, "start": window_start}).scalar() or 0


def prune(session: Session, before: int) -> int:
    """Forget windows that started before `before` (unix seconds)."""
    return session.execute(delete(RateCount).where(RateCount.window_start < before)).rowcount or 0
