"""The REST API: bearer tokens, roles, the operations, and schemathesis against its own OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from conftest import FeedServer, write_config
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance
from starlette.testclient import TestClient
from test_web_helpers import LiveServer, build_edition, deliver_confirmations, make_token, subscribe

from digest.config import Settings, load_settings
from digest.demo.capture import CaptureServer
from digest.web.api.endpoints import ENDPOINTS
from digest.web.api.openapi import openapi_document
from digest.web.app import create_app


@pytest.fixture
def api(workspace: tuple[Path, Settings]) -> tuple[TestClient, Settings, dict[str, str], dict[str, str]]:
    _, settings = workspace
    admin = {"Authorization": f"Bearer {make_token(settings, 'admin')}"}
    viewer = {"Authorization": f"Bearer {make_token(settings, 'viewer')}"}
    return TestClient(create_app(settings)), settings, admin, viewer


def test_tokens_are_required_and_roles_enforced(api: tuple[TestClient, Settings, dict[str, str], dict[str, str]]) -> None:
    client, _, admin, viewer = api
    missing = client.get("/api/lists")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/lists", headers={"Authorization": "Bearer dg_forged"}).status_code == 401
    assert client.get("/api/lists", headers=viewer).status_code == 200
    body = {"email": "api@example.com", "list": "daily", "confirmed": True}
    assert client.post("/api/subscribers", json=body, headers=viewer).status_code == 403
    assert client.post("/api/subscribers", json=body, headers=admin).status_code == 201
    assert client.get("/api/openapi.json").json()["openapi"].startswith("3.1")  # the schema needs no token


def test_subscriber_lifecycle(api: tuple[TestClient, Settings, dict[str, str], dict[str, str]], smtp_server: CaptureServer) -> None:
    client, settings, admin, _ = api
    created = client.post("/api/subscribers", headers=admin, json={"email": "Lee@Example.COM", "list": "daily",
                                                                   "timezone": "Asia/Seoul", "send_hour": 7})
    assert created.status_code == 201
    person = created.json()
    assert person["email"] == "Lee@example.com" and person["subscriptions"][0]["status"] == "pending"
    deliver_confirmations(settings)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["Lee@example.com"]]  # double opt-in mail
    found = client.get("/api/subscribers", params={"q": "lee", "status": "pending"}, headers=admin).json()
    assert found["total"] == 1
    patched = client.patch(f"/api/subscribers/{person['id']}", json={"locale": "ko", "send_hour": None}, headers=admin)
    assert patched.status_code == 200 and (patched.json()["locale"], patched.json()["send_hour"]) == ("ko", None)
    assert client.patch(f"/api/subscribers/{person['id']}", json={"timezone": "Nowhere"}, headers=admin).status_code == 400
    assert client.patch(f"/api/subscribers/{person['id']}", json={"email": "x@example.com"}, headers=admin).status_code == 400
    export = client.get(f"/api/subscribers/{person['id']}/export", headers=admin).json()
    assert export["consents"][0]["action"] == "requested"
    assert client.delete(f"/api/subscribers/{person['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/subscribers/{person['id']}", headers=admin).status_code == 404


def test_suppressions_and_bad_input(api: tuple[TestClient, Settings, dict[str, str], dict[str, str]]) -> None:
    client, _, admin, _ = api
    assert client.post("/api/suppressions", json={"email": "no@example.com"}, headers=admin).status_code == 201
    assert client.post("/api/subscribers", json={"email": "no@example.com", "list": "daily"}, headers=admin).status_code == 409
    assert client.get("/api/suppressions", headers=admin).json()["items"][0]["email"] == "no@example.com"
    assert client.delete("/api/suppressions/no@example.com", headers=admin).status_code == 204
    assert client.delete("/api/suppressions/no@example.com", headers=admin).status_code == 404
    assert client.post("/api/suppressions", content=b"{not json", headers={**admin, "content-type": "application/json"}).status_code == 400
    assert client.get("/api/subscribers?limit=0", headers=admin).status_code == 400
    assert client.get("/api/subscribers/99999999999999999999", headers=admin).status_code == 404


def test_editions_and_ledger(api: tuple[TestClient, Settings, dict[str, str], dict[str, str]]) -> None:
    client, settings, admin, viewer = api
    edition_id = build_edition(settings)
    editions = client.get("/api/editions", headers=viewer).json()
    assert editions[0]["id"] == edition_id and editions[0]["counts"] == {"queued": 1}
    assert client.post(f"/api/editions/{edition_id}/pause", headers=viewer).status_code == 403
    paused = client.post(f"/api/editions/{edition_id}/pause", headers=admin)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert client.post(f"/api/editions/{edition_id}/pause", headers=admin).status_code == 409
    assert client.post(f"/api/editions/{edition_id}/explode", headers=admin).status_code == 404
    deliveries = client.get("/api/deliveries", params={"edition": edition_id}, headers=viewer).json()
    assert deliveries["items"][0]["email"] == "reader@example.com"
    daily = client.get("/api/deliveries/daily?days=3", headers=viewer).json()
    assert len(daily["days"]) == 3
    sources = client.get("/api/sources", headers=viewer).json()
    assert {s["state"] for s in sources} == {"ok"}


# --- schemathesis: the API against its own schema -------------------------------------------------

@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A seeded workspace (an edition, its ledger, subscribers) served by uvicorn on loopback."""
    folder = tmp_path_factory.mktemp("api")
    with CaptureServer() as smtp:
        feeds = FeedServer()
        feeds.thread.start()
        try:
            config = write_config(folder, sources=[("Alpha", feeds.url("alpha.rss.xml"))], smtp_port=smtp.port)
            settings = load_settings(config)
            build_edition(settings)
            subscribe(settings, "someone@example.org")
            with LiveServer(create_app(settings)) as server:
                yield server.url, make_token(settings, "admin")
        finally:
            feeds.httpd.shutdown()
            feeds.httpd.server_close()


# The schema is made from the same endpoint table the app serves (and the app serves it at /api/openapi.json).
schema = schemathesis.openapi.from_dict(openapi_document(ENDPOINTS))


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_api: tuple[str, str]) -> None:
    url, token = live_api
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance])


def test_served_schema_is_the_tested_one(api: tuple[TestClient, Settings, dict[str, str], dict[str, str]]) -> None:
    client, _, _, _ = api
    assert client.get("/api/openapi.json").json() == openapi_document(ENDPOINTS)
