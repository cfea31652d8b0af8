"""Migrations: the chain builds exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from digest.db.models import Base
from digest.db.session import Database, alembic_config, current_revision, head_revision, open_database, upgrade


def schema_drift(database: Database) -> list[object]:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return [d for d in compare_metadata(context, Base.metadata)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_models(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    database = open_database(url)
    assert current_revision(database) == head_revision(database)
    assert schema_drift(database) == []


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config(Database("sqlite://")))
    assert len(script.get_heads()) == 1, "two migrations claim the same parent: renumber the newer one"


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'u.db'}")
    before, after = upgrade(database)
    assert before is None and after == head_revision(database)
    assert upgrade(database) == (after, after)
