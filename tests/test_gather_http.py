"""Gather over real HTTP on loopback: conditional GET, redirects, 410, Retry-After, timeouts, gzip, caps, politeness.

This module also holds the gather tests' HTTP server (`GatherServer`) and helpers; the other
test_gather_* modules import them from here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings, SourceConfig
from digest.db.models import Source
from digest.db.session import Database, open_database
from digest.gather import SourceOutcome, gather_sources

FIXTURES = Path(__file__).with_name("fixtures") / "gather"
_DATE = re.compile(r"\{\{(DATE|ISO):(-?\d+)h\}\}")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    at: float


class GatherServer:
    """Fixture feeds and pages over HTTP. Files under tests/fixtures/gather are served at /f/<name> with ETag and
    Last-Modified ({{BASE}} and {{DATE:-5h}}/{{ISO:-5h}} filled in); `route()` adds a handler for any other path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        server = self
        self.hits: list[Hit] = []
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic()))
                path = self.path.split("?", 1)[0]
                handler = server.routes.get(path) or server._prefix_route(path)
                if handler is None:
                    self.send_error(404, "Not Found")
                    return
                try:
                    handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.base = f"http://{host}:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _prefix_route(self, path: str) -> Callable[[BaseHTTPRequestHandler], None] | None:
        for prefix in ("/f/", "/page/"):
            if path.startswith(prefix) and (FIXTURES / path[len(prefix):]).is_file():
                return lambda h: self.send(h, self.render(path[len(prefix):]))
        return None

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def render(self, name: str) -> bytes:
        text = (FIXTURES / name).read_text(encoding="utf-8").replace("{{BASE}}", self.base)
        return render_dates(text, NOW).encode("utf-8")

    def route(self, path: str, handler: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.routes[path] = handler

    def serve_bytes(self, path: str, body: bytes, content_type: str = "application/xml", **kw: Any) -> None:
        self.routes[path] = lambda h: self.send(h, body, content_type, **kw)

    def redirect(self, path: str, status: int, target: str) -> None:
        def handler(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Location", target)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = handler

    @staticmethod
    def send(h: BaseHTTPRequestHandler, body: bytes, content_type: str = "", *, status: int = 200,
             headers: dict[str, str] | None = None, compress: bool = False, conditional: bool = True) -> None:
        content_type = content_type or ("text/html; charset=utf-8" if h.path.endswith(".html")
                                        else "application/feed+json" if h.path.endswith(".json") else "application/xml")
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if conditional and h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if compress:
            body = gzip.compress(body)
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        if conditional:
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", format_datetime(NOW - dt.timedelta(hours=1), usegmt=True))
        if compress:
            h.send_header("Content-Encoding", "gzip")
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body)

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]

    def start(self) -> GatherServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def render_dates(text: str, now: dt.datetime) -> str:
    def sub(match: re.Match[str]) -> str:
        when = now + dt.timedelta(hours=int(match.group(2)))
        return format_datetime(when) if match.group(1) == "DATE" else when.strftime("%Y-%m-%dT%H:%M:%SZ")

    return _DATE.sub(sub, text)


@pytest.fixture
def gather_server() -> Iterator[GatherServer]:
    server = GatherServer().start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(sources: list[tuple[str, str]] | list[SourceConfig], **gather: Any) -> Settings:
    """Settings with these (name, url) sources and short timeouts, so failure tests stay fast."""
    fast = {"timeout": 2.0, "connect_timeout": 1.0, "read_timeout": 0.6, "host_delay": 0.0, "per_host": 4,
            "concurrency": 8, "user_agent": "digest-test/1.0 (+https://digest.example/bot)"}
    configs = [s if isinstance(s, SourceConfig) else SourceConfig(name=s[0], url=s[1], topics=["korea"]) for s in sources]
    return Settings(sources=configs, gather={**fast, **gather})


def open_db(tmp_path: Path) -> Database:
    return open_database("sqlite:///" + str(tmp_path / "t.db"))


def by_name(outcomes: list[SourceOutcome]) -> dict[str, SourceOutcome]:
    return {o.source: o for o in outcomes}


def source_row(database: Database, name: str) -> Source:
    from sqlalchemy import select

    with database.session() as session:
        return session.scalars(select(Source).where(Source.name == name)).one()


# ---------------------------------------------------------------------------------------------------------------


def test_conditional_get_gives_304_and_stores_nothing_new(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([("Wire", gather_server.url("f/wire.rss.xml"))])
    first = by_name(gather_sources(database, settings, now=NOW))["Wire"]
    assert (first.status, first.new_items, first.http_status) == ("ok", 2, 200)
    stored = source_row(database, "Wire")
    assert stored.etag and stored.last_modified

    second = by_name(gather_sources(database, settings, now=NOW))["Wire"]
    assert (second.ok, second.status, second.new_items, second.http_status) == (True, "not-modified", 0, 304)
    request = gather_server.hits[-1].headers
    assert request["if-none-match"] == stored.etag and request["if-modified-since"] == stored.last_modified
    assert request["user-agent"] == "digest-test/1.0 (+https://digest.example/bot)"
    assert source_row(database, "Wire").consecutive_failures == 0


def test_301_and_308_move_the_stored_url_but_302_does_not(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.redirect("/old-301", 301, "/f/wire.rss.xml")
    gather_server.redirect("/old-308", 308, "/f/mirror.atom.xml")
    gather_server.redirect("/temp-302", 302, "/f/feed.json")
    gather_server.redirect("/chain", 301, "/chain-302")  # 301 then 302: only the permanent hop counts
    gather_server.redirect("/chain-302", 302, "/f/article.html")
    database = open_db(tmp_path)
    settings = settings_for([("P", gather_server.url("old-301")), ("Q", gather_server.url("old-308")),
                             ("T", gather_server.url("temp-302")),
                             SourceConfig(name="C", url=gather_server.url("chain"), kind="page")])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert all(o.ok for o in outcomes.values()), outcomes
    assert outcomes["P"].moved_to == gather_server.url("f/wire.rss.xml")
    assert source_row(database, "P").url == gather_server.url("f/wire.rss.xml")
    assert source_row(database, "Q").url == gather_server.url("f/mirror.atom.xml")
    assert source_row(database, "T").url == gather_server.url("temp-302") and not outcomes["T"].moved_to
    assert source_row(database, "C").url == gather_server.url("chain-302")

    gather_server.hits.clear()
    gather_sources(database, settings, now=NOW)
    assert "/old-301" not in gather_server.paths() and "/temp-302" in gather_server.paths()
    # The config still names the old URL; only a changed config URL moves the source back.
    assert source_row(database, "P").url == gather_server.url("f/wire.rss.xml")


def test_410_retires_the_source_until_its_url_changes(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.serve_bytes("/gone", b"gone", "text/plain", status=410, conditional=False)
    database = open_db(tmp_path)
    settings = settings_for([("Gone", gather_server.url("gone")), ("Wire", gather_server.url("f/wire.rss.xml"))])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert (outcomes["Gone"].ok, outcomes["Gone"].status) == (False, "gone") and "410" in outcomes["Gone"].error
    assert outcomes["Wire"].ok and outcomes["Wire"].new_items == 2
    assert source_row(database, "Gone").retired_at is not None

    gather_server.hits.clear()
    again = by_name(gather_sources(database, settings, now=NOW))["Gone"]
    assert (again.ok, again.status) == (True, "retired") and "/gone" not in gather_server.paths()

    moved = settings_for([("Gone", gather_server.url("f/mirror.atom.xml"))])
    revived = by_name(gather_sources(database, moved, now=NOW))["Gone"]
    # The mirror carries two of the wire's stories (syndicated copies) and one of its own.
    assert (revived.status, revived.new_items, revived.duplicates) == ("ok", 1, 2)
    assert source_row(database, "Gone").retired_at is None


def test_429_retry_after_parks_the_source(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.serve_bytes("/busy", b"slow down", "text/plain", status=429, headers={"Retry-After": "120"},
                              conditional=False)
    gather_server.route("/maintenance", lambda h: gather_server.send(  # an HTTP-date ten minutes from the real now
        h, b"", "text/plain", status=503, conditional=False,
        headers={"Retry-After": format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10), usegmt=True)}))
    gather_server.serve_bytes("/down", b"", "text/plain", status=503, conditional=False)
    database = open_db(tmp_path)
    settings = settings_for([("Busy", gather_server.url("busy")), ("Maint", gather_server.url("maintenance")),
                             ("Down", gather_server.url("down"))])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert outcomes["Busy"].status == "throttled" and not outcomes["Busy"].ok
    assert source_row(database, "Busy").next_fetch_at == NOW + dt.timedelta(seconds=120)
    assert outcomes["Maint"].status == "throttled"
    waited = source_row(database, "Maint").next_fetch_at - NOW  # type: ignore[operator]
    assert dt.timedelta(minutes=9) <= waited <= dt.timedelta(minutes=10)
    assert outcomes["Down"].status == "error" and "503" in outcomes["Down"].error  # no Retry-After: plain failure

    gather_server.hits.clear()
    soon = by_name(gather_sources(database, settings, now=NOW + dt.timedelta(seconds=60)))
    assert soon["Busy"].status == "waiting" and soon["Busy"].ok and "/busy" not in gather_server.paths()
    later = by_name(gather_sources(database, settings, now=NOW + dt.timedelta(seconds=180)))
    assert later["Busy"].status == "throttled" and "/busy" in gather_server.paths()
    assert source_row(database, "Busy").consecutive_failures == 2


def test_stalled_and_trickling_responses_time_out_without_holding_up_the_rest(tmp_path: Path,
                                                                            gather_server: GatherServer) -> None:
    def stall(h: Any) -> None:
        time.sleep(3)  # no status line at all: the read timeout fires

    def trickle(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.end_headers()
        h.wfile.write(b"<?xml version='1.0'?><rss version='2.0'><channel>")
        for _ in range(40):  # a byte every 0.1 s never trips the read timeout; the total deadline stops it
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.1)

    gather_server.route("/stall", stall)
    gather_server.route("/trickle", trickle)
    database = open_db(tmp_path)
    settings = settings_for([("Stall", gather_server.url("stall")), ("Trickle", gather_server.url("trickle")),
                             ("Wire", gather_server.url("f/wire.rss.xml"))], timeout=1.0, read_timeout=0.5)
    started = time.monotonic()
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert time.monotonic() - started < 2.5
    assert outcomes["Stall"].status == "error" and "timed out" in outcomes["Stall"].error
    assert outcomes["Trickle"].status == "error" and "too slow" in outcomes["Trickle"].error
    assert outcomes["Wire"].ok and outcomes["Wire"].new_items == 2


def test_gzip_is_requested_and_decoded(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.route("/gz", lambda h: gather_server.send(h, gather_server.render("wire.rss.xml"), compress=True))
    database = open_db(tmp_path)
    outcome = by_name(gather_sources(database, settings_for([("Gz", gather_server.url("gz"))]), now=NOW))["Gz"]
    assert outcome.ok and outcome.new_items == 2
    assert "gzip" in gather_server.hits[-1].headers["accept-encoding"]


def test_size_cap_declared_streamed_and_compressed(tmp_path: Path, gather_server: GatherServer) -> None:
    huge = b"<?xml version='1.0'?><rss version='2.0'><channel>" + b"<!-- padding -->" * 20_000 + b"</channel></rss>"

    def undeclared(h: Any) -> None:  # no Content-Length: the cap is enforced while reading
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(huge)

    gather_server.serve_bytes("/declared", huge)
    gather_server.route("/undeclared", undeclared)
    gather_server.route("/bomb", lambda h: gather_server.send(h, huge, compress=True))  # ~1 KB on the wire
    database = open_db(tmp_path)
    settings = settings_for([("Declared", gather_server.url("declared")), ("Undeclared", gather_server.url("undeclared")),
                             ("Bomb", gather_server.url("bomb")), ("Wire", gather_server.url("f/wire.rss.xml"))],
                            max_bytes=100_000)
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert "over the 100000-byte cap" in outcomes["Declared"].error
    assert "exceeds the 100000-byte cap" in outcomes["Undeclared"].error
    assert "exceeds the 100000-byte cap" in outcomes["Bomb"].error
    assert outcomes["Wire"].ok


def test_redirect_loop_and_unreachable_host_are_errors(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.redirect("/loop-a", 302, "/loop-b")
    gather_server.redirect("/loop-b", 302, "/loop-a")
    gather_server.redirect("/to-ftp", 301, "ftp://files.example/feed.xml")
    database = open_db(tmp_path)
    settings = settings_for([("Loop", gather_server.url("loop-a")), ("Ftp", gather_server.url("to-ftp")),
                             ("Closed", "http://127.0.0.1:9/feed.xml"), ("Wire", gather_server.url("f/wire.rss.xml"))])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert "too many redirects" in outcomes["Loop"].error
    assert not outcomes["Ftp"].ok and outcomes["Ftp"].error
    assert not outcomes["Closed"].ok and "Connect" in outcomes["Closed"].error
    assert outcomes["Wire"].ok and source_row(database, "Loop").consecutive_failures == 1


def test_per_host_limit_and_delay_space_out_requests(tmp_path: Path, gather_server: GatherServer) -> None:
    other = GatherServer("127.0.0.2").start()  # a second host: not held back by the first one's politeness
    try:
        names = ["wire.rss.xml", "mirror.atom.xml", "feed.json", "summary-only.rss.xml"]
        sources = [(f"A{i}", gather_server.url(f"f/{n}")) for i, n in enumerate(names)]
        sources += [(f"B{i}", other.url(f"f/{n}")) for i, n in enumerate(names)]
        database = open_db(tmp_path)
        settings = settings_for(sources, per_host=1, host_delay=0.25, concurrency=8)
        started = time.monotonic()
        outcomes = gather_sources(database, settings, now=NOW)
        elapsed = time.monotonic() - started
        assert all(o.ok for o in outcomes), outcomes
        for server in (gather_server, other):
            starts = sorted(hit.at for hit in server.hits)
            assert len(starts) == 4
            assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.2
        assert elapsed < 1.6  # the two hosts were fetched side by side (4 × 0.25 s each), not one after the other
    finally:
        other.stop()


def test_html_page_where_a_feed_should_be_names_the_advertised_feed(tmp_path: Path,
                                                                   gather_server: GatherServer) -> None:
    page = b"""<!DOCTYPE html><html><head><title>Home</title>
    <link rel="alternate" type="application/rss+xml" title="RSS" href="/feeds/all.rss?utm_source=x"></head>
    <body><p>Welcome to our home page.</p></body></html>"""
    gather_server.serve_bytes("/home", page, "text/html; charset=utf-8")
    database = open_db(tmp_path)
    outcome = by_name(gather_sources(database, settings_for([("Home", gather_server.url("home"))]), now=NOW))["Home"]
    assert not outcome.ok
    assert outcome.error == f"not a feed: got an HTML page; it advertises a feed at {gather_server.url('feeds/all.rss')}"
