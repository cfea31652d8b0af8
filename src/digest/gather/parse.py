"""Turning fetched bytes into `Item`s: RSS/Atom via feedparser, JSON Feed via json."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from typing import Any

import feedparser

from digest.errors import ParseError
from digest.gather.clean import canonical_url, clean_text, clean_title, html_to_text, safe_link, sanitize_html
from digest.gather.items import Item


def parse(body: bytes, *, kind: str = "auto", base_url: str = "", content_type: str = "") -> list[Item]:
    if not body.strip():
        raise ParseError("empty response")
    if kind == "jsonfeed" or (kind == "auto" and _looks_like_json(body, content_type)):
        return parse_json_feed(body, base_url)
    if kind == "page":
        raise ParseError("page sources need the page extractor (not available in this build)")
    return parse_xml_feed(body, base_url)


def _looks_like_json(body: bytes, content_type: str) -> bool:
    return "json" in content_type or body.lstrip()[:1] == b"{"


def parse_xml_feed(body: bytes, base_url: str = "") -> list[Item]:
    parsed = feedparser.parse(body, response_headers={"content-location": base_url} if base_url else None)
    language = clean_text(parsed.feed.get("language", ""))[:20]
    base = parsed.feed.get("link") or base_url
    items = [item for entry in parsed.entries if (item := _entry_to_item(entry, base, language)) is not None]
    if not items:
        # feedparser recovers what it can from broken XML; with nothing usable left, say why.
        if parsed.bozo:
            raise ParseError(f"not a usable feed: {_bozo_reason(parsed)}")
        if not parsed.version:
            raise ParseError("not a feed: no RSS or Atom root element")
    return items


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return clean_text(str(exc))[:200] if exc else "malformed XML"


def _entry_to_item(entry: Any, base_url: str, language: str) -> Item | None:
    link = safe_link(canonical_url(entry.get("link", ""), base_url))
    title = clean_title(entry.get("title", ""))
    content = ""
    if entry.get("content"):
        content = entry.content[0].get("value", "")
    summary = entry.get("summary", "") or content
    summary_html = sanitize_html(summary, link or base_url)
    text = html_to_text(content or summary)
    if not (title or text):
        return None
    guid = clean_text(entry.get("id", "")) or link or _hash(title + text)
    published = _struct_to_datetime(entry.get("published_parsed") or entry.get("updated_parsed"))
    image = ""
    for enclosure in entry.get("enclosures", []) or []:
        if str(enclosure.get("type", "")).startswith("image/"):
            image = safe_link(enclosure.get("href", ""))
            break
    tags = [t.get("term", "") for t in entry.get("tags", []) or []]
    return Item(guid=guid[:1000], url=link, title=title or text[:120], summary_html=summary_html, text=text,
                author=clean_title(entry.get("author", ""), 200), language=language, image_url=image,
                published_at=published, tags=normalise_tags(tags))


def parse_json_feed(body: bytes, base_url: str = "") -> list[Item]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict) or "jsonfeed.org" not in str(document.get("version", "")):
        raise ParseError("not a JSON Feed: missing version https://jsonfeed.org/version/1.x")
    language = clean_text(str(document.get("language", "")))[:20]
    base = str(document.get("home_page_url") or base_url)
    items = []
    for raw in document.get("items") or []:
        if not isinstance(raw, dict):
            continue
        link = safe_link(canonical_url(str(raw.get("url") or raw.get("external_url") or ""), base))
        content_html = str(raw.get("content_html") or "")
        summary = str(raw.get("summary") or "")
        text = html_to_text(content_html) or clean_text(str(raw.get("content_text") or "")) or clean_text(summary)
        title = clean_title(str(raw.get("title") or ""))
        if not (title or text):
            continue
        authors = raw.get("authors") or ([raw["author"]] if isinstance(raw.get("author"), dict) else [])
        author = ", ".join(clean_title(str(a.get("name", "")), 100) for a in authors if isinstance(a, dict))
        items.append(Item(
            guid=str(raw.get("id") or link or _hash(title + text))[:1000],
            url=link,
            title=title or text[:120],
            summary_html=sanitize_html(content_html or summary, link or base),
            text=text,
            author=author,
            language=clean_text(str(raw.get("language") or language))[:20],
            image_url=safe_link(str(raw.get("image") or "")),
            published_at=_iso_to_datetime(raw.get("date_published") or raw.get("date_modified")),
            tags=normalise_tags([str(t) for t in raw.get("tags") or [] if isinstance(t, str)]),
        ))
    return items


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, hyphenated, de-duplicated topic tags (at most 20, each at most 40 characters)."""
    out: list[str] = []
    for tag in tags:
        value = "-".join(clean_text(tag).lower().split())[:40]
        if value and value not in out:
            out.append(value)
    return out[:20]


def _struct_to_datetime(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _iso_to_datetime(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _hash(value: str) -> str:
    return "sha1:" + hashlib.sha1(value.encode()).hexdigest()
