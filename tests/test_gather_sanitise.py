"""Normalisation: hostile fields never survive, URLs are canonical, titles are one clean line, JSON Feed is read
defensively, languages are recorded."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from test_gather_http import NOW, GatherServer, by_name, gather_server, open_db, settings_for  # noqa: F401

from digest.db.models import Article
from digest.gather import gather_sources
from digest.gather.clean import canonical_url, clean_title, normalise_language, sanitize_html
from digest.gather.parse import parse

FORBIDDEN = ["<script", "javascript:", "vbscript:", "onerror", "onload", "onclick", "onmouseover", "style=", "<style",
             "<iframe", "<form", "<input", "<button", "<svg", "<object", "<embed", "<meta", "<base", "data:",
             "document.write", "iframe fallback", "evil.example", "alert("]


def test_hostile_feed_is_neutralised_on_the_way_in(tmp_path: Path, gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    outcome = by_name(gather_sources(database, settings_for([("Hostile", gather_server.url("f/hostile.rss.xml"))]),
                                     now=NOW))["Hostile"]
    assert outcome.ok and outcome.new_items == 2
    with database.session() as session:
        articles = {a.guid: a for a in session.scalars(select(Article))}
    evil = articles["hostile-1"]
    for field in (evil.summary_html, evil.text, evil.title, evil.url, evil.image_url, evil.author):
        lowered = field.lower()
        for needle in FORBIDDEN:
            assert needle not in lowered, (needle, field)
    assert evil.url == "" and evil.image_url == gather_server.url("x")  # <img src="x">: harmless once absolute
    assert "\n" not in evil.title and "\r" not in evil.title and "<" not in evil.title
    assert evil.title.startswith("Breaking: markup in the title Subject: injected header")
    assert f'href="{gather_server.url("safe/relative")}"' in evil.summary_html  # relative link made absolute
    assert 'href="https://ok.example/story"' in evil.summary_html and "target=" not in evil.summary_html
    assert "Closing paragraph about the city budget" in evil.summary_html
    controls = articles["hostile-2"]
    assert controls.title == "Control characters [31m and a bidi override"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", controls.title + controls.text + controls.summary_html)


@pytest.mark.parametrize("vector", [
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="JAVASCRIPT:alert(1)">x</a>',
    '<a href="java&#x0A;script:alert(1)">x</a>',
    '<a href="java&#9;script:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<img src=x onerror=alert(1)>',
    '<img src="javascript:alert(1)">',
    '<IMG SRC=`javascript:alert(1)`>',
    '<svg/onload=alert(1)>',
    '<body onload=alert(1)>',
    '<scr<script>ipt>alert(1)</scr</script>ipt>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<form><button formaction=javascript:alert(1)>x</button></form>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<a href="x" onclick="alert(1)" style="color:red">x</a>',
    '<!--<img src=x onerror=alert(1)>-->',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
])
def test_xss_vectors_do_not_survive(vector: str) -> None:
    cleaned = sanitize_html(vector, "https://site.example/a/")
    tags = re.findall(r"<\s*([a-z0-9]+)", cleaned.lower())
    assert set(tags) <= {"a", "img", "p"}, cleaned
    attributes = re.findall(r'\s([a-z-]+)="([^"]*)"', cleaned.lower())
    for name, value in attributes:
        assert name in {"href", "src", "rel", "title", "alt"}, cleaned
        if name in {"href", "src"}:
            assert value.startswith("https://site.example/"), cleaned  # relative junk made absolute, no other scheme
    assert not re.search(r"<[^>]*\son\w+\s*=", cleaned.lower()), cleaned


def test_each_thread_resolves_links_against_its_own_base() -> None:
    """One sanitiser serves every thread (nh3 runs without the GIL); the base URL is the calling thread's."""
    fragment = '<p>Text <a href="/story">story</a> <img src="pic.png" alt=""></p>' * 20

    def clean(n: int) -> str:
        return sanitize_html(fragment, f"https://site{n}.example/dir/")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(clean, range(400)))
    for n, cleaned in enumerate(results):
        assert cleaned.count(f'href="https://site{n}.example/story"') == 20, cleaned
        assert cleaned.count(f'src="https://site{n}.example/dir/pic.png"') == 20, cleaned
    assert sanitize_html('<a href="/story">x</a>') == '<a rel="noopener noreferrer">x</a>'  # no base: no relative link


@pytest.mark.parametrize(("url", "expected"), [
    ("https://News.Example.COM:443/a/./b/../story?utm_source=rss&utm_medium=x&id=7&fbclid=1#comments",
     "https://news.example.com/a/story?id=7"),
    ("http://example.org:80", "http://example.org/"),
    ("http://example.org:8080/x?b=2&a=1&gclid=3&mc_cid=4", "http://example.org:8080/x?a=1&b=2"),
    ("/relative/path?ref_src=twsrc", "https://base.example/relative/path"),
    ("../up", "https://base.example/up"),
    ("//cdn.example/x", "https://cdn.example/x"),
    ("https://user:secret@example.org/private", "https://example.org/private"),
    ("https://example.org/a b/ü", "https://example.org/a%20b/%C3%BC"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("https://[::1]:8443/x", "https://[::1]:8443/x"),
    ("javascript:alert(1)", ""),
    ("mailto:someone@example.org", ""),
    ("http://[::1/", ""),
    ("http://example.org:port/", ""),
    ("https://exa\r\nmple.org/x", "https://example.org/x"),
    ("", ""),
])
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url, "https://base.example/dir/") == expected


def test_titles_languages_and_json_feed_fields() -> None:
    assert clean_title("  Two\r\nlines\tand <b>tags</b> &amp; entities\x00 ") == "Two lines and tags & entities"
    assert clean_title("x" * 400).endswith("…") and len(clean_title("x " * 400)) <= 300
    assert [normalise_language(v) for v in ("en-US", "ko_KR", "EN", "", "<script>", "fr, en")] == [
        "en-us", "ko-kr", "en", "", "", "fr"]

    body = Path(__file__).with_name("fixtures").joinpath("gather", "feed.json").read_text()
    items = parse(body.replace("{{BASE}}", "https://civic.example").replace("{{ISO:-2h}}", "2026-11-20T10:00:00+09:00")
                  .replace("{{DATE:-3h}}", "Fri, 20 Nov 2026 03:00:00 GMT").encode(), base_url="https://civic.example/feed.json")
    by_guid = {i.guid: i for i in items}
    assert list(by_guid) == ["civic-1", "2", "civic-3"]  # the non-object and the empty item are skipped
    first = by_guid["civic-1"]
    assert first.url == "https://civic.example/civic/civic-1"  # relative to home_page_url, utm stripped
    assert first.image_url == "https://civic.example/img/c1.jpg" and first.language == "ko"
    assert first.author == "Civic Desk" and first.tags == ["housing", "tenants'-rights"]
    assert first.published_at is not None and first.published_at.isoformat() == "2026-11-20T01:00:00+00:00"
    odd = by_guid["2"]
    assert odd.title == "42" and odd.published_at is None and odd.tags == [] and odd.image_url == ""
    third = by_guid["civic-3"]
    assert third.url == "https://civic.example/civic/3" and third.author == "Old 1.0 Author"
    assert third.published_at is not None and third.published_at.hour == 3  # RFC 2822 in a JSON Feed, tolerated
