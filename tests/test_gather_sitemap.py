"""Sitemaps and Google News sitemaps as a source kind: URLs in the age window become articles through the
article-page path; an index's newest child sitemaps are followed; bad sitemaps fail only their own source."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
from sqlalchemy import select
from test_gather_http import NOW, GatherServer, by_name, gather_server, open_db, settings_for  # noqa: F401

from digest.config import SourceConfig
from digest.db.models import Article
from digest.gather import gather_sources, sitemap
from digest.gather.sitemap import looks_like_sitemap, read_sitemap


def _source(name: str, url: str, kind: str = "sitemap") -> SourceConfig:
    return SourceConfig(name=name, url=url, kind=kind, topics=["korea"])


def _articles(database) -> dict[str, Article]:  # type: ignore[no-untyped-def]
    with database.session() as session:
        return {a.title: a for a in session.scalars(select(Article))}


@pytest.mark.parametrize("kind", ["sitemap", "auto"])
def test_news_sitemap_gives_articles_with_titles_dates_and_text(tmp_path: Path, gather_server: GatherServer,
                                                                 kind: str) -> None:
    database = open_db(tmp_path)
    settings = settings_for([_source("Herald", gather_server.url("f/sitemap/news.xml"), kind)])
    outcome = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert (outcome.ok, outcome.status, outcome.new_items, outcome.pages) == (True, "ok", 3, 3), outcome
    assert outcome.seen_items == 5  # every <url> listed
    assert outcome.extra["sitemap_old"] == "1" and outcome.extra["sitemap_invalid"] == "1"  # tidal; javascript:
    articles = _articles(database)
    assert set(articles) == {"Ferry fares frozen for island commuters",
                             "Restored lighthouse reopens to visitors in Mokpo",
                             "Shipyard orders climb on demand for ammonia carriers"}  # news:title, not the <title>
    ferry = articles["Ferry fares frozen for island commuters"]
    assert ferry.canonical_url == gather_server.url("page/sitemap/ferry.html")  # utm_source removed
    assert "freeze ferry fares" in ferry.text and "All rights reserved" not in ferry.text
    assert ferry.published_at.replace(tzinfo=dt.UTC) == NOW - dt.timedelta(hours=3)  # news:publication_date
    assert articles["Restored lighthouse reopens to visitors in Mokpo"].language == "ko"
    shipyard = articles["Shipyard orders climb on demand for ammonia carriers"]
    assert shipyard.published_at.replace(tzinfo=dt.UTC) == NOW - dt.timedelta(hours=8)  # not the later lastmod
    paths = gather_server.paths()
    assert "/page/sitemap/tidal.html" not in paths  # the old URL's page is never fetched
    page_hits = [h for h in gather_server.hits if h.path.startswith("/page/")]
    assert all("text/html" in h.headers["accept"] for h in page_hits)

    # A second run: the same URLs are not fetched again and nothing new is stored.
    gather_server.hits.clear()
    again = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert again.ok and again.new_items == 0 and again.pages == 0
    assert not [p for p in gather_server.paths() if p.startswith("/page/")]


def test_sitemap_index_follows_the_newest_child(tmp_path: Path, gather_server: GatherServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemap, "MAX_CHILD_SITEMAPS", 1)
    database = open_db(tmp_path)
    settings = settings_for([_source("Index", gather_server.url("f/sitemap/index.xml"))])
    outcome = by_name(gather_sources(database, settings, now=NOW))["Index"]
    assert (outcome.ok, outcome.new_items, outcome.pages) == (True, 1, 1), outcome
    assert outcome.extra["sitemaps"] == "1 of 2 listed"
    assert "/f/sitemap/child.xml" in gather_server.paths()
    assert "/f/sitemap/old-child.xml" not in gather_server.paths()  # over the bound, and the older one
    article = _articles(database)["Tidal power pilot clears environmental review"]
    assert "tidal power plant" in article.text
    assert article.published_at.replace(tzinfo=dt.UTC) == NOW - dt.timedelta(hours=6)  # the child's lastmod
    # The index keeps no validators: it may stay the same while its children change.
    gather_server.hits.clear()
    gather_sources(database, settings, now=NOW)
    assert "if-none-match" not in gather_server.hits[0].headers


def test_broken_sitemap_fails_only_its_source(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.serve_bytes("/html-sitemap.xml", b"<!doctype html><html><body><p>Sitemap</p></body></html>",
                              "text/html")
    gather_server.serve_bytes("/xxe-sitemap.xml", b'<?xml version="1.0"?>\n<!DOCTYPE urlset [<!ENTITY x SYSTEM '
                              b'"file:///etc/passwd">]>\n<urlset><url><loc>http://a.example/&x;</loc></url></urlset>')
    gather_server.serve_bytes("/bad.xml.gz", b"\x1f\x8b\x08\x00" + b"not really gzip" * 4, "application/gzip")
    database = open_db(tmp_path)
    settings = settings_for([_source("Broken", gather_server.url("f/sitemap/broken.xml")),
                             _source("Html", gather_server.url("html-sitemap.xml")),
                             _source("Xxe", gather_server.url("xxe-sitemap.xml")),
                             _source("BadGzip", gather_server.url("bad.xml.gz")),
                             _source("Feed", gather_server.url("f/sitemap/index.xml"), kind="rss"),
                             ("Wire", gather_server.url("f/wire.rss.xml")),
                             _source("Herald", gather_server.url("f/sitemap/news.xml"))])
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert outcomes["Broken"].status == "error"
    assert outcomes["Broken"].error.startswith("not a usable sitemap: not well-formed XML")
    assert outcomes["Html"].error == "not a sitemap: got an HTML page"
    assert outcomes["Xxe"].error == "not a usable sitemap: a DOCTYPE is not allowed in a sitemap"
    assert "broken gzip" in outcomes["BadGzip"].error
    assert not outcomes["Feed"].ok  # kind = "rss" does not read sitemaps
    assert (outcomes["Wire"].ok, outcomes["Wire"].new_items) == (True, 2)
    assert (outcomes["Herald"].ok, outcomes["Herald"].new_items) == (True, 3)


def test_gzipped_sitemap_is_read_under_the_size_cap(tmp_path: Path, gather_server: GatherServer) -> None:
    gather_server.serve_bytes("/news.xml.gz", gzip.compress(gather_server.render("sitemap/news.xml")),
                              "application/x-gzip")
    gather_server.serve_bytes("/bomb.xml.gz", gzip.compress(b'<?xml version="1.0"?><urlset>' + b" " * 3_000_000),
                              "application/x-gzip")
    database = open_db(tmp_path)
    settings = settings_for([_source("Gz", gather_server.url("news.xml.gz"), kind="auto"),
                             _source("Bomb", gather_server.url("bomb.xml.gz"))], max_bytes=1_000_000)
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert (outcomes["Gz"].ok, outcomes["Gz"].new_items) == (True, 3), outcomes["Gz"]
    assert outcomes["Bomb"].error == "sitemap exceeds the 1000000-byte cap once decompressed"


def test_failing_page_keeps_the_news_title_and_skips_an_untitled_url(tmp_path: Path,
                                                                     gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([_source("Herald", gather_server.url("f/sitemap/failing.xml"))])
    outcome = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert (outcome.ok, outcome.new_items, outcome.pages) == (True, 2, 1), outcome
    assert outcome.extra["sitemap_skipped"] == "1"
    assert outcome.extra["page_errors"].startswith("2: ") and "404" in outcome.extra["page_errors"]
    articles = _articles(database)
    kept = articles["Port strike talks resume in Busan"]
    assert kept.canonical_url == gather_server.url("page/sitemap/gone-with-title.html") and kept.text == ""
    assert kept.published_at.replace(tzinfo=dt.UTC) == NOW - dt.timedelta(hours=2)
    assert "freeze ferry fares" in articles["Ferry fares frozen for island commuters"].text  # the page's title
    # The untitled URL is tried again next run: the sitemap is asked for in full.
    gather_server.hits.clear()
    gather_sources(database, settings, now=NOW)
    assert "if-none-match" not in gather_server.hits[0].headers
    assert "/page/sitemap/gone-untitled.html" in gather_server.paths()
    assert "/page/sitemap/ferry.html" not in gather_server.paths()


def test_page_cap_defers_the_rest_to_the_next_run(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([_source("Herald", gather_server.url("f/sitemap/news.xml"))], full_text_pages=2)
    first = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert (first.new_items, first.pages, first.extra["sitemap_deferred"]) == (2, 2, "1")
    assert {"Ferry fares frozen for island commuters", "Restored lighthouse reopens to visitors in Mokpo"} == set(
        _articles(database))  # the newest first
    second = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert (second.new_items, second.pages) == (1, 1) and "sitemap_deferred" not in second.extra


def test_sniffing_and_reading() -> None:
    body = b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- generated -->\n<sm:urlset xmlns:sm="x"></sm:urlset>'
    assert looks_like_sitemap(body) and looks_like_sitemap(gzip.compress(body))
    assert not looks_like_sitemap(b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>')
    oldest = NOW - dt.timedelta(days=7)
    read = read_sitemap(b'<urlset><url><loc> /a?b=2&amp;a=1#frag </loc><lastmod>2026-01-01</lastmod></url>'
                        b'<url><loc>ftp://x.example/</loc></url><url><loc>https://x.example/b</loc></url></urlset>',
                        "https://X.example/sitemap.xml", oldest=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                        max_bytes=10_000)
    assert [e.url for e in read.entries] == ["https://x.example/a?a=1&b=2", "https://x.example/b"]
    assert (read.listed, read.invalid, read.old) == (3, 1, 0)
    assert read.entries[0].published_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert read.entries[1].published_at is None
    with pytest.raises(Exception, match="not a sitemap: the root element is <rss>"):
        read_sitemap(b"<rss><channel/></rss>", "", oldest=oldest, max_bytes=10_000)


def test_sitemap_read_in_a_parse_process(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([_source("Index", gather_server.url("f/sitemap/index.xml"))], parse_processes=1)
    outcome = by_name(gather_sources(database, settings, now=NOW))["Index"]
    assert (outcome.ok, outcome.new_items, outcome.extra["sitemaps"]) == (True, 2, "2 of 2 listed"), outcome
