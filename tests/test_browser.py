"""A real browser (Debian's chromium through Playwright) against the real server on loopback.

Subscriber: subscribe → confirm mail from the real SMTP server → confirm → preferences → digest →
RFC 8058 one-click POST → no further mail. Admin: login → CSV import with a bad row → preview → test
send; CSRF-less POST refused, a viewer cannot send, forged links refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import FeedServer, write_config
from test_web_helpers import PASSWORD, LiveServer, build_edition, make_user, subscribe

from digest.config import Settings, load_settings
from digest.db import audience as queries
from digest.db.models import SubscriptionStatus
from digest.demo.capture import CaptureServer, Received
from digest.pipeline import connect, run
from digest.audience.mailer import Mailer
from digest.db.session import open_database
from digest.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import Browser, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


def _require_browser() -> None:
    missing = ("the playwright package is not installed" if sync_playwright is None
               else f"{CHROMIUM} is missing (apt-get install chromium)" if not CHROMIUM.exists() else "")
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests need a browser: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_browser()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site(tmp_path: Path, feed_server: FeedServer, smtp_server: CaptureServer) -> Iterator[tuple[str, Settings]]:
    """A workspace whose base_url is the live server's own loopback address, so mailed links lead back to it."""
    server = LiveServer()
    config = write_config(tmp_path, sources=[("Alpha", feed_server.url("alpha.rss.xml")),
                                             ("Beta", feed_server.url("beta.atom.xml"))], smtp_port=smtp_server.port)
    config.write_text(config.read_text().replace("https://news.digest.example", server.url))
    settings = load_settings(config)
    server.mount(create_app(settings))
    mailer = Mailer(open_database(settings.database.url), settings, poll=0.1)  # what `digest serve` runs beside the app
    mailer.start_thread()
    with server:
        yield server.url, settings
    mailer.stop()


def wait_for_mail(smtp: CaptureServer, to: str, count: int = 1, timeout: float = 10) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in smtp.messages if m.rcpt_tos == [to]]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no mail #{count} for {to} within {timeout}s")


def status_of(settings: Settings, email: str) -> SubscriptionStatus | None:
    database = connect(settings)
    with database.session() as session:
        person = queries.subscriber_by_email(session, email)
        subs = queries.subscriptions_of(session, person.id) if person else []
        return subs[0].status if subs else None


def with_fresh_source(settings: Settings, now: dt.datetime) -> Settings:
    """The same workspace plus a feed with a story of tomorrow, so tomorrow's edition has something to send."""
    assert settings.config_path is not None
    feed = settings.config_path.parent / "tomorrow.rss.xml"
    when = format_datetime(now + dt.timedelta(hours=20))
    feed.write_text(f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Tomorrow</title>
<item><title>Harbour festival draws record crowds to Busan waterfront</title><link>https://tomorrow.example/busan</link>
<guid>tomorrow-1</guid><pubDate>{when}</pubDate><description>Organisers counted more visitors than in any year
since the festival began, with ferries added to cope with the evening fireworks.</description></item>
</channel></rss>""", encoding="utf-8")
    config = settings.config_path
    text = config.read_text()
    config.write_text(text.replace("[[lists]]", f'[[sources]]\nname = "Tomorrow"\nurl = "{feed}"\ntopics = ["korea"]\n\n[[lists]]', 1))
    return load_settings(config)


def test_subscriber_journey(browser: Browser, site: tuple[str, Settings], smtp_server: CaptureServer) -> None:
    url, settings = site
    subscribe(settings, "other@example.com")  # someone who stays, so "no further mail" is not "no mail at all"
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("#email", "reader@example.com")
    page.fill("#name", "Reader")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Check your inbox")

    (mail,) = wait_for_mail(smtp_server, "reader@example.com")
    text = mail.parse().get_body(("plain",)).get_content()
    confirm = re.search(re.escape(url) + r"/confirm/\S+", text)
    assert confirm, text
    page.goto(confirm.group(0))  # like a link scanner's GET, this changes nothing
    assert status_of(settings, "reader@example.com") == SubscriptionStatus.pending
    page.click("text=Confirm subscription")
    expect(page.locator("h1")).to_have_text("Subscribed")
    assert status_of(settings, "reader@example.com") == SubscriptionStatus.confirmed

    page.click("text=Choose topics")
    expect(page.locator("h1")).to_have_text("Your subscription")
    page.fill("#timezone", "Asia/Seoul")
    page.select_option("#locale", "ko")
    page.check("input[name='topics:daily'][value='korea']")
    page.click("text=Save")
    expect(page.locator(".notice")).to_contain_text("Saved")
    database = connect(settings)
    with database.session() as session:
        person = queries.subscriber_by_email(session, "reader@example.com")
        assert person is not None and (person.timezone, person.locale) == ("Asia/Seoul", "ko")
        assert queries.subscriptions_of(session, person.id)[0].topics == ["korea"]

    now = dt.datetime.now(dt.UTC)
    run(settings, "daily", now=now)
    (digest,) = wait_for_mail(smtp_server, "reader@example.com", count=2)[1:]
    header = str(digest.parse()["List-Unsubscribe"])
    unsubscribe = re.search(r"<(http[^>]+/u/[^>]+)>", header)
    assert unsubscribe and digest.parse()["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # What a mailbox provider does (RFC 8058): a POST with no cookies, no redirect followed.
    response = page.request.post(unsubscribe.group(1), form={"List-Unsubscribe": "One-Click"}, max_redirects=0)
    assert response.status == 200 and "set-cookie" not in response.headers
    assert status_of(settings, "reader@example.com") == SubscriptionStatus.unsubscribed

    before = len(smtp_server.messages)
    run(with_fresh_source(settings, now), "daily", now=now + dt.timedelta(days=1))  # the next edition
    later = smtp_server.messages[before:]
    assert [m.rcpt_tos for m in later] == [["other@example.com"]]

    page.goto(url + "/u/forged-token")
    expect(page.locator("h1")).to_have_text("This link does not work")
    page.close()


def test_admin_journey_and_security(browser: Browser, site: tuple[str, Settings], smtp_server: CaptureServer) -> None:
    url, settings = site
    make_user(settings, "boss", "admin")
    make_user(settings, "watcher", "viewer")
    edition_id = build_edition(settings)
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/admin/import")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.fill("#username", "boss")
    page.fill("#password", PASSWORD)
    page.click("button:text('Log in')")
    expect(page).to_have_url(url + "/admin/import")

    csv_text = "email,name,timezone\nann@example.com,Ann,UTC\nbroken-address,X,UTC\nbea@example.org,Bea,Asia/Seoul\n"
    page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}])
    page.check("input[name=confirmed]")
    page.click("button:text('Import')")
    expect(page.locator("#report")).to_contain_text("2 added")
    expect(page.locator("table.errors")).to_contain_text("broken-address")
    assert page.locator("table.errors td").first.inner_text() == "3"

    page.goto(f"{url}/admin/editions/{edition_id}")
    frame = page.frame_locator("iframe[name=preview]")
    expect(frame.locator("body")).to_contain_text("Preview Reader")
    page.fill("#test-email", "editor@example.com")
    page.click("button:text('Send test')")
    expect(page.locator(".notice")).to_contain_text("Test sent")
    (test_mail,) = wait_for_mail(smtp_server, "editor@example.com")
    assert str(test_mail.parse()["Subject"]).startswith("[test] ")

    # A forged cross-site POST carries the session cookie but not the CSRF token: refused, nothing changes.
    forged = page.request.post(f"{url}/admin/editions/{edition_id}/action", form={"action": "cancel"}, max_redirects=0)
    assert forged.status == 403
    page.goto(f"{url}/admin/editions/{edition_id}")
    expect(page.locator("#status")).to_have_text("ready")
    page.click("button:text('pause')")
    expect(page.locator("#status")).to_have_text("paused")
    context.close()

    viewer = browser.new_context()
    page = viewer.new_page()
    page.goto(url + "/admin/login")
    page.fill("#username", "watcher")
    page.fill("#password", PASSWORD)
    page.click("button:text('Log in')")
    page.goto(f"{url}/admin/editions/{edition_id}")
    assert page.locator("#test-email").count() == 0  # no send button for a viewer …
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(f"{url}/admin/editions/{edition_id}/test", max_redirects=0,
                                form={"csrf": csrf or "", "email": "viewer@example.com"})
    assert refused.status == 403  # … and sending behind its back is refused too
    assert not [m for m in smtp_server.messages if m.rcpt_tos == ["viewer@example.com"]]
    viewer.close()
