"""The `digest` command as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FeedServer, write_config

from digest.demo.capture import CaptureServer

DIGEST = [sys.executable, "-m", "digest"]


def digest(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    full_env.update(env or {})
    result = subprocess.run([*DIGEST, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"digest {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_demo_runs_offline_and_does_not_send_twice(tmp_path: Path) -> None:
    first = digest("demo", "--dir", str(tmp_path / "demo"), "--json", cwd=tmp_path)
    report = json.loads(first.stdout)
    assert report["received"] >= 6
    outbox = tmp_path / "demo" / "outbox"
    assert len(list(outbox.glob("*.eml"))) == report["received"]
    index = (outbox / "index.html").read_text()
    assert index.count("<tr>") == report["received"] + 1
    assert set(report["lists"]) == {"daily", "weekly"}
    assert all(s["ok"] for lst in report["lists"].values() for s in lst["sources"])

    second = json.loads(digest("demo", "--dir", str(tmp_path / "demo"), "--json", cwd=tmp_path).stdout)
    assert second["received"] == 0
    assert len(list(outbox.glob("*.eml"))) == report["received"]


def test_every_verb_has_help(tmp_path: Path) -> None:
    verbs = ["init", "demo", "gather", "sources", "group", "run", "build", "send", "status", "preview", "scheduler",
             "worker", "serve", "db upgrade", "subscribers import", "subscribers export", "subscribers sync"]
    for verb in verbs:
        result = digest(*verb.split(), "--help", cwd=tmp_path)
        assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 3, verb


def test_unknown_list_fails_with_one_line(workspace: tuple[Path, object]) -> None:
    config, _ = workspace
    result = digest("--config", str(config), "run", "nosuch", cwd=config.parent, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "lists.nosuch" in result.stderr and "daily" in result.stderr


def test_config_errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[smtp]\nhots = "x"\n')
    result = digest("gather", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "smtp.hots" in result.stderr and "did you mean 'host'" in result.stderr

    (tmp_path / "digest.toml").write_text('[smtp]\nport = "twenty-five"\n')
    result = digest("gather", cwd=tmp_path, check=False)
    assert "smtp.port" in result.stderr and "whole number" in result.stderr

    (tmp_path / "digest.toml").write_text('[[lists]]\nslug = "d"\nname = "D"\nfrom = "a@b.org"\ntimezone = "Mars/Base"\n')
    result = digest("gather", cwd=tmp_path, check=False)
    assert "lists[0].timezone" in result.stderr and "IANA" in result.stderr

    result = digest("gather", cwd=tmp_path, env={"DIGEST_SMTP__PORT": "nope"}, check=False)
    assert "smtp.port" in result.stderr


def test_environment_overrides_the_file(workspace: tuple[Path, object]) -> None:
    config, _ = workspace
    from digest.config import load_settings

    os.environ["DIGEST_SMTP__PORT"] = "2626"
    try:
        assert load_settings(config).smtp.port == 2626
    finally:
        del os.environ["DIGEST_SMTP__PORT"]


def test_init_scaffolds_a_working_folder(tmp_path: Path) -> None:
    digest("init", str(tmp_path / "site"), cwd=tmp_path)
    site = tmp_path / "site"
    assert (site / "digest.toml").is_file() and (site / "subscribers").is_dir() and (site / "templates").is_dir()
    key = (site / "secret.key").read_text().strip()
    assert len(key) >= 40 and oct((site / "secret.key").stat().st_mode)[-3:] == "600"
    status = digest("status", "--json", cwd=site)
    assert json.loads(status.stdout) == {"editions": []}
    again = digest("init", str(site), cwd=tmp_path, check=False)
    assert again.returncode == 1 and "--force" in again.stderr


def test_subscribers_import_reports_bad_lines_and_keeps_good_rows(workspace: tuple[Path, object]) -> None:
    config, _ = workspace
    csv_file = config.parent / "people.csv"
    csv_file.write_text("email,name,timezone,send_hour\n"
                        "good@example.com,Good,Asia/Seoul,7\n"
                        "not-an-address,Bad,UTC,7\n"
                        "also@example.com,Also,Mars/Base,7\n"
                        "late@example.com,Late,UTC,25\n"
                        "fine@example.org,Fine,UTC,\n")
    result = digest("subscribers", "import", str(csv_file), "--list", "daily", "--confirmed", "--json", cwd=config.parent)
    report = json.loads(result.stdout)
    assert report["added"] == 2
    assert [e["line"] for e in report["errors"]] == [3, 4, 5]
    assert "time zone" in report["errors"][1]["error"] and "send_hour" in report["errors"][2]["error"]
    exported = digest("subscribers", "export", "--list", "daily", cwd=config.parent).stdout.splitlines()
    assert exported[0].startswith("email,name,timezone,send_hour,topics,locale")
    assert sorted(line.split(",")[0] for line in exported[1:]) == ["fine@example.org", "good@example.com"]


def test_import_without_confirmed_sends_double_opt_in_mail(workspace: tuple[Path, object], smtp_server: CaptureServer) -> None:
    config, _ = workspace
    csv_file = config.parent / "people.csv"
    csv_file.write_text("email\nnew@example.com\n")
    digest("subscribers", "import", str(csv_file), "--list", "daily", cwd=config.parent)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["new@example.com"]]
    body = smtp_server.messages[0].parse().get_body(("plain",)).get_content()
    assert "https://news.digest.example/confirm/" in body
    exported = digest("subscribers", "export", "--list", "daily", cwd=config.parent).stdout
    assert "new@example.com" in exported and exported.strip().endswith("pending")
    # A pending subscriber gets no digest.
    run = json.loads(digest("run", "daily", "--json", cwd=config.parent).stdout)
    assert run["dispatch"]["sent"] == 0


def test_run_and_status_json(workspace: tuple[Path, object], smtp_server: CaptureServer) -> None:
    config, _ = workspace
    (config.parent / "daily.csv").write_text("email\na@example.com\nb@example.com\n")
    digest("subscribers", "import", "daily.csv", "--list", "daily", "--confirmed", cwd=config.parent)
    build = json.loads(digest("build", "daily", "--json", cwd=config.parent).stdout)
    assert build["edition"]["enqueued"] == 2 and build["dispatch"] is None
    assert smtp_server.messages == []
    sent = json.loads(digest("send", "daily", "--json", cwd=config.parent).stdout)
    assert sent["sent"] == 2
    status = json.loads(digest("status", "--json", cwd=config.parent).stdout)
    assert status["editions"][0]["deliveries"] == {"sent": 2}


def test_strict_run_fails_when_a_source_fails(tmp_path: Path, feed_server: FeedServer, smtp_server: CaptureServer) -> None:
    write_config(tmp_path, smtp_port=smtp_server.port, sources=[("Missing", feed_server.url("nope.xml")),
                                                                 ("Alpha", feed_server.url("alpha.rss.xml"))])
    lenient = digest("gather", "--json", cwd=tmp_path)
    assert {s["source"]: s["ok"] for s in json.loads(lenient.stdout)["sources"]} == {"Missing": False, "Alpha": True}
    strict = digest("gather", "--strict", cwd=tmp_path, check=False)
    assert strict.returncode == 1 and "1 source(s) failed" in strict.stderr


@pytest.mark.parametrize("line", ['{"id": 1, "title": "x"', '["no", "object"]'])
def test_group_command_rejects_bad_input_with_line_number(tmp_path: Path, line: str) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "title": "t", "text": "x"}\n' + line + "\n")
    result = digest("group", "--input", "in.jsonl", "--output", "out.jsonl", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "in.jsonl:2" in result.stderr


def test_group_command_writes_one_line_per_article(tmp_path: Path) -> None:
    docs = [
        {"id": "a", "title": "Earthquake of magnitude 6.1 strikes Gyeongju", "text": "A magnitude 6.1 earthquake struck Gyeongju on Monday, damaging temples.", "story": "LABEL"},
        {"id": "b", "title": "Gyeongju quake: 6.1 magnitude tremor damages temples", "text": "The 6.1 magnitude earthquake in Gyeongju damaged several temples on Monday."},
        {"id": "c", "title": "K-pop group announces world tour", "text": "The band will play 31 shows in 18 cities next year."},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    digest("group", "--input", "in.jsonl", "--output", "out.jsonl", cwd=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    story = {r["id"]: r["story"] for r in rows}
    assert story["a"] == story["b"] != story["c"]
    assert all(set(r) == {"id", "story", "related"} for r in rows)
