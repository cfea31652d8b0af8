"""Public pages: subscribe, confirm, RFC 8058 one-click unsubscribe, healthz."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.db.models import SubscriptionStatus
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web.app import create_app
from test_web_helpers import deliver_confirmations


@pytest.fixture
def client(workspace: tuple[Path, Settings]) -> TestClient:
    _, settings = workspace
    return TestClient(create_app(settings), follow_redirects=False)


def status_of(settings: Settings, email: str) -> SubscriptionStatus | None:
    database = connect(settings)
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        subscriber = queries.subscriber_by_email(session, email)
        if subscriber is None:
            return None
        sub = queries.subscription(session, lists["daily"].id, subscriber.id)
        return sub.status if sub else None


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_double_opt_in_flow(client: TestClient, workspace: tuple[Path, Settings], smtp_server: CaptureServer) -> None:
    _, settings = workspace
    response = client.post("/subscribe", data={"email": "Reader@Example.COM", "list": "daily"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert status_of(settings, "Reader@example.com") == SubscriptionStatus.pending
    assert not smtp_server.messages  # queued with the sign-up; the request never waits on SMTP
    assert deliver_confirmations(settings) == 1
    body = smtp_server.messages[0].parse().get_body(("plain",)).get_content()
    link = re.search(r"https://news\.digest\.example(/confirm/\S+)", body)
    assert link
    # A GET (a link scanner) changes nothing; the button's POST confirms.
    assert client.get(link.group(1)).status_code == 200
    assert status_of(settings, "Reader@example.com") == SubscriptionStatus.pending
    assert client.post(link.group(1)).status_code == 200
    assert status_of(settings, "Reader@example.com") == SubscriptionStatus.confirmed


def test_subscribe_does_not_reveal_known_addresses_and_resists_bombing(client: TestClient, workspace: tuple[Path, Settings],
                                                                       smtp_server: CaptureServer) -> None:
    _, settings = workspace
    answers = {client.post("/subscribe", data={"email": "target@example.com", "list": "daily"}).text for _ in range(5)}
    assert len(answers) == 1
    deliver_confirmations(settings)
    assert len(smtp_server.messages) == settings.web.subscribe_per_address_day == 3  # per-address limit
    honeypot = client.post("/subscribe", data={"email": "bot@example.com", "list": "daily", "website": "spam"})
    deliver_confirmations(settings)
    assert honeypot.status_code == 200 and all(m.rcpt_tos != ["bot@example.com"] for m in smtp_server.messages)
    assert client.post("/subscribe", data={"email": "x@example.com", "list": "nope"}).status_code == 404
    assert client.post("/subscribe", data={"email": "not an address", "list": "daily"}).status_code == 400


def one_click_setup(settings: Settings) -> str:
    database = connect(settings)
    from digest.audience.subscribers import SubscriberData, add_subscriber

    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        _, sub = add_subscriber(session, lists["daily"], SubscriberData(email="one@example.com"), confirmed=True,
                                source="test")
        return Signer(settings.secret_key()).make("unsubscribe", sub.subscriber_id, sub.list_id)


def test_rfc8058_one_click_unsubscribe(client: TestClient, workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    token = one_click_setup(settings)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and "<form" in page.text
    assert status_of(settings, "one@example.com") == SubscriptionStatus.confirmed  # GET changes nothing
    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert status_of(settings, "one@example.com") == SubscriptionStatus.unsubscribed
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200  # repeat is harmless


def test_one_click_accepts_multipart(client: TestClient, workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    token = one_click_setup(settings)
    response = client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert status_of(settings, "one@example.com") == SubscriptionStatus.unsubscribed


def test_forged_and_cross_scope_tokens_change_nothing(client: TestClient, workspace: tuple[Path, Settings]) -> None:
    _, settings = workspace
    token = one_click_setup(settings)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.post(f"/u/{tampered}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert client.post(f"/confirm/{token}").status_code == 400  # an unsubscribe token is not a confirm token
    forged = Signer(b"some-other-secret-key-0123456789").make("unsubscribe", 1, 1)
    assert client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert status_of(settings, "one@example.com") == SubscriptionStatus.confirmed
