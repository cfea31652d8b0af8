"""Turning fetched bytes into `Item`s: sniff what arrived, then RSS/Atom (feedparser), JSON Feed or a page.

Whatever arrives — binary, an HTML page where a feed should be, broken XML with
a lying encoding — ends as items or as a ParseError that says what was wrong.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import feedparser

from digest.errors import ParseError
from digest.gather.clean import (absolute_url, canonical_url, clean_text, clean_title, html_to_text, normalise_language,
                                 sanitize_html)
from digest.gather.dates import parse_date
from digest.gather.fastrss import parse_rss
from digest.gather.items import Item

_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip", "application/gzip",
                 "application/x-gzip", "application/vnd.", "application/msword")
_HTML_START = re.compile(rb"^(\xef\xbb\xbf)?\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_FEED_ROOT = re.compile(rb"<(rss|feed|rdf:RDF|channel)\b", re.I)
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_ATTR = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_UTF_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")
_MAGIC = (b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"RIFF")


def parse(body: bytes, *, kind: str = "auto", base_url: str = "", content_type: str = "",
          max_items: int = 1000) -> list[Item]:
    """Items of a feed (or the one article of a page); ParseError when the bytes are not that."""
    if not body.strip():
        raise ParseError("empty response: no feed")
    _refuse_binary(body, content_type)
    if kind == "page":
        from digest.gather.page import extract_page  # trafilatura is heavy to import; only page sources need it

        return [extract_page(body, base_url)]
    if kind == "jsonfeed" or (kind == "auto" and _looks_like_json(body, content_type)):
        from digest.gather.jsonfeed import parse_json_feed

        return parse_json_feed(body, base_url, content_type=content_type, max_items=max_items)
    if kind == "auto" and _looks_like_html(body, content_type):
        hint = advertised_feed(body, base_url)
        raise ParseError("not a feed: got an HTML page" + (f"; it advertises a feed at {hint}" if hint else
                                                           ' (set kind = "page" to extract it as an article)'))
    return parse_xml_feed(body, base_url, content_type=content_type, max_items=max_items)


def _refuse_binary(body: bytes, content_type: str) -> None:
    """Images, archives and other binaries are refused up front; a stray NUL in a text feed is not binary."""
    mime = content_type.split(";")[0].strip().lower()
    head = body[:1024]
    controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
    binary = head.startswith(_MAGIC) or (controls > len(head) // 20 and not head.startswith(_UTF_BOMS))
    if mime.startswith(_BINARY_TYPES) or binary:
        raise ParseError(f"not a feed: binary content ({mime or 'no content type'})")


def _looks_like_json(body: bytes, content_type: str) -> bool:
    return "json" in content_type.lower() or body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _looks_like_html(body: bytes, content_type: str) -> bool:
    head = body[:4096]
    if _FEED_ROOT.search(head):
        return False
    return bool(_HTML_START.match(head)) or "html" in content_type.lower()


def advertised_feed(body: bytes, base_url: str) -> str:
    """The first RSS/Atom/JSON feed a page links to with <link rel="alternate">, or ""."""
    text = body[:200_000].decode("utf-8", "replace")
    for tag in _LINK_TAG.findall(text):
        attrs = {m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or "" for m in _ATTR.finditer(tag)}
        if "alternate" in attrs.get("rel", "").lower() and any(t in attrs.get("type", "") for t in ("rss", "atom", "feed+json")):
            return canonical_url(attrs.get("href", ""), base_url)
    return ""


def parse_xml_feed(body: bytes, base_url: str = "", *, content_type: str = "", max_items: int = 1000) -> list[Item]:
    # No content-location: feedparser would resolve GUIDs against the feed's URL, and a moved feed would then
    # re-publish every item. Links are resolved here instead; our own nh3 pass sanitises, so feedparser's slower
    # sanitiser and resolver are switched off.
    # Plain UTF-8 RSS 2.0 (most feeds) is read by lxml into the same fields, ~20× faster (fastrss.py).
    fast = parse_rss(body, content_type)
    if fast is not None:
        items = _to_items(fast[0], fast[1], base_url, max_items)
        if items:
            return items
    headers = {"content-type": content_type or "application/xml"}
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    items = _to_items(parsed.feed, parsed.entries, base_url, max_items)
    if not items:
        # feedparser recovers what it can from broken XML; with nothing usable left, say why.
        if parsed.bozo:
            raise ParseError(f"not a usable feed: {_bozo_reason(parsed)}")
        if not parsed.version:
            raise ParseError("not a feed: no RSS or Atom root element")
    return items


def _to_items(feed: Any, entries: list[Any], base_url: str, max_items: int) -> list[Item]:
    language = normalise_language(feed.get("language", ""))
    base = canonical_url(feed.get("link", ""), base_url) or base_url
    return [item for entry in entries[:max_items] if (item := _entry_to_item(entry, base, language)) is not None]


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "malformed XML"
    if hasattr(exc, "getLineNumber"):  # xml.sax.SAXParseException: say where, not "<unknown>:2:76"
        return clean_text(f"{exc.getMessage()} at line {exc.getLineNumber()}, column {exc.getColumnNumber()}")[:200]
    return clean_text(str(exc))[:200]


def _entry_to_item(entry: Any, base_url: str, language: str) -> Item | None:
    raw_link = entry.get("link", "")
    guid_value = clean_text(entry.get("id", ""))
    if entry.get("guidislink") and not raw_link.startswith(("http://", "https://")):
        raw_link = ""  # feedparser made a link of a <guid> that is no URL ("c1"): not a link to anything
    link = canonical_url(raw_link, base_url)  # http(s) or ""
    title = clean_title(entry.get("title", ""))
    content = ""
    for part in entry.get("content") or []:
        content = part.get("value", "") or content
        if "html" in part.get("type", ""):
            break
    summary = entry.get("summary", "") or content
    summary_html = sanitize_html(summary, link or base_url)
    text = html_to_text(content or summary)
    if not (title or text):
        return None
    guid = guid_value or link or stable_id(title + text)
    # dict.get: FeedParserDict maps a missing updated_* onto published_* with a DeprecationWarning.
    published = parse_date(dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")) or parse_date(
        dict.get(entry, "published") or dict.get(entry, "updated"))
    detail = entry.get("content", [{}])[0] if entry.get("content") else entry.get("summary_detail") or {}
    return Item(guid=guid[:1000], url=link, title=title or text[:120].rsplit(" ", 1)[0], summary_html=summary_html,
                text=text, author=clean_title(entry.get("author", ""), 200),
                language=normalise_language(detail.get("language") or "") or language,
                image_url=lead_image(entry, content or summary, link or base_url),
                published_at=published, tags=normalise_tags([t.get("term", "") for t in entry.get("tags", []) or []]))


def lead_image(entry: Any, fragment: str, base_url: str) -> str:
    """media:thumbnail, media:content or an image enclosure, else the first image in the content; absolute http(s)."""
    candidates = [m.get("url", "") for m in entry.get("media_thumbnail", []) or []]
    candidates += [m.get("url", "") for m in entry.get("media_content", []) or []
                   if m.get("medium") == "image" or str(m.get("type", "")).startswith("image/")]
    candidates += [e.get("href", "") for e in entry.get("enclosures", []) or [] if str(e.get("type", "")).startswith("image/")]
    candidates += ["".join(groups) for groups in _IMG_SRC.findall(fragment[:100_000])]
    for candidate in candidates:
        url = absolute_url(str(candidate), base_url)
        if url:
            return url
    return ""


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, hyphenated, de-duplicated topic tags (at most 20, each at most 40 characters)."""
    out: list[str] = []
    for tag in tags:
        value = "-".join(clean_text(str(tag)).lower().split())[:40]
        if value and value not in out:
            out.append(value)
    return out[:20]


def stable_id(value: str) -> str:
    return "sha1:" + hashlib.sha1(value.encode("utf-8", "replace")).hexdigest()
