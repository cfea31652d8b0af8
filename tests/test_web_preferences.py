"""The preference centre (signed link, no login): choices, pause, GDPR export and erasure; consent records."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_web_helpers import deliver_confirmations, subscribe, token_for

from digest.audience.tokens import Signer
from digest.config import Settings, load_settings
from digest.db import audience as queries
from digest.db.models import Consent, Subscription, SubscriptionStatus
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web.app import create_app

TWO_LISTS = textwrap.dedent("""
    [[lists]]
    slug = "daily"
    name = "Test Daily"
    from = "Test Daily <news@digest.example>"
    topics = ["korea", "economy"]

    [[lists]]
    slug = "weekly"
    name = "Test Weekly"
    from = "Test Weekly <weekly@digest.example>"
    """)


@pytest.fixture
def settings(workspace: tuple[Path, Settings]) -> Settings:
    config, _ = workspace
    text = config.read_text()
    config.write_text(text[: text.index("[[lists]]")] + TWO_LISTS)
    return load_settings(config)


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), follow_redirects=False)


def subscriptions(settings: Settings, email: str) -> dict[str, Subscription]:
    database = connect(settings)
    with database.session() as session:
        person = queries.subscriber_by_email(session, email)
        return {} if person is None else {s.mailing_list.slug: s for s in queries.subscriptions_of(session, person.id)}


def test_preferences_change_lists_topics_frequency_hour_zone_language(client: TestClient, settings: Settings) -> None:
    token = token_for(settings, "preferences", subscribe(settings, "pref@example.com"))
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and "pref@example.com" in page.text and "set-cookie" not in page.headers
    form = {"name": "Pref", "timezone": "Asia/Seoul", "send_hour": "6", "locale": "ko", "list": ["daily", "weekly"],
            "topics:daily": ["economy"], "frequency:daily": "weekly", "weekly_day:daily": "fri",
            "frequency:weekly": "daily"}
    saved = client.post(f"/p/{token}", data=form)
    assert saved.status_code == 200 and "Saved" in saved.text
    subs = subscriptions(settings, "pref@example.com")
    daily, weekly = subs["daily"], subs["weekly"]
    assert (daily.topics, daily.frequency, daily.weekly_day, daily.status) == (["economy"], "weekly", 4, SubscriptionStatus.confirmed)
    assert weekly.status == SubscriptionStatus.confirmed  # the link proves the mailbox: no second opt-in
    view = client.get(f"/p/{token}?format=json").json()
    assert (view["timezone"], view["send_hour"], view["locale"], view["name"]) == ("Asia/Seoul", 6, "ko", "Pref")
    # Unticking a list unsubscribes from it; a topic the list does not offer is refused and nothing changes.
    assert client.post(f"/p/{token}", data={**form, "list": ["daily"]}).status_code == 200
    assert subscriptions(settings, "pref@example.com")["weekly"].status == SubscriptionStatus.unsubscribed
    bad = client.post(f"/p/{token}", data={**form, "topics:daily": ["k-pop"], "timezone": "UTC"})
    assert bad.status_code == 400 and "k-pop" in bad.text
    assert client.get(f"/p/{token}?format=json").json()["timezone"] == "Asia/Seoul"


def test_pause_and_resume(client: TestClient, settings: Settings) -> None:
    token = token_for(settings, "preferences", subscribe(settings, "pause@example.com"))
    base = {"timezone": "UTC", "locale": "en", "list": ["daily"]}
    client.post(f"/p/{token}", data={**base, "paused": "1"})
    assert subscriptions(settings, "pause@example.com")["daily"].status == SubscriptionStatus.paused
    client.post(f"/p/{token}", data=base)
    assert subscriptions(settings, "pause@example.com")["daily"].status == SubscriptionStatus.confirmed


def test_paused_subscribers_get_no_edition(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    from digest.pipeline import run

    token = token_for(settings, "preferences", subscribe(settings, "quiet@example.com"))
    subscribe(settings, "loud@example.com")
    client.post(f"/p/{token}", data={"timezone": "UTC", "locale": "en", "list": ["daily"], "paused": "1"})
    run(settings, "daily")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["loud@example.com"]]


def test_gdpr_export_and_delete(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    client.post("/subscribe", data={"email": "gdpr@example.com", "list": "daily"})
    deliver_confirmations(settings)
    body = smtp_server.messages[0].parse().get_body(("plain",)).get_content()
    confirm = re.search(r"https://news\.digest\.example(/confirm/\S+)", body)
    assert confirm is not None
    assert client.post(confirm.group(1)).status_code == 200
    token = token_for(settings, "preferences", next((s.subscriber_id, s.list_id) for s in subscriptions(settings, "gdpr@example.com").values()))
    export = client.post(f"/p/{token}/export")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    data = json.loads(export.content)
    assert data["subscriber"]["email"] == "gdpr@example.com"
    assert [c["action"] for c in data["consents"]] == ["requested", "confirmed"]
    assert data["consents"][0]["ip"] and data["consents"][0]["wording_version"] == settings.web.consent_version
    assert client.get(f"/p/{token}/delete").status_code == 200  # a GET only asks
    assert subscriptions(settings, "gdpr@example.com")
    assert client.post(f"/p/{token}/delete").status_code == 200
    assert subscriptions(settings, "gdpr@example.com") == {}
    database = connect(settings)
    with database.session() as session:
        assert session.query(Consent).count() == 0
    assert client.get(f"/p/{token}").status_code == 400  # the link is dead now


def test_forged_or_cross_scope_preference_links(client: TestClient, settings: Settings) -> None:
    ids = subscribe(settings, "safe@example.com")
    unsubscribe_token = token_for(settings, "unsubscribe", ids)
    forged = Signer(b"another-secret-key-0123456789abcdef").make("preferences", *ids)
    for token in (unsubscribe_token, forged, "garbage"):
        assert client.post(f"/p/{token}", data={"list": []}).status_code == 400
        assert client.post(f"/p/{token}/delete").status_code == 400
        assert client.post(f"/p/{token}/export").status_code == 400
    page = client.get(f"/p/{forged}")
    assert page.status_code == 400 and "not valid" in page.text
    assert subscriptions(settings, "safe@example.com")["daily"].status == SubscriptionStatus.confirmed


def test_public_form_cannot_change_a_known_subscriber(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    subscribe(settings, "known@example.com")
    response = client.post("/subscribe", data={"email": "known@example.com", "list": "daily", "timezone": "Asia/Tokyo",
                                               "topics": ["economy"], "frequency": "weekly"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    daily = subscriptions(settings, "known@example.com")["daily"]
    assert (daily.topics, daily.frequency, daily.status) == ([], "daily", SubscriptionStatus.confirmed)
    assert deliver_confirmations(settings) == 0 and not smtp_server.messages  # already subscribed: no mail, and the page said the same as always


def test_subscribe_form_takes_every_choice(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    assert 'name="topics"' in client.get("/").text
    client.post("/subscribe", data={"email": "new@example.com", "list": ["daily", "weekly"], "topics": ["economy"],
                                    "frequency": "weekly", "weekly_day": "wed", "send_hour": "8",
                                    "timezone": "Europe/Paris", "locale": "ko", "name": "Nou"})
    subs = subscriptions(settings, "new@example.com")
    assert {k: v.status for k, v in subs.items()} == {"daily": SubscriptionStatus.pending, "weekly": SubscriptionStatus.pending}
    assert (subs["daily"].topics, subs["daily"].weekly_day) == (["economy"], 2)
    assert subs["weekly"].topics == []  # the weekly list offers only the sources' topic (korea): economy is dropped
    deliver_confirmations(settings)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["new@example.com", "new@example.com"]
    database = connect(settings)
    with database.session() as session:
        person = queries.subscriber_by_email(session, "new@example.com")
    assert person is not None and (person.timezone, person.send_hour, person.locale, person.name) == ("Europe/Paris", 8, "ko", "Nou")
    assert client.post("/subscribe", data={"email": "x@example.com", "list": "daily", "timezone": "Mars/Base"}).status_code == 400


def test_rate_limit_per_ip(client: TestClient, settings: Settings) -> None:
    codes = [client.post("/subscribe", data={"email": f"p{i}@example.com", "list": "daily"}).status_code
             for i in range(settings.web.subscribe_per_ip_hour + 1)]
    assert codes[:-1] == [200] * settings.web.subscribe_per_ip_hour and codes[-1] == 429


def test_old_confirm_link_does_not_undo_an_unsubscribe(client: TestClient, settings: Settings) -> None:
    ids = subscribe(settings, "later@example.com", confirmed=False)
    assert client.post(f"/u/{token_for(settings, 'unsubscribe', ids)}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.post(f"/confirm/{token_for(settings, 'confirm', ids)}").status_code == 400
    assert subscriptions(settings, "later@example.com")["daily"].status == SubscriptionStatus.unsubscribed


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/").headers
    assert headers["referrer-policy"] == "no-referrer"  # tokens in URLs never leak through Referer
    assert "frame-ancestors 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
