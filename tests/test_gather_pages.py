"""Article pages (trafilatura): main text without share bars or Related/Popular/More-like-this blocks;
full text fetched for summary-only feeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from test_gather_http import NOW, FIXTURES, GatherServer, by_name, gather_server, open_db, settings_for  # noqa: F401

from digest.config import SourceConfig
from digest.db.models import Article
from digest.gather import gather_sources
from digest.gather.page import extract_page

BOILERPLATE = ["Share this", "Facebook", "Post on X", "Related", "Shipbuilders at Ulsan", "Most popular",
               "Celebrity chef", "K-pop", "More like this", "Ferry operators", "morning briefing", "Sign up",
               "All rights reserved", "Home", "window.tracker", "font-family"]


def test_page_extraction_keeps_the_article_and_drops_the_boilerplate() -> None:
    body = (FIXTURES / "article.html").read_bytes()
    item = extract_page(body, "https://harbour.example/news/busan-hazard-pay?utm_source=newsletter")
    assert item.title == "Dockworkers win hazard pay after Busan port heatwave"
    assert item.author == "Min-ji Park"
    assert item.published_at == dt.datetime(2026, 11, 19, 23, 30, tzinfo=dt.UTC)  # 08:30 KST, stored as UTC
    assert item.image_url == "https://harbour.example/images/busan-port.jpg"  # made absolute
    assert item.url == item.guid == "https://harbour.example/news/busan-hazard-pay"  # canonical, tracking stripped
    assert item.language == "en-gb"
    assert item.text.startswith("An arbitration panel in Busan awarded hazard pay")
    assert "shaded rest areas" in item.text and "heat-safety guidance" in item.text
    for phrase in BOILERPLATE:
        assert phrase not in item.text, phrase
        assert phrase not in item.summary_html, phrase
    assert item.summary_html.startswith("<p>An arbitration panel awarded hazard pay")


def test_a_page_cannot_claim_another_sites_canonical_url() -> None:
    body = (FIXTURES / "article.html").read_bytes().replace(b"https://harbour.example/news/busan-hazard-pay",
                                                             b"https://victim.example/their-story")
    item = extract_page(body, "https://harbour.example/news/busan-hazard-pay")
    assert item.url == "https://harbour.example/news/busan-hazard-pay"


def test_page_source_is_gathered_as_one_article(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([SourceConfig(name="Herald", url=gather_server.url("page/article.html"), kind="page")],
                            max_age_days=3650)
    outcome = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert (outcome.ok, outcome.new_items) == (True, 1)
    with database.session() as session:
        article = session.scalars(select(Article)).one()
        assert "Related" not in article.text and "hazard pay" in article.text
    assert "text/html" in gather_server.hits[0].headers["accept"]


def test_fetch_full_text_for_summary_only_feeds(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([SourceConfig(name="Herald", url=gather_server.url("f/summary-only.rss.xml"),
                                          fetch_full_text=True)])
    outcome = by_name(gather_sources(database, settings, now=NOW))["Herald"]
    assert outcome.ok and outcome.new_items == 2 and outcome.pages == 1
    assert "missing.html" in outcome.extra["page_errors"] and "404" in outcome.extra["page_errors"]
    with database.session() as session:
        articles = {a.guid: a for a in session.scalars(select(Article))}
    full = articles["herald-1"]
    assert "shaded rest areas" in full.text and "Most popular" not in full.text
    assert full.summary_html == "Arbitration panel rules for crane operators."  # the feed's own summary stays
    assert full.author == "Min-ji Park" and full.image_url.endswith("/images/busan-port.jpg")
    assert articles["herald-2"].text == "The feed summary stays when the page cannot be fetched."

    # Pages of items already stored are not fetched again.
    gather_server.routes["/f/summary-only.rss.xml"] = lambda h: gather_server.send(
        h, gather_server.render("summary-only.rss.xml"), conditional=False)
    gather_server.hits.clear()
    gather_sources(database, settings, now=NOW)
    assert gather_server.paths() == ["/f/summary-only.rss.xml"]
