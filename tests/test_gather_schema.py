"""Migration 0002 (sightings, fingerprints, source fetch state) and the `digest gather` / `digest sources` verbs."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from click.testing import CliRunner
from sqlalchemy import text
from test_gather_http import FIXTURES, GatherServer, gather_server  # noqa: F401

from digest.cli import cli
from digest.db.session import Database, alembic_config, current_revision


def test_migration_backfills_sightings_and_config_urls(tmp_path: Path) -> None:
    database = Database("sqlite:///" + str(tmp_path / "m.db"))
    command.upgrade(alembic_config(database), "0001")
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO sources (id, name, url, kind, topics, weight, enabled, consecutive_failures, "
                          "items_seen) VALUES (1, 'Old', 'https://old.example/feed', 'auto', '[]', 1, 1, 0, 4)"))
        conn.execute(text("INSERT INTO articles (id, source_id, guid, url, canonical_url, title, summary_html, text, "
                          "author, language, image_url, topics, published_at, fetched_at) VALUES (1, 1, 'g1', "
                          "'https://old.example/1', 'https://old.example/1', 'T', '', '', '', '', '', '[]', "
                          "'2026-01-01 00:00:00', '2026-01-01 01:00:00')"))
    command.upgrade(alembic_config(database), "0002")
    assert current_revision(database) == "0002"
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT article_id, source_id, guid, url, how FROM article_sightings")).all() == [
            (1, 1, "g1", "https://old.example/1", "origin")]
        assert conn.execute(text("SELECT config_url, next_fetch_at FROM sources")).one() == ("https://old.example/feed", None)
    command.downgrade(alembic_config(database), "0001")
    with database.engine.connect() as conn:
        assert "article_sightings" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    database.dispose()


def test_gather_and_sources_verbs_report_health_as_json(tmp_path: Path, gather_server: GatherServer) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[database]
url = "sqlite:///digest.db"

[gather]
timeout = 2
host_delay = 0

[[sources]]
name = "Wire"
url = "{gather_server.url('f/wire.rss.xml')}"

[[sources]]
name = "Broken"
url = "{FIXTURES / 'broken' / 'garbage.xml'}"
""", encoding="utf-8")
    runner = CliRunner()
    gathered = runner.invoke(cli, ["--config", str(config), "gather", "--json"])
    assert gathered.exit_code == 0, gathered.output
    report = {s["source"]: s for s in json.loads(gathered.stdout)["sources"]}
    assert report["Wire"]["ok"] and report["Wire"]["new_items"] == 2 and report["Wire"]["http_status"] == 200
    assert not report["Broken"]["ok"] and "not a usable feed" in report["Broken"]["error"]

    health = runner.invoke(cli, ["--config", str(config), "sources", "--json"])
    assert health.exit_code == 0, health.output
    rows = {r["name"]: r for r in json.loads(health.stdout)["sources"]}
    assert rows["Wire"]["state"] == "ok" and rows["Wire"]["items_seen"] == 2 and rows["Wire"]["last_success_at"]
    assert rows["Broken"]["state"] == "failing" and rows["Broken"]["consecutive_failures"] == 1
    assert "not a usable feed" in rows["Broken"]["last_error"]

    table = runner.invoke(cli, ["--config", str(config), "sources"])
    assert table.exit_code == 0 and "Wire" in table.output and "failing" in table.output
