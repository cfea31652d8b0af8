"""The web's group-committing writer on SQLite: many units per transaction, each on its own savepoint."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

from digest.db.session import Database
from digest.web.writer import GroupWriter

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String, unique=True))


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    metadata.create_all(database.engine)
    return database


def add(session: Session, text: str) -> int:
    return int(session.execute(notes.insert().values(text=text)).inserted_primary_key[0])


def stored(database: Database) -> list[str]:
    with database.engine.connect() as conn:
        return list(conn.scalars(select(notes.c.text).order_by(notes.c.id)))


def test_units_queued_together_commit_in_one_transaction(database: Database) -> None:
    writer = GroupWriter(database)
    gate = threading.Event()

    async def main() -> list[int]:
        blocker = asyncio.ensure_future(writer.run(lambda s: gate.wait(5)))
        await asyncio.sleep(0.1)  # the writer thread is now inside the first unit; the next ones queue up
        rest = [asyncio.ensure_future(writer.run(add, f"n{i}")) for i in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        return list(await asyncio.gather(*rest))

    ids = asyncio.run(main())
    assert stored(database) == [f"n{i}" for i in range(20)]
    assert len(set(ids)) == 20
    assert writer.units == 21 and writer.batches == 2  # the blocker alone, then the twenty that waited for it


def test_a_failing_unit_is_rolled_back_alone(database: Database) -> None:
    writer = GroupWriter(database)
    gate = threading.Event()

    def half_then_fail(session: Session) -> None:
        add(session, "half")  # written inside the unit's savepoint, so it must vanish with it
        raise ValueError("refused")

    async def main() -> list[object]:
        blocker = asyncio.ensure_future(writer.run(lambda s: gate.wait(5)))
        await asyncio.sleep(0.1)
        futures = [asyncio.ensure_future(writer.run(add, "before")),
                   asyncio.ensure_future(writer.run(half_then_fail)),
                   asyncio.ensure_future(writer.run(add, "before")),  # a unique-key violation: this unit only
                   asyncio.ensure_future(writer.run(add, "after"))]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        return list(await asyncio.gather(*futures, return_exceptions=True))

    first, failed, duplicate, last = asyncio.run(main())
    assert isinstance(first, int) and isinstance(last, int)
    assert isinstance(failed, ValueError) and str(failed) == "refused"
    assert duplicate.__class__.__name__ == "IntegrityError"
    assert stored(database) == ["before", "after"]
    assert writer.batches == 2


def test_a_failed_begin_fails_every_unit_of_the_batch(database: Database, tmp_path: Path) -> None:
    from sqlalchemy import event

    @event.listens_for(database.engine, "connect")
    def impatient(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    database.engine.dispose()  # new connections pick up the short timeout
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)  # another process holding the write lock
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes (text) VALUES ('theirs')")
    writer = GroupWriter(database)

    async def main() -> list[object]:
        return list(await asyncio.gather(writer.run(add, "a"), writer.run(add, "b"), return_exceptions=True))

    try:
        results = asyncio.run(main())
    finally:
        other.rollback()
        other.close()
    assert all("locked" in str(r) for r in results), results
    assert stored(database) == []
    assert asyncio.run(writer.run(add, "c")) == 1  # the writer is still there once the lock is free


def test_the_thread_stops_when_idle_and_starts_again(database: Database) -> None:
    writer = GroupWriter(database, idle=0.1)

    def names() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "digest-web-writer"]

    assert asyncio.run(writer.run(add, "one")) == 1
    deadline = time.monotonic() + 5
    while names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert names() == []
    assert asyncio.run(writer.run(add, "two")) == 2
    with database.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(notes)) == 2
