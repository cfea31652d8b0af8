"""End to end on SQLite: real HTTP feeds in, real SMTP bytes out."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from conftest import SUBSCRIBERS_CSV, FeedServer, write_config

from digest.audience.subscribers import import_csv
from digest.config import Settings, load_settings
from digest.db import audience as audience_queries
from digest.db.models import Delivery, DeliveryState
from digest.demo.capture import CaptureServer
from digest.pipeline import connect, run


def subscribe_all(settings: Settings, csv_text: str = SUBSCRIBERS_CSV) -> None:
    database = connect(settings)
    with database.session() as session:
        lists = audience_queries.sync_lists(session, settings.lists)
        report = import_csv(session, lists["daily"], csv_text.splitlines(keepends=True), confirmed=True)
        assert not report.errors
    database.dispose()


def test_each_subscriber_gets_one_standard_message(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings)
    report = run(settings, "daily")

    assert report.dispatch is not None and report.dispatch.sent == 3
    received = smtp_server.messages
    assert sorted(r.rcpt_tos[0] for r in received) == ["ana@example.com", "bo@example.net", "cy@example.org"]
    message_ids = set()
    for item in received:
        assert b"\r\n" in item.data and not re.search(rb"[^\r]\n", item.data), "CRLF line endings only"
        assert max(len(line) for line in item.data.split(b"\r\n")) <= 998
        msg = message_from_bytes(item.data, policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"], "text first, then HTML"
        assert msg["List-Id"] == '"Test Daily" <daily.digest.example>'
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = re.match(r"<(https://news\.digest\.example/u/[A-Za-z0-9_.-]+)>(, <mailto:[^>]+>)?$",
                               str(msg["List-Unsubscribe"]))
        assert unsubscribe, msg["List-Unsubscribe"]
        assert str(msg["Message-ID"]).endswith("@digest.example>")
        message_ids.add(str(msg["Message-ID"]))
        assert msg["Date"].endswith("+0000")
        assert msg["From"] == "Test Daily <news@digest.example>"
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert len(html.encode()) < 100_000
        assert unsubscribe.group(1) in html and unsubscribe.group(1) in text
        # The syndicated shipyard story is one entry listing both outlets.
        assert html.count("shipyard-wages") >= 1 and "Beta Monitor" not in html
        assert re.search(r"(Sources|출처): (Alpha, Beta|Beta, Alpha)", text)
    assert len(message_ids) == 3


def test_hostile_article_is_neutralised(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings, "email\nana@example.com\n")
    run(settings, "daily")
    msg = message_from_bytes(smtp_server.messages[0].data, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "<script" not in html.lower() and "onerror" not in html.lower() and "javascript:" not in html.lower()
    # Template syntax in an article shows literally; it is never evaluated.
    assert "{{ 7*7 }} Template" in text
    assert "{{ 7*7 }} Template" in html or "{{ 7*7 }}" in html.replace("&#123;", "{")
    assert "49 Template" not in text and "49 Template" not in html
    # A title with a line break stays one line in the Subject header.
    for value in msg.values():
        assert "\n" not in value and "\r" not in value


def test_second_run_in_same_period_sends_nothing(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings)
    first = run(settings, "daily")
    second = run(settings, "daily")
    assert first.dispatch is not None and first.dispatch.sent == 3
    assert second.dispatch is not None and second.dispatch.sent == 0
    assert second.build is not None and not second.build.created and second.build.edition_id == first.build.edition_id
    assert len(smtp_server.messages) == 3
    database = connect(settings)
    with database.session() as session:
        states = [d.state for d in session.query(Delivery)]
    assert states == [DeliveryState.sent] * 3


def test_subscriber_added_later_in_the_period_gets_the_same_edition(workspace: tuple[Path, Settings],
                                                                     smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings, "email\nana@example.com\n")
    run(settings, "daily")
    subscribe_all(settings, "email,locale\nnew@example.com,ko\n")
    report = run(settings, "daily")
    assert report.dispatch is not None and report.dispatch.sent == 1
    assert [r.rcpt_tos for r in smtp_server.messages] == [["ana@example.com"], ["new@example.com"]]


def test_broken_sources_are_reported_and_the_rest_go_out(tmp_path: Path, feed_server: FeedServer,
                                                         smtp_server: CaptureServer) -> None:
    config = write_config(tmp_path, smtp_port=smtp_server.port, sources=[
        ("Missing", feed_server.url("nope.xml")),
        ("Broken", feed_server.url("broken.xml")),
        ("Gone", feed_server.url("status/410")),
        ("Alpha", feed_server.url("alpha.rss.xml")),
        ("Beta", feed_server.url("beta.atom.xml")),
    ])
    settings = load_settings(config)
    subscribe_all(settings)
    report = run(settings, "daily")
    outcomes = {o.source: o for o in report.sources}
    assert not outcomes["Missing"].ok and "404" in outcomes["Missing"].error
    assert not outcomes["Broken"].ok and "not" in outcomes["Broken"].error and "feed" in outcomes["Broken"].error
    assert not outcomes["Gone"].ok
    assert outcomes["Alpha"].ok and outcomes["Alpha"].new_items == 3
    assert outcomes["Beta"].ok and outcomes["Beta"].new_items == 2
    assert report.dispatch is not None and report.dispatch.sent == 3
    database = connect(settings)
    from digest.db.sources import all_sources

    with database.session() as session:
        health = {s.name: s for s in all_sources(session)}
    assert health["Missing"].consecutive_failures == 1 and "404" in (health["Missing"].last_error or "")
    assert health["Alpha"].consecutive_failures == 0 and health["Alpha"].last_success_at is not None


def test_unsuppressed_and_unsubscribed_are_not_enqueued(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings)
    database = connect(settings)
    with database.session() as session:
        audience_queries.suppress(session, "bo@example.net", "test")
        lists = audience_queries.sync_lists(session, settings.lists)
        cy = audience_queries.subscriber_by_email(session, "cy@example.org")
        sub = audience_queries.subscription(session, lists["daily"].id, cy.id)
        audience_queries.unsubscribe(session, sub, how="test")
    report = run(settings, "daily", database=database)
    assert report.dispatch is not None and report.dispatch.sent == 1
    assert [r.rcpt_tos for r in smtp_server.messages] == [["ana@example.com"]]


def test_rejected_recipient_fails_and_is_suppressed(workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    subscribe_all(settings)
    smtp_server.reject("bo@example.net", "550 5.1.1 No such user")
    smtp_server.reject("cy@example.org", "451 4.3.0 Try again later")
    report = run(settings, "daily")
    assert report.dispatch is not None
    assert (report.dispatch.sent, report.dispatch.failed, report.dispatch.deferred) == (1, 1, 1)
    database = connect(settings)
    with database.session() as session:
        rows = {d.subscriber.email: d for d in session.query(Delivery)}
        assert rows["bo@example.net"].state == DeliveryState.failed and "550" in rows["bo@example.net"].last_reply
        assert rows["cy@example.org"].state == DeliveryState.deferred and "451" in rows["cy@example.org"].last_reply
        assert rows["cy@example.org"].next_attempt_at > rows["cy@example.org"].created_at
        assert audience_queries.is_suppressed(session, "bo@example.net")
        assert not audience_queries.is_suppressed(session, "cy@example.org")


def test_the_pipeline_runs_on_postgresql(workspace: tuple[Path, Settings], smtp_server: CaptureServer, pg_url: str) -> None:
    _, settings = workspace
    settings.database.url = pg_url
    subscribe_all(settings)
    first = run(settings, "daily")
    second = run(settings, "daily")
    assert first.dispatch is not None and first.dispatch.sent == 3
    assert second.dispatch is not None and second.dispatch.sent == 0
    assert (first.build.enqueued, second.build.enqueued) == (3, 0)  # real row counts, not -1, on psycopg
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == ["ana@example.com", "bo@example.net", "cy@example.org"]


def test_a_syndicated_copy_is_one_entry_crediting_both_sources(tmp_path: Path, feed_server: FeedServer,
                                                                 smtp_server: CaptureServer) -> None:
    config = write_config(tmp_path, smtp_port=smtp_server.port, sources=[
        ("Wire", feed_server.url("synd-a.rss.xml")), ("Reprint", feed_server.url("synd-b.rss.xml"))])
    settings = load_settings(config)
    subscribe_all(settings, "email\nana@example.com\n")
    report = run(settings, "daily")
    assert report.build is not None and report.build.stories == 1
    text = smtp_server.messages[0].parse().get_body(("plain",)).get_content()
    assert text.count("Typhoon Mireu forces 30,000") == 1
    assert re.search(r"Sources: (Wire, Reprint|Reprint, Wire)", text), text
