"""Lists as files (`digest subscribers sync`), suppression and consent on import, and `digest admin …`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from digest.audience.listfiles import sync_folder
from digest.audience.subscribers import import_csv
from digest.cli import cli
from digest.config import Settings, load_settings
from digest.db import admin as admin_queries
from digest.db import audience as queries
from digest.db.models import SubscriptionStatus
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web import accounts


def folder_with_files(root: Path) -> Path:
    folder = root / "subscribers"
    folder.mkdir()
    (folder / "daily.csv").write_text("email,name,timezone,topics\nana@example.com,Ana,Asia/Seoul,korea\n"
                                      "broken,,UTC,\nbo@example.net,Bo,Europe/Berlin,\n", encoding="utf-8")
    (folder / "weekly.toml").write_text('name = "Weekly Roundup"\nfrom = "Weekly <weekly@digest.example>"\n'
                                        'schedule = "0 8 * * 1"\n', encoding="utf-8")
    (folder / "weekly.csv").write_text("email\ncy@example.org\n", encoding="utf-8")
    (folder / "daily.toml").write_text('name = "Shadow"\nfrom = "X <x@digest.example>"\n', encoding="utf-8")
    (folder / "bad.toml").write_text('name = "No sender"\n', encoding="utf-8")
    (folder / "orphan.csv").write_text("email\nz@example.com\n", encoding="utf-8")
    return folder


def test_sync_defines_lists_imports_rows_and_is_idempotent(tmp_path: Path, workspace: tuple[Path, Settings],
                                                           smtp_server: CaptureServer) -> None:
    _, settings = workspace
    folder = folder_with_files(tmp_path)
    database = connect(settings)
    first = sync_folder(database, settings, folder)
    assert first.defined == ["weekly"]
    assert (first.imported["daily"].added, first.imported["daily"].errors[0][0]) == (2, 3)
    assert first.imported["weekly"].added == 1
    problems = dict(first.problems)
    assert "digest.toml, which wins" in problems["daily.toml"] and "from" in problems["bad.toml"]
    assert first.ignored == ["orphan.csv"]
    second = sync_folder(database, settings, folder)
    assert (second.imported["daily"].added, second.imported["daily"].updated, second.imported["daily"].unchanged) == (0, 0, 2)
    with database.session() as session:
        weekly = queries.list_by_slug(session, "weekly")
        assert weekly is not None and weekly.name == "Weekly Roundup"
        assert queries.counts_by_status(session, weekly.id) == {"confirmed": 1}
        ana = queries.subscriber_by_email(session, "ana@example.com")
        assert ana is not None
        assert [c.action for c in queries.consents_of(session, ana.id)] == ["imported"]  # not twice
    assert not smtp_server.messages


def test_sync_cli_json(tmp_path: Path, workspace: tuple[Path, Settings]) -> None:
    config, _ = workspace
    folder = folder_with_files(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "subscribers", "sync", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["lists"]["daily"]["errors"][0]["line"] == 3 and report["defined_by_files"] == ["weekly"]


def test_import_skips_suppressed_addresses_and_keeps_consent(workspace: tuple[Path, Settings],
                                                             smtp_server: CaptureServer) -> None:
    _, settings = workspace
    database = connect(settings)
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        queries.suppress(session, "gone@example.com", "hard bounce")
        report = import_csv(session, lists["daily"], ["email\n", "gone@example.com\n", "new@example.com\n"],
                            confirmed=False, source="import:test.csv")
        assert report.added == 1 and report.errors == [(2, "gone@example.com is on the suppression list; not imported")]
        person = queries.subscriber_by_email(session, "new@example.com")
        assert person is not None
        (consent,) = queries.consents_of(session, person.id)
        assert (consent.action, consent.source) == ("requested", "import:test.csv")
        sub = queries.subscription(session, lists["daily"].id, person.id)
        assert sub is not None and sub.status == SubscriptionStatus.pending


def test_admin_cli_users_and_tokens(workspace: tuple[Path, Settings]) -> None:
    config, settings = workspace
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, ["--config", str(config), "admin", *args], input=stdin)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    run("create-user", "boss", "--role", "admin", "--password-stdin", stdin="a long enough secret\n")
    short = runner.invoke(cli, ["--config", str(config), "admin", "create-user", "tiny", "--password-stdin"], input="short\n")
    assert short.exit_code != 0
    users = json.loads(run("users", "--json"))
    assert [(u["username"], u["role"]) for u in users] == [("boss", "admin")]
    token = json.loads(run("create-token", "ci", "--role", "viewer", "--json"))
    assert token["token"].startswith("dg_")
    database = connect(settings)
    with database.session() as session:
        user = admin_queries.user_by_name(session, "boss")
        assert user is not None and user.password_hash.startswith("$argon2id$")
        principal = accounts.principal_for_token(session, token["token"])
        assert principal is not None and principal.role == "viewer"
    run("revoke-token", str(token["id"]))
    with database.session() as session:
        assert accounts.principal_for_token(session, token["token"]) is None
    run("set-password", "boss", "--password-stdin", stdin="another long secret\n")
    with database.session() as session:
        assert accounts.authenticate(session, "boss", "another long secret", max_failures=5, lockout_seconds=60)


def test_file_lists_are_known_to_every_command(tmp_path: Path, workspace: tuple[Path, Settings]) -> None:
    config, _ = workspace
    folder_with_files(config.parent)  # audience.folder defaults to subscribers/ beside digest.toml
    settings = load_settings(config)
    assert [c.slug for c in settings.lists] == ["daily", "weekly"]  # digest.toml's daily wins over daily.toml
    assert settings.get_list("weekly").name == "Weekly Roundup" and settings.file_lists == {"weekly": "weekly.toml"}
    assert {name for name, _ in settings.file_list_problems} == {"daily.toml", "bad.toml"}  # reported, not fatal
    result = CliRunner().invoke(cli, ["--config", str(config), "schedule", "--json"])
    assert result.exit_code == 0, result.output
    assert {item["list"] for item in json.loads(result.stdout)["lists"]} == {"daily", "weekly"}  # the scheduler sees it
    report = sync_folder(connect(settings), settings, config.parent / "subscribers")
    assert report.defined == ["weekly"] and report.imported["weekly"].added == 1
