"""Bounce intake: our DSN, ARF, auto-reply and mailto fixtures, over real SMTP/LMTP and from mailboxes."""

from __future__ import annotations

import mailbox
import smtplib
from pathlib import Path

import pytest
from dispatch_support import RecordingServer, free_port, make_settings, seed
from sqlalchemy import select

from digest.bounces.intake import process_path, start_intake
from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db.models import BounceScore, Delivery, Subscription, SubscriptionStatus, Suppression
from digest.db.session import Database, open_database
from digest.dispatch.verp import parse_verp, verp_address
from digest.dispatch.worker import Dispatcher

FIXTURES = Path(__file__).with_name("fixtures") / "bounces"
BOUNCES = """
    [bounces]
    domain = "bounces.digest.example"
    soft_threshold = 2.5
    """
EMAILS = ["ana@example.com", "bo@example.net", "cy@example.org", "di@example.org"]


@pytest.fixture
def sent(tmp_path: Path) -> tuple[Database, Settings, dict[str, Delivery]]:
    """Four subscribers who were each sent the edition (with VERP envelope senders)."""
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port, BOUNCES)
        database = open_database(settings.database.url)
        seed(database, EMAILS)
        assert Dispatcher(database, settings).run().sent == 4
        senders = {r.rcpt: r.mail_from for r in server.handler.records}
    with database.session() as session:
        rows = {d.subscriber.email: d for d in session.scalars(select(Delivery))}
    for email, row in rows.items():
        assert senders[email] == verp_address(row.id, settings.secret_key(), settings.bounces)  # type: ignore[arg-type]
        assert parse_verp(senders[email], settings.secret_key(), settings.bounces) == row.id  # type: ignore[arg-type]
    return database, settings, rows


def fixture(name: str, settings: Settings, row: Delivery) -> bytes:
    text = (FIXTURES / name).read_text()
    verp = verp_address(row.id, settings.secret_key(), settings.bounces)  # type: ignore[arg-type]
    return (text.replace("{VERP}", verp).replace("{EMAIL}", row.subscriber.email)
            .replace("{MSGID}", row.message_id).replace("\n", "\r\n").encode())


def suppressed(database: Database) -> dict[str, str]:
    with database.session() as session:
        return {s.email: s.kind for s in session.scalars(select(Suppression))}


def test_smtp_intake_applies_dsns_and_refuses_strangers(sent: tuple[Database, Settings, dict[str, Delivery]]) -> None:
    database, settings, rows = sent
    controller, handler = start_intake(database, settings, port=free_port())
    try:
        with smtplib.SMTP(controller.hostname, controller.port, timeout=10) as client:
            ana, bo = rows["ana@example.com"], rows["bo@example.net"]
            client.sendmail("", [verp_address(ana.id, settings.secret_key(), settings.bounces)],  # type: ignore[arg-type]
                            fixture("dsn_hard.eml", settings, ana))
            for _ in range(2):  # two soft bounces pass the 2.5 threshold only with the third
                client.sendmail("", [verp_address(bo.id, settings.secret_key(), settings.bounces)],  # type: ignore[arg-type]
                                fixture("dsn_soft.eml", settings, bo))
            assert "bo@example.net" not in suppressed(database)
            client.sendmail("", [verp_address(bo.id, settings.secret_key(), settings.bounces)],  # type: ignore[arg-type]
                            fixture("dsn_soft.eml", settings, bo))
            # Not a mailbox of ours, or a forged tag: refused at RCPT.
            for stranger in ("someone@bounces.digest.example", f"bounces+{ana.id}-aaaaaaaaaaaa@bounces.digest.example"):
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("", [stranger], b"Subject: x\r\n\r\nx\r\n")
    finally:
        controller.stop()
    assert suppressed(database) == {"ana@example.com": "hard_bounce", "bo@example.net": "soft_bounce"}
    assert handler.summary.by_kind == {"hard": 1, "soft": 3}
    with database.session() as session:
        assert session.get(Delivery, rows["ana@example.com"].id).bounce_kind == "hard"
        score = session.scalar(select(BounceScore).where(BounceScore.email == "bo@example.net"))
        assert score is not None and score.soft_count == 3 and 2.5 <= score.soft_score <= 3.0


def test_lmtp_intake_answers_per_recipient_and_ignores_delays(sent: tuple[Database, Settings, dict[str, Delivery]]) -> None:
    database, settings, rows = sent
    controller, handler = start_intake(database, settings, port=free_port(), lmtp=True)
    try:
        cy = rows["cy@example.org"]
        client = smtplib.LMTP(controller.hostname, controller.port, timeout=10)
        try:
            refused = client.sendmail("", [verp_address(cy.id, settings.secret_key(), settings.bounces)],  # type: ignore[arg-type]
                                      fixture("dsn_delayed.eml", settings, cy))
            assert refused == {}
            client.sendmail("", [verp_address(cy.id, settings.secret_key(), settings.bounces)],  # type: ignore[arg-type]
                            fixture("plain_bounce.eml", settings, cy))
        finally:
            client.quit()
    finally:
        controller.stop()
    assert handler.summary.by_kind == {"delayed": 1, "hard": 1}  # flufl.bounce reads the non-standard one
    assert suppressed(database) == {"cy@example.org": "hard_bounce"}


def test_process_maildir_and_mbox(sent: tuple[Database, Settings, dict[str, Delivery]], tmp_path: Path) -> None:
    database, settings, rows = sent
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    folder.add(fixture("arf.eml", settings, rows["di@example.org"]))  # names its original only by Message-ID
    folder.add(fixture("autoreply.eml", settings, rows["ana@example.com"]))
    folder.add(fixture("unsubscribe.eml", settings, rows["bo@example.net"]))
    folder.add(fixture("dsn_hard.eml", settings, rows["cy@example.org"]).replace(b"bounces+", b"bounces+9"))  # bad VERP
    summary = process_path(database, settings, tmp_path / "Maildir")
    assert summary.by_kind == {"complaint": 1, "auto_reply": 1, "unsubscribe": 1, "hard": 1}
    assert summary.by_action == {"suppressed": 1, "ignored": 2, "unsubscribed": 1}
    assert suppressed(database) == {"di@example.org": "complaint"}
    with database.session() as session:
        statuses = {s.subscriber.email: s.status for s in session.scalars(select(Subscription))}
        assert statuses["bo@example.net"] == SubscriptionStatus.unsubscribed
        assert statuses["ana@example.com"] == SubscriptionStatus.confirmed
        assert not audience_queries.is_suppressed(session, "cy@example.org")

    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(fixture("dsn_hard.eml", settings, rows["cy@example.org"]))
    box.flush()
    assert process_path(database, settings, tmp_path / "bounces.mbox").by_action == {"suppressed": 1}
    assert suppressed(database)["cy@example.org"] == "hard_bounce"
