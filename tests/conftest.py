"""Shared fixtures: a real HTTP server for feeds, a real SMTP server, a working folder with a config."""

from __future__ import annotations

import datetime as dt
import os
import re
import textwrap
import threading
from collections.abc import Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from digest.config import Settings, load_settings
from digest.demo.capture import CaptureServer

FIXTURES = Path(__file__).with_name("fixtures")
_DATE = re.compile(r"\{\{(DATE|ISO):(-?\d+)h\}\}")


def render_fixture(text: str, now: dt.datetime) -> str:
    """Fixture feeds carry {{DATE:-5h}} / {{ISO:-4h}}: dates relative to now, so items are always recent."""

    def sub(match: re.Match[str]) -> str:
        when = now + dt.timedelta(hours=int(match.group(2)))
        return format_datetime(when) if match.group(1) == "DATE" else when.strftime("%Y-%m-%dT%H:%M:%SZ")

    return _DATE.sub(sub, text)


class FeedServer:
    """Serves tests/fixtures over real HTTP on loopback; /status/NNN answers with that status."""

    def __init__(self) -> None:
        fixtures = FIXTURES

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/status/"):
                    self.send_response(int(self.path.rsplit("/", 1)[1]))
                    self.end_headers()
                    return
                path = fixtures / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404, "Not Found")
                    return
                body = render_fixture(path.read_text(encoding="utf-8"), dt.datetime.now(dt.UTC)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml" if path.suffix == ".xml" else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{path.lstrip('/')}"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def smtp_server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


def write_config(folder: Path, *, sources: list[tuple[str, str]], smtp_port: int, extra: str = "",
                 lists: str | None = None) -> Path:
    """A digest.toml in `folder` with the given (name, url) sources and one 'daily' list."""
    (folder / "secret.key").write_text("test-secret-key-that-is-long-enough-0123456789\n")
    source_blocks = "".join(f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\ntopics = ["korea"]\n' for name, url in sources)
    lists = lists if lists is not None else textwrap.dedent("""
        [[lists]]
        slug = "daily"
        name = "Test Daily"
        from = "Test Daily <news@digest.example>"
        schedule = "0 7 * * *"
        timezone = "Asia/Seoul"
        max_stories = 10
        address = "1 Test Street"
        """)
    config = folder / "digest.toml"
    config.write_text(textwrap.dedent(f"""
        [database]
        url = "sqlite:///digest.db"

        [web]
        base_url = "https://news.digest.example"
        secret_key_file = "secret.key"

        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}

        [gather]
        timeout = 5
        """) + extra + source_blocks + lists, encoding="utf-8")
    return config


@pytest.fixture
def workspace(tmp_path: Path, feed_server: FeedServer, smtp_server: CaptureServer) -> tuple[Path, Settings]:
    """A folder with two good fixture feeds, one 'daily' list and the SMTP capture server configured."""
    config = write_config(tmp_path, sources=[("Alpha", feed_server.url("alpha.rss.xml")),
                                             ("Beta", feed_server.url("beta.atom.xml"))], smtp_port=smtp_server.port)
    return config, load_settings(config)


SUBSCRIBERS_CSV = """email,name,timezone,send_hour,topics,locale
ana@example.com,Ana,Asia/Seoul,,,en
bo@example.net,Bo,Europe/Berlin,,,ko
cy@example.org,,UTC,,,en
"""


POSTGRES_ADMIN_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; fails (not skips) when CI=true and none is reachable."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    try:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} (set DIGEST_TEST_POSTGRES_URL): {exc.__class__.__name__}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"digest_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
