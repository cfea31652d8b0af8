"""Helpers shared by the web, admin, API and browser tests (no tests of its own)."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from digest.audience.subscribers import SubscriberData, add_subscriber
from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.pipeline import connect, run
from digest.web import accounts

PASSWORD = "correct horse battery"


def deliver_confirmations(settings: Settings) -> int:
    """What the mailer process does in production: send the queued confirm mails (over real SMTP)."""
    from digest.audience.confirmations import send_all_due

    database = connect(settings)
    try:
        return send_all_due(database, settings).sent
    finally:
        database.dispose()


def make_user(settings: Settings, username: str, role: str, password: str = PASSWORD) -> None:
    database = connect(settings)
    with database.session() as session:
        accounts.create_user(session, username, password, role)
    database.dispose()


def make_token(settings: Settings, role: str, name: str = "test") -> str:
    database = connect(settings)
    with database.session() as session:
        _, value = accounts.create_token(session, f"{name}-{role}", role)
    database.dispose()
    return value


def subscribe(settings: Settings, email: str, slug: str = "daily", confirmed: bool = True) -> tuple[int, int]:
    database = connect(settings)
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        _, sub = add_subscriber(session, lists[slug], SubscriberData(email=email), confirmed=confirmed, source="test")
        ids = (sub.subscriber_id, sub.list_id)
    database.dispose()
    return ids


def token_for(settings: Settings, scope: str, ids: tuple[int, int]) -> str:
    return Signer(settings.secret_key()).make(scope, *ids)  # type: ignore[arg-type]


def build_edition(settings: Settings) -> int:
    """A real edition of 'daily' (gathered from the fixture feeds, grouped, rendered), queued but not sent."""
    subscribe(settings, "reader@example.com")
    report = run(settings, "daily", send=False)
    assert report.build is not None and report.build.edition_id
    return report.build.edition_id


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns a CSRF token for later posts."""
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"csrf": csrf_of(page.text), "username": username,
                                                 "password": password, "next": "/admin"})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/admin").text)


class LiveServer:
    """The app under uvicorn on a loopback port, in a thread: real HTTP for browsers and schemathesis."""

    def __init__(self, app: object = None) -> None:
        import socket
        import threading

        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def mount(self, app: object) -> None:
        """Serve `app`: it may be made after the port is known (its base_url names the port)."""
        self.server.config.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
