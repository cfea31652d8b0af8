"""The confirm-mail outbox and the mailer: queued with the sign-up, leased, retried, never lost; limits shared by processes."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_web_helpers import subscribe

from digest.audience.confirmations import LEASE, MAX_ATTEMPTS, queue_confirmations, send_due
from digest.config import Settings, load_settings
from digest.db import audience as queries
from digest.db import outbox
from digest.db.models import OutboxMail, utcnow
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web.app import create_app
from digest.web.ratelimit import Limit

from conftest import write_config


def outbox_rows(settings: Settings) -> list[OutboxMail]:
    with connect(settings).session() as session:
        return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def test_sign_up_queues_the_mail_in_its_own_transaction(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    client = TestClient(create_app(settings))
    assert client.post("/subscribe", data={"email": "q@example.com", "list": "daily"}).status_code == 200
    (row,) = outbox_rows(settings)
    assert (row.kind, row.attempts, row.failed_at) == ("confirm", 0, None)
    assert not smtp_server.messages
    report = send_due(connect(settings), settings)
    assert (report.sent, report.retrying) == (1, 0) and outbox_rows(settings) == []
    assert smtp_server.messages[0].rcpt_tos == ["q@example.com"]
    assert send_due(connect(settings), settings).sent == 0  # sent once, then gone from the outbox


def test_smtp_down_means_later_not_lost(tmp_path: Path, smtp_server: CaptureServer) -> None:
    settings = load_settings(write_config(tmp_path, sources=[], smtp_port=1))  # nothing listens on port 1
    database = connect(settings)
    ids = subscribe(settings, "later@example.com", confirmed=False)
    with database.session() as session:
        queue_confirmations(session, [ids])
    now = utcnow()
    report = send_due(database, settings, now=now)
    assert (report.sent, report.retrying, report.given_up) == (0, 1, 0)
    (row,) = outbox_rows(settings)
    assert row.attempts == 1 and row.not_before > now and "connect" in row.last_error
    assert send_due(database, settings, now=now).retrying == 0  # not due again before its backoff ends

    working = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": smtp_server.port})})
    report = send_due(database, working, now=row.not_before + dt.timedelta(seconds=1))
    assert report.sent == 1 and outbox_rows(settings) == []
    assert smtp_server.messages[0].rcpt_tos == ["later@example.com"]


def test_permanent_refusal_is_given_up_and_kept_for_review(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    smtp_server.reject("gone@example.com", "550 5.1.1 no such user")
    database = connect(settings)
    with database.session() as session:
        queue_confirmations(session, [subscribe(settings, "gone@example.com", confirmed=False),
                                      subscribe(settings, "fine@example.com", confirmed=False)])
    report = send_due(database, settings)
    assert (report.sent, report.given_up) == (1, 1)  # one refusal never stops the rest
    (kept,) = outbox_rows(settings)
    assert kept.failed_at is not None and "550" in kept.last_error
    with database.session() as session:
        assert outbox.counts(session)[:2] == (0, 1)
    assert send_due(database, settings).given_up == 0  # given up means not retried


def test_transient_refusals_back_off_then_give_up(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    smtp_server.reject("busy@example.com", "451 4.3.0 try later")
    database = connect(settings)
    with database.session() as session:
        queue_confirmations(session, [subscribe(settings, "busy@example.com", confirmed=False)])
    now, waits = utcnow(), []
    for _ in range(MAX_ATTEMPTS):
        report = send_due(database, settings, now=now)
        (row,) = outbox_rows(settings)
        if row.failed_at is not None:
            break
        waits.append(row.not_before - now)
        now = row.not_before
    assert waits == [dt.timedelta(minutes=2 ** n) for n in range(MAX_ATTEMPTS - 1)]
    assert report.given_up == 1 and row.attempts == MAX_ATTEMPTS


def test_a_claim_is_leased_so_a_dead_mailer_loses_nothing(workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    database = connect(settings)
    with database.session() as session:
        queue_confirmations(session, [subscribe(settings, f"l{i}@example.com", confirmed=False) for i in range(3)])
    now = utcnow()
    with database.session() as session:
        first = outbox.claim(session, now, LEASE, limit=2)
    with database.session() as session:
        second = outbox.claim(session, now + LEASE / 2, LEASE, limit=10)
    assert len(first) == 2 and len(second) == 1 and not {c.id for c in first} & {c.id for c in second}
    with database.session() as session:  # the first mailer died: after its lease its rows are free again
        assert outbox.claim(session, now + LEASE / 2, LEASE, limit=10) == []
        assert {c.id for c in outbox.claim(session, now + LEASE + dt.timedelta(seconds=1), LEASE, limit=10)} == \
            {c.id for c in first}


def test_erased_or_suppressed_before_sending_gets_nothing(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    database = connect(settings)
    erased = subscribe(settings, "erased@example.com", confirmed=False)
    blocked = subscribe(settings, "blocked@example.com", confirmed=False)
    with database.session() as session:
        queue_confirmations(session, [erased, blocked])
    with database.session() as session:
        queries.erase_subscriber(session, erased[0])
        queries.suppress(session, "blocked@example.com", reason="test")
    report = send_due(database, settings)
    assert report.sent == 0 and not smtp_server.messages and outbox_rows(settings) == []


def test_limit_slides_across_windows(workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    database = connect(settings)
    limit = Limit("t", limit=4, window=100)
    start = 1_000_000 * 100
    with database.session() as session:
        assert [limit.allow(session, "k", start + 10) for _ in range(5)] == [True] * 4 + [False]
        assert limit.allow(session, "other", start + 10)  # keys are apart
        # Halfway into the next window, half of the previous one still counts: 5 × 0.5 + 1 ≤ 4, + 2 more, then no.
        assert [limit.allow(session, "k", start + 150) for _ in range(3)] == [True, False, False]
        assert limit.allow(session, "k", start + 299)  # two windows later the old count is gone


def test_limits_hold_across_web_processes(workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    # Two apps with their own engines stand for two `serve --workers` processes on one database.
    first, second = TestClient(create_app(settings)), TestClient(create_app(settings))
    codes = [(first if i % 2 else second).post("/subscribe", data={"email": f"m{i}@example.com", "list": "daily"}).status_code
             for i in range(settings.web.subscribe_per_ip_hour + 1)]
    assert codes == [200] * settings.web.subscribe_per_ip_hour + [429]
    assert len(outbox_rows(settings)) == settings.web.subscribe_per_ip_hour  # the refused one queued nothing


def test_serve_with_two_workers_and_its_mailer(tmp_path: Path, smtp_server: CaptureServer) -> None:
    """The production shape: `digest serve --workers 2` answers, and its mailer process sends the confirm mail."""
    from dispatch_support import free_port

    port = free_port()
    config = write_config(tmp_path, sources=[], smtp_port=smtp_server.port)
    server = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "serve", "--workers", "2",
                               "--port", str(port)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        answer = httpx.post(f"{url}/subscribe", data={"email": "live@example.com", "list": "daily"}, timeout=10)
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        deadline = time.monotonic() + 20
        while not smtp_server.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [m.rcpt_tos for m in smtp_server.messages] == [["live@example.com"]]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("digest serve did not stop on SIGINT")
    assert server.returncode == 0, server.stderr.read().decode()[-2000:] if server.stderr else ""


def test_a_mail_that_cannot_be_built_waits_and_the_rest_go(workspace: tuple[Path, Settings], smtp_server: CaptureServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.audience import confirmations
    from digest.errors import RenderError

    _, settings = workspace
    database = connect(settings)
    with database.session() as session:
        queue_confirmations(session, [subscribe(settings, "broken@example.com", confirmed=False),
                                      subscribe(settings, "fine@example.com", confirmed=False)])
    real = confirmations.confirm_message

    def flaky(settings_: Settings, signer: object, mail: object, now: dt.datetime) -> bytes:
        if mail.email == "broken@example.com":  # type: ignore[attr-defined]
            raise RenderError("template failed")
        return real(settings_, signer, mail, now)  # type: ignore[arg-type]

    monkeypatch.setattr(confirmations, "confirm_message", flaky)
    report = send_due(database, settings)
    assert (report.sent, report.retrying) == (1, 1)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["fine@example.com"]]
    (row,) = outbox_rows(settings)
    assert row.attempts == 1 and "cannot build the message: template failed" in row.last_error and row.failed_at is None
