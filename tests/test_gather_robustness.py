"""Bad input never crashes a run: a corpus of broken feeds, each failing alone with a clear reason."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import select
from test_gather_http import NOW, FIXTURES, GatherServer, by_name, gather_server, open_db, settings_for  # noqa: F401

from digest.config import SourceConfig
from digest.db.models import Article
from digest.db.sources import all_sources
from digest.gather import gather_sources

CAFE = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title><item>'
        '<title>Café owners in Mapo protest rent rise</title><guid>c1</guid><pubDate>{date}</pubDate>'
        '<description>Owners of small cafés say rents doubled.</description></item></channel></rss>')
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_broken_corpus_fails_source_by_source_and_good_sources_still_gather(tmp_path: Path,
                                                                          gather_server: GatherServer) -> None:
    serve = gather_server.serve_bytes
    cafe = CAFE.format(date=format_datetime(NOW - dt.timedelta(hours=1)))
    serve("/lying-encoding", cafe.encode("latin-1"), "application/rss+xml; charset=utf-8")  # says UTF-8, is Latin-1
    serve("/utf16", cafe.replace("utf-8", "utf-16").encode("utf-16"), "text/xml")
    serve("/png", PNG, "image/png")
    serve("/png-as-xml", PNG, "application/xml")
    serve("/empty", b"", "application/xml")
    serve("/blank", b"  \r\n\t ", "application/xml")
    serve("/not-json", b"[1, 2, 3]", "application/json")
    serve("/deep-json", b"[" * 40_000 + b"]" * 40_000, "application/json")
    serve("/html", b"<!doctype html><html><body><p>Our homepage</p></body></html>", "text/html")
    serve("/error", b"oops", "text/plain", status=500, conditional=False)
    serve("/big", b"<rss>" + b" " * 200_000 + b"</rss>", "application/xml")
    gather_server.redirect("/loop", 301, "/loop")
    broken = {  # name → (path, words the recorded reason must contain)
        "Garbage XML": ("f/broken/garbage.xml", "not a usable feed: not well-formed"),
        "Plain text": ("f/broken/plain.txt", "not a usable feed"),
        "Binary": ("png", "binary content (image/png)"),
        "Binary, lying type": ("png-as-xml", "binary content (application/xml)"),
        "Empty": ("empty", "empty response"),
        "Blank": ("blank", "empty response"),
        "Truncated JSON": ("f/broken/truncated.json", "not valid JSON"),
        "Not a JSON Feed": ("not-json", "not a JSON Feed"),
        "Deep JSON": ("deep-json", "not valid JSON"),
        "HTML": ("html", "not a feed: got an HTML page"),
        "Server error": ("error", "HTTP 500"),
        "Missing": ("nowhere.xml", "HTTP 404"),
        "Huge": ("big", "over the 100000-byte cap"),
        "Redirect loop": ("loop", "too many redirects"),
    }
    good = {  # name → (path, new articles)
        "Wire": ("f/wire.rss.xml", 2),
        "JSON": ("f/feed.json", 3),
        "Truncated XML": ("f/broken/truncated.xml", 1),  # feedparser recovers the complete item
        "Lying encoding": ("lying-encoding", 1),
        "UTF-16": ("utf16", 1),
        "Laughs": ("f/broken/laughs.xml", 1),  # entities are not expanded
        "XXE": ("f/broken/xxe.xml", 1),
    }
    sources = [(name, gather_server.url(path)) for name, (path, _) in {**broken, **good}.items()]
    database = open_db(tmp_path)
    outcomes = by_name(gather_sources(database, settings_for(sources, max_bytes=100_000), now=NOW))

    for name, (_, reason) in broken.items():
        assert not outcomes[name].ok and outcomes[name].status == "error", (name, outcomes[name])
        assert reason in outcomes[name].error, (name, outcomes[name].error)
    for name, (_, new) in good.items():
        assert outcomes[name].ok and outcomes[name].new_items == new, (name, outcomes[name])
    with database.session() as session:
        health = {s.name: s for s in all_sources(session)}
        for name, (_, reason) in broken.items():
            assert health[name].consecutive_failures == 1 and reason in (health[name].last_error or "")
            assert health[name].last_error_at == NOW
        titles = set(session.scalars(select(Article.title)))
    assert "Café owners in Mapo protest rent rise" in titles
    assert "External entity &xxe; probe" in titles and not any("root:" in t for t in titles)


def test_dates_become_utc_with_fallbacks(tmp_path: Path, gather_server: GatherServer) -> None:
    def item(guid: str, date: str) -> str:
        return (f"<item><title>Story {guid} with a reasonably long title</title><guid>{guid}</guid>"
                f"<link>https://d.example/{guid}</link>{date}<description>Body of {guid}.</description></item>")

    body = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Dates</title>'
            + item("offset", "<pubDate>Fri, 20 Nov 2026 08:30:00 +0900</pubDate>")
            + item("future", f"<pubDate>{format_datetime(NOW + dt.timedelta(days=2))}</pubDate>")
            + item("missing", "")
            + item("epoch", "<pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate>")
            + item("nonsense", "<pubDate>last Tuesday-ish</pubDate>")
            + item("old", f"<pubDate>{format_datetime(NOW - dt.timedelta(days=30))}</pubDate>")
            + "</channel></rss>")
    gather_server.serve_bytes("/dates", body.encode())
    database = open_db(tmp_path)
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    settings = settings_for([SourceConfig(name="Dates", url=gather_server.url("dates"))], max_age_days=7)
    outcome = by_name(gather_sources(database, settings, now=now))["Dates"]
    assert (outcome.seen_items, outcome.new_items) == (6, 5)  # "old" is past max_age_days
    with database.session() as session:
        dates = {a.guid: a.published_at for a in session.scalars(select(Article))}
    assert dates["offset"] == dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC)
    assert dates["future"] == now and dates["missing"] == now and dates["epoch"] == now and dates["nonsense"] == now
    assert "old" not in dates


def test_a_source_whose_store_fails_is_recorded_and_the_rest_go_on(tmp_path: Path, gather_server: GatherServer,
                                                                  monkeypatch: object) -> None:
    import digest.gather.run as gather_module

    real = gather_module.store_items

    def flaky(session, source, items, now, index, lookups=None):  # type: ignore[no-untyped-def]
        if source.name == "Flaky":
            raise RuntimeError("disk on fire")
        return real(session, source, items, now, index, lookups)

    monkeypatch.setattr(gather_module, "store_items", flaky)  # type: ignore[attr-defined]
    database = open_db(tmp_path)
    settings = settings_for([("Flaky", gather_server.url("f/feed.json")), ("Wire", gather_server.url("f/wire.rss.xml"))])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert not outcomes["Flaky"].ok and "could not store: RuntimeError: disk on fire" in outcomes["Flaky"].error
    assert outcomes["Wire"].ok and outcomes["Wire"].new_items == 2


def test_local_file_sources_and_unsupported_schemes(tmp_path: Path) -> None:
    database = open_db(tmp_path)
    settings = settings_for([("File", str(FIXTURES / "broken" / "xxe.xml")), ("Nope", str(tmp_path / "nope.xml")),
                             ("Dir", str(tmp_path)), ("Ftp", "ftp://files.example/feed.xml")])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert outcomes["File"].ok and outcomes["File"].new_items == 1
    assert "no such file" in outcomes["Nope"].error and "is a directory" in outcomes["Dir"].error
    assert "unsupported URL scheme 'ftp'" in outcomes["Ftp"].error
