"""Admin UI through its real HTTP interface: login, CSRF, roles, lockout, pages, import, editions."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_web_helpers import PASSWORD, build_edition, csrf_of, login, make_user, subscribe

from digest.config import Settings, load_settings
from digest.db import admin as admin_queries
from digest.db import audience as queries
from digest.db.models import Edition
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web.app import create_app


@pytest.fixture
def settings(workspace: tuple[Path, Settings]) -> Settings:
    return workspace[1]


@pytest.fixture
def client(settings: Settings) -> TestClient:
    make_user(settings, "boss", "admin")
    make_user(settings, "watcher", "viewer")
    return TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False)


def test_pages_need_login(client: TestClient) -> None:
    response = client.get("/admin/subscribers")
    assert response.status_code == 303 and response.headers["location"].startswith("/admin/login")
    assert client.post("/admin/suppressions", data={"email": "x@example.com"}).status_code == 401


def test_login_sets_a_hardened_cookie_and_logout_ends_every_copy(client: TestClient) -> None:
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"csrf": csrf_of(page.text), "username": "boss", "password": PASSWORD})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    stolen = dict(client.cookies)
    csrf = csrf_of(client.get("/admin").text)
    assert client.post("/admin/logout", data={"csrf": csrf}).status_code == 303
    replay = TestClient(client.app, base_url="https://testserver", cookies=stolen, follow_redirects=False)
    assert replay.get("/admin").status_code == 303  # the old cookie is dead after logout


def test_secure_cookie_on_https(tmp_path: Path, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"web": settings.web.model_copy(update={"cookie_secure": True})}))
    response = TestClient(app).get("/admin/login")
    assert "secure" in response.headers["set-cookie"].lower()


def test_login_without_csrf_is_refused(client: TestClient) -> None:
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": "boss", "password": PASSWORD})
    assert response.status_code == 403
    fresh = TestClient(client.app, base_url="https://testserver", follow_redirects=False)  # a token from someone else's session is no good either
    token = csrf_of(client.get("/admin/login").text)
    assert fresh.post("/admin/login", data={"csrf": token, "username": "boss", "password": PASSWORD}).status_code == 403


def test_every_admin_form_needs_csrf(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "boss")
    subscriber_id, _ = subscribe(settings, "victim@example.com")
    for path, form in [("/admin/suppressions", {"email": "victim@example.com"}),
                       (f"/admin/subscribers/{subscriber_id}", {"action": "erase"}),
                       ("/admin/logout", {})]:
        assert client.post(path, data=form).status_code == 403, path
        assert client.post(path, data={**form, "csrf": "0" * 64}).status_code == 403, path
    database = connect(settings)
    with database.session() as session:
        assert not queries.is_suppressed(session, "victim@example.com")
        assert queries.subscriber_by_email(session, "victim@example.com") is not None
    # The same request with the page's token (form field or header) works.
    assert client.post("/admin/suppressions", data={"email": "victim@example.com", "csrf": csrf}).status_code == 303
    assert client.post("/admin/suppressions", data={"email": "v2@example.com"}, headers={"X-CSRF-Token": csrf}).status_code == 303


def test_viewer_can_look_but_not_change(client: TestClient, settings: Settings) -> None:
    edition_id = build_edition(settings)
    csrf = login(client, "watcher")
    for path in ("/admin", "/admin/lists", "/admin/subscribers", "/admin/sources", "/admin/editions",
                 f"/admin/editions/{edition_id}", "/admin/deliveries", "/admin/suppressions"):
        assert client.get(path).status_code == 200, path
    assert client.get("/admin/import").status_code == 403
    assert client.post(f"/admin/editions/{edition_id}/test", data={"csrf": csrf, "email": "me@example.com"}).status_code == 403
    assert client.post(f"/admin/editions/{edition_id}/action", data={"csrf": csrf, "action": "cancel"}).status_code == 403
    database = connect(settings)
    with database.session() as session:
        assert session.get(Edition, edition_id).status == "ready"  # type: ignore[union-attr]


def test_lockout_with_backoff(tmp_path: Path, workspace: tuple[Path, Settings]) -> None:
    config, _ = workspace
    config.write_text(config.read_text().replace("[web]\n", "[web]\nlogin_max_failures = 3\nlogin_lockout_seconds = 60\n"))
    settings = load_settings(config)
    make_user(settings, "boss", "admin")
    client = TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False)
    csrf = csrf_of(client.get("/admin/login").text)

    def attempt(password: str, user: str = "boss") -> int:
        return client.post("/admin/login", data={"csrf": csrf, "username": user, "password": password}).status_code

    assert [attempt("wrong password!") for _ in range(3)] == [401, 401, 401]
    assert attempt(PASSWORD) == 401  # locked: even the right password is refused for now
    refused = client.post("/admin/login", data={"csrf": csrf, "username": "nobody", "password": "x"})
    assert "Wrong user name or password" in refused.text  # unknown user: the same answer
    database = connect(settings)
    with database.session() as session:
        user = admin_queries.user_by_name(session, "boss")
        assert user is not None and user.locked_until is not None and user.failed_logins == 3
        user.locked_until = None  # time passes
    assert attempt("wrong again!!") == 401
    with database.session() as session:
        user = admin_queries.user_by_name(session, "boss")
        assert user is not None and user.locked_until is not None
        assert (user.locked_until - dt.datetime.now(dt.UTC)).total_seconds() > 60  # backoff: longer than the first
        user.locked_until = None
    assert attempt(PASSWORD) == 303


def test_login_is_rate_limited_per_ip(client: TestClient) -> None:
    client.app.state.context.login_per_ip.limit = 2
    csrf = csrf_of(client.get("/admin/login").text)
    codes = [client.post("/admin/login", data={"csrf": csrf, "username": "x", "password": "y"}).status_code
             for _ in range(3)]
    assert codes == [401, 401, 429]


def test_next_is_never_an_open_redirect(client: TestClient) -> None:
    csrf = csrf_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"csrf": csrf, "username": "boss", "password": PASSWORD,
                                                 "next": "//evil.example/admin"})
    assert response.headers["location"] == "/admin"


def test_csv_import_reports_bad_lines(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    csrf = login(client, "boss")
    csv_text = "email,name,timezone\nann@example.com,Ann,Asia/Seoul\nnot-an-address,Bad,UTC\nben@example.org,Ben,Mars/Base\ncat@example.net,,\n"
    response = client.post("/admin/import", data={"csrf": csrf, "list": "daily", "confirmed": "1"},
                           files={"file": ("people.csv", csv_text.encode(), "text/csv")})
    assert response.status_code == 200
    assert re.search(r"<strong>2</strong> added", response.text)
    assert "<td>3</td>" in response.text and "<td>4</td>" in response.text and "Mars/Base" in response.text
    listing = client.get("/admin/subscribers?q=ann").text
    assert "ann@example.com" in listing and "cat@example.net" not in listing
    assert not smtp_server.messages  # consent held: no confirmation mails
    as_json = client.get("/admin/subscribers?format=json&status=confirmed").json()
    assert as_json["total"] == 2 and {i["email"] for i in as_json["items"]} == {"ann@example.com", "cat@example.net"}


def test_subscriber_edit_suppress_and_erase(client: TestClient, settings: Settings) -> None:
    csrf = login(client, "boss")
    subscriber_id, _ = subscribe(settings, "pat@example.com")
    path = f"/admin/subscribers/{subscriber_id}"
    edit = {"csrf": csrf, "action": "edit", "name": "Pat", "timezone": "Europe/Berlin", "send_hour": "7", "locale": "ko"}
    assert client.post(path, data=edit).status_code == 303
    bad = client.post(path, data={**edit, "timezone": "Nowhere/City"})
    assert bad.status_code == 400 and "Nowhere/City" in bad.text
    assert client.post(path, data={"csrf": csrf, "action": "suppress", "reason": "asked by phone"}).status_code == 303
    data = client.get(path, params={"format": "json"}).json()["subscriber"]
    assert (data["name"], data["timezone"], data["send_hour"], data["locale"], data["suppressed"]) == \
        ("Pat", "Europe/Berlin", 7, "ko", True)
    assert "asked by phone" in client.get("/admin/suppressions").text
    assert client.post(path, data={"csrf": csrf, "action": "erase"}).status_code == 303
    assert client.get(path).status_code == 404


def test_edition_preview_actions_and_test_send(client: TestClient, settings: Settings, smtp_server: CaptureServer) -> None:
    edition_id = build_edition(settings)
    csrf = login(client, "boss")
    page = client.get(f"/admin/editions/{edition_id}")
    assert page.status_code == 200 and "<iframe" in page.text
    preview = client.get(f"/admin/editions/{edition_id}/preview")
    assert preview.status_code == 200 and "Preview Reader" in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert not re.search(r"ZQ[0-9a-f]{16}[A-Z]+QZ", preview.text), "placeholders are filled"

    def act(action: str) -> int:
        return client.post(f"/admin/editions/{edition_id}/action", data={"csrf": csrf, "action": action}).status_code

    assert [act("pause"), act("pause"), act("resume"), act("cancel"), act("resume")] == [303, 409, 303, 303, 409]
    sent = client.post(f"/admin/editions/{edition_id}/test", data={"csrf": csrf, "email": "me@example.com"})
    assert sent.status_code == 303
    (message,) = [m for m in smtp_server.messages if m.rcpt_tos == ["me@example.com"]]
    parsed = message.parse()
    assert str(parsed["Subject"]).startswith("[test] ")
    assert parsed.get_content_type() == "multipart/alternative"


def test_ledger_chart_and_overview(client: TestClient, settings: Settings) -> None:
    from digest.pipeline import run

    subscribe(settings, "reader@example.com")
    run(settings, "daily")  # really sends, so the chart has a bar
    login(client, "watcher")
    page = client.get("/admin/deliveries")
    assert page.status_code == 200 and "<svg" in page.text and ": 1 sent</title>" in page.text
    ledger = client.get("/admin/deliveries?format=json").json()
    assert ledger["ledger"]["counts"]["sent"] == 1 and sum(d["sent"] for d in ledger["ledger"]["days"]) == 1
    assert "<svg" in client.get("/admin").text
    sources = client.get("/admin/sources?format=json").json()["sources"]
    assert {s["name"] for s in sources} == {"Alpha", "Beta"} and all(s["state"] == "ok" for s in sources)
