"""Engine and session set-up; migrations are applied here on first use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from digest.errors import ConfigError, DigestError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """An engine plus a session factory; `session()` is a unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
            _tune_sqlite(engine)
            return engine
        return create_engine(url, echo=echo, pool_pre_ping=True)
    except Exception as exc:  # bad URL, missing driver
        raise ConfigError("database.url", f"cannot open {url!r}: {exc}",
                          "use sqlite:///digest.db or postgresql+psycopg://user@host/db (pip install 'digest[postgres]')") from None


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy own transactions so BEGIN IMMEDIATE serialises writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(database: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return cfg


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def upgrade(database: Database) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (before, after) revisions."""
    before = current_revision(database)
    cfg = alembic_config(database)
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    after = current_revision(database)
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)
    return before, after


def open_database(url: str, *, echo: bool = False, auto_upgrade: bool = True) -> Database:
    """Open the database, migrating an empty one (or any SQLite file) to the head revision."""
    database = Database(url, echo=echo)
    try:
        current = current_revision(database)
    except Exception as exc:
        raise ConfigError("database.url", f"cannot connect: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
                          "check that the server runs and the URL is right") from None
    head = head_revision(database)
    if current == head:
        return database
    empty = current is None and not inspect(database.engine).get_table_names()
    if auto_upgrade and (empty or database.is_sqlite):
        upgrade(database)
        return database
    raise DigestError(f"database is at revision {current or 'none'}, code expects {head}: run `digest db upgrade`")


BUILD_LOCK_KEY = 0x6469_6765_7374_0001


@contextmanager
def exclusive(database: Database, key: int = BUILD_LOCK_KEY) -> Iterator[None]:
    """Run a block in one process at a time across the cluster (PostgreSQL advisory lock; waits).

    gather → group → build rewrites story membership; two processes doing it at once on one database would
    move each other's articles between stories. SQLite needs nothing: its writers are serialised already.
    """
    if database.is_sqlite:
        yield
        return
    from sqlalchemy import text

    with database.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
