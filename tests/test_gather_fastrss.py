"""The lxml fast path for plain RSS 2.0 (gather/fastrss.py) gives the same items as feedparser, quirks included,
and hands everything it does not model back to feedparser."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import feedparser
import pytest

from digest.gather.fastrss import parse_rss
from digest.gather.parse import _to_items, parse_xml_feed

FIXTURES = Path(__file__).with_name("fixtures") / "gather"
BASE = "https://feeds.example/news/rss"
NS = ('xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
      'xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom"')
TEXT = "<p>Dock workers voted on Tuesday to accept the port's offer after three weeks of talks, the union said.</p>"


def rss(items: str, channel: str = "<title>T</title><link>https://site.example/</link>", *, version: str = "2.0",
        declaration: str = "<?xml version='1.0' encoding='utf-8'?>") -> bytes:
    return f"{declaration}<rss version='{version}' {NS}><channel>{channel}{items}</channel></rss>".encode()


def slow_items(body: bytes, content_type: str = "application/rss+xml") -> list:
    parsed = feedparser.parse(body, response_headers={"content-type": content_type}, sanitize_html=False,
                              resolve_relative_uris=False)
    return _to_items(parsed.feed, parsed.entries, BASE, 200)


def fast_items(body: bytes, content_type: str = "application/rss+xml") -> list | None:
    fast = parse_rss(body, content_type)
    return None if fast is None else _to_items(fast[0], fast[1], BASE, 200)


AGREE = {
    "guid before a relative link": "<item><guid>https://site.example/g1</guid><link>/rel/1</link><title>A</title>"
                                   f"<description><![CDATA[{TEXT}]]></description></item>",
    "link before guid": "<item><link>https://site.example/a?b=1&amp;c=2</link><guid>g2</guid><title>B</title></item>",
    "permalink guid as link": "<item><guid>https://site.example/only-guid</guid><title>C</title></item>",
    "guid not a permalink": "<item><guid isPermaLink='false'>tag:site,2026:7</guid><title>D</title>"
                            "<link>https://site.example/d</link></item>",
    "guid that is no URL": "<item><guid>c1</guid><title>E</title></item>",
    "empty guid": "<item><guid></guid><title>F</title><link>https://site.example/f</link></item>",
    "no guid, no link": f"<item><title>G</title><description>{TEXT.replace('<', '&lt;')}</description></item>",
    "entity-encoded markup": f"<item><title>Tom &amp;amp; Jerry &lt;b&gt;bold&lt;/b&gt;</title>"
                             f"<description>{TEXT.replace('<', '&lt;').replace('>', '&gt;')}</description></item>",
    "author with an email": "<item><title>H</title><author>jdoe@example.com (John Doe)</author></item>",
    "dc:creator and dc:date": "<item><title>I</title><dc:creator> Jane Roe </dc:creator>"
                              "<dc:date>2026-11-27T10:00:00+02:00</dc:date></item>",
    "content before description": f"<item><title>J</title><content:encoded><![CDATA[{TEXT}<p>More.</p>]]></content:encoded>"
                                  "<description>Short teaser text.</description></item>",
    "content after description": f"<item><title>K</title><description>Short teaser.</description>"
                                 f"<content:encoded><![CDATA[{TEXT}]]></content:encoded></item>",
    "content only": f"<item><title>L</title><content:encoded><![CDATA[{TEXT}<img src='/i.png'>]]></content:encoded></item>",
    "media and enclosures": "<item><title>M</title><media:thumbnail url='https://cdn.example/t.jpg?sig=1' width='9'/>"
                            "<media:content url='https://cdn.example/v.mp4' type='video/mp4'/>"
                            "<media:content url='/p.jpg' medium='image'/>"
                            "<enclosure url='https://cdn.example/e.JPG' type='Image/JPEG' length='1'/></item>",
    "thumbnail as text": "<item><title>N</title><media:thumbnail>https://cdn.example/n.png</media:thumbnail></item>",
    "image enclosure only": "<item><title>O</title><enclosure url='/e.png' type='image/png'/></item>",
    "categories": "<item><title>P</title><category>Labour Rights</category><category domain='x'>labour rights</category>"
                  "<category></category><category> Port </category></item>",
    "dates": "<item><title>Q</title><pubDate>Wed, 25 Nov 2026 08:30:00 EST</pubDate></item>"
             "<item><title>R</title><pubDate>not a date</pubDate></item>"
             "<item><title>S</title><pubDate>2026-11-24</pubDate></item>",
    "whitespace and CDATA": "<item>\n  <title>\n   Spaced   title \n</title>\n  <link>\n https://site.example/s \n</link>\n"
                            "  <description><![CDATA[  <p>x</p>  ]]></description>\n</item>",
    "mis-decoded UTF-8 and C1 code points": "<item><title>CafÃ© \u0093quoted\u0094 cr\u00e8me</title>"
                                            "<description>naïve – 東京</description></item>",
    "mis-decoded UTF-8 alone": "<item><title>CafÃ© crÃ¨me</title></item>",
    "comments between elements": "<item><!-- c --><title>U</title><comments>https://site.example/u#c</comments></item>",
    "markup-only title": f"<item><title>&lt;p&gt;&lt;/p&gt;</title><description>{TEXT.replace('<', '&lt;')}</description></item>",
}


@pytest.mark.parametrize("name", sorted(AGREE))
def test_fast_path_agrees_with_feedparser(name: str) -> None:
    body = rss(AGREE[name])
    fast = fast_items(body)
    assert fast is not None, "the fast path should take this feed"
    assert fast == slow_items(body)


@pytest.mark.parametrize("channel", [
    "<link>https://site.example/</link><language>en-GB</language><atom:link href='https://site.example/rss' rel='self'/>",
    "<atom:link href='https://site.example/rss' rel='self'/><link>https://site.example/x?a=1&amp;b=2</link>",
    "<title>No link</title><image><url>https://site.example/logo.png</url><link>https://elsewhere.example/</link></image>",
    "<link>/relative/</link><language>ko</language>",
])
def test_channel_link_and_language_agree(channel: str) -> None:
    body = rss("<item><title>Z</title><link>/z</link><guid isPermaLink='false'>z</guid></item>", channel)
    fast = fast_items(body)
    assert fast is not None and fast == slow_items(body)


@pytest.mark.parametrize(("body", "content_type"), [
    (rss("<item><title>A</title></item>", version="0.91"), "application/rss+xml"),  # only 2.0
    (rss("<item><title>A</title></item>", declaration="<?xml version='1.0' encoding='iso-8859-1'?>"), "application/xml"),
    (rss("<item><title>A</title></item>"), "application/xml; charset=iso-8859-1"),
    (rss("<item><title>A</title></item>"), "text/xml"),  # us-ascii to feedparser
    (rss("<item><title>A</title></item>", declaration=""), "application/xml"),  # no declaration: sniffed
    (rss("<item><title>A <b>bold</b></title></item>"), "application/xml"),  # markup in a text field
    (rss("<item><title>A<!-- c --></title></item>"), "application/xml"),
    (rss("<item><title>A</title><title>B</title></item>"), "application/xml"),  # a repeat
    (rss("<item><title>A</title><description>a</description><description>b</description></item>"), "application/xml"),
    (rss("<item><title>A</title><dc:subject>tag</dc:subject></item>"), "application/xml"),  # not in the allowlist
    (rss("<item><title>A</title><author>x</author><dc:creator>y</dc:creator></item>"), "application/xml"),
    (rss("<item><title xml:lang='fr'>A</title></item>"), "application/xml"),
    (rss("<item><title>A</title><link href='https://x.example/'>t</link></item>"), "application/xml"),
    (rss("<item><title>A</title></item>", "<atom:link href='https://x.example/' rel='alternate'/>"), "application/xml"),
    (rss("<item><title>A</title></item>", "<dc:language>fr</dc:language>"), "application/xml"),
    (b"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY x 'y'>]><rss version='2.0'><channel><item><title>&x;</title>"
     b"</item></channel></rss>", "application/xml"),
    (b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>&nbsp;</title></item></channel></rss>",
     "application/xml"),  # not well-formed: feedparser's loose parser copes
    (b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>A</title></feed>", "application/xml"),
])
def test_everything_else_goes_to_feedparser(body: bytes, content_type: str) -> None:
    assert parse_rss(body, content_type) is None


def test_fixture_feeds_parse_the_same_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = sorted(p for p in FIXTURES.rglob("*.xml"))
    assert feeds
    taken = 0
    for path in feeds:
        body = path.read_bytes().replace(b"{{BASE}}", b"https://fixtures.example").replace(b"{{DATE:-5h}}",
                                                                                           b"Wed, 25 Nov 2026 08:30:00 GMT")
        taken += parse_rss(body, "application/rss+xml") is not None
        try:
            fast = parse_xml_feed(body, BASE, content_type="application/rss+xml")
        except Exception as exc:  # noqa: BLE001 - the same error either way is what is checked
            fast = repr(exc)
        with monkeypatch.context() as patch:
            patch.setattr("digest.gather.parse.parse_rss", lambda *_: None)
            try:
                slow = parse_xml_feed(body, BASE, content_type="application/rss+xml")
            except Exception as exc:  # noqa: BLE001
                slow = repr(exc)
        assert fast == slow, path.name
    assert taken >= 2  # the plain RSS fixtures do take the fast path


def test_benchmark_feeds_take_the_fast_path() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        from gather import feed_body  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    body = feed_body(19, 30, time.time())
    fast = fast_items(body, "application/rss+xml; charset=utf-8")
    assert fast is not None and len(fast) == 30
    assert fast == slow_items(body, "application/rss+xml; charset=utf-8")
