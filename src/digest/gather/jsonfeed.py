"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), read defensively: every field may be missing
or of the wrong type, and the bytes may not even be UTF-8 as the spec requires."""

from __future__ import annotations

import json
from typing import Any

from digest.errors import ParseError
from digest.gather.clean import (absolute_url, canonical_url, clean_text, clean_title, html_to_text,
                                 normalise_language, safe_link, sanitize_html)
from digest.gather.dates import parse_date
from digest.gather.items import Item
from digest.gather.parse import lead_image, normalise_tags, stable_id


def parse_json_feed(body: bytes, base_url: str = "", *, content_type: str = "", max_items: int = 1000) -> list[Item]:
    document = _load(body, content_type)
    if not isinstance(document, dict):
        raise ParseError("not a JSON Feed: the top level is not an object")
    version = _str(document.get("version"))
    if version and "jsonfeed.org/version/1" not in version:
        raise ParseError(f"not a JSON Feed: unknown version {clean_text(version)[:80]!r}")
    raw_items = document.get("items")
    if not isinstance(raw_items, list):
        raise ParseError("not a JSON Feed: no items list")
    language = normalise_language(_str(document.get("language")))
    base = canonical_url(_str(document.get("home_page_url")), base_url) or base_url
    feed_author = _authors(document)
    items = []
    for raw in raw_items[:max_items]:
        if isinstance(raw, dict) and (item := _item(raw, base, language, feed_author)) is not None:
            items.append(item)
    return items


def _load(body: bytes, content_type: str) -> Any:
    try:
        return json.loads(body)  # detects UTF-8/16/32 and a BOM
    except UnicodeDecodeError:
        pass  # a lying or legacy encoding: decode by the declared charset, else the best guess
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ParseError(f"not valid JSON: {str(exc)[:200]}") from None
    try:
        return json.loads(_decode(body, content_type))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ParseError(f"not valid JSON: {str(exc)[:200]}") from None


def _decode(body: bytes, content_type: str) -> str:
    charset = next((p.split("=", 1)[1].strip(" \"'") for p in content_type.split(";") if "charset=" in p.lower()), "")
    if charset:
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    return body.decode(best.encoding if best else "cp1252", "replace")


def _item(raw: dict[str, Any], base: str, language: str, feed_author: str) -> Item | None:
    link = safe_link(canonical_url(_str(raw.get("url")) or _str(raw.get("external_url")), base))
    content_html = _str(raw.get("content_html"))
    summary = _str(raw.get("summary"))
    text = html_to_text(content_html) or clean_text(_str(raw.get("content_text"))) or clean_text(summary)
    title = clean_title(_str(raw.get("title")))
    if not (title or text):
        return None
    summary_html = sanitize_html(content_html or _paragraphs(_str(raw.get("content_text"))) or _paragraphs(summary),
                                 link or base)
    image = absolute_url(_str(raw.get("image")) or _str(raw.get("banner_image")), link or base)
    if not image:
        attachments = raw.get("attachments") if isinstance(raw.get("attachments"), list) else []
        image = next((absolute_url(_str(a.get("url")), link or base) for a in attachments
                      if isinstance(a, dict) and _str(a.get("mime_type")).startswith("image/")), "")
    image = image or lead_image({}, content_html, link or base)
    tags = raw.get("tags") if isinstance(raw.get("tags"), list) else []
    return Item(
        guid=clean_text(_str(raw.get("id")))[:1000] or link or stable_id(title + text),
        url=link,
        title=title or text[:120].rsplit(" ", 1)[0],
        summary_html=summary_html,
        text=text,
        author=_authors(raw) or feed_author,
        language=normalise_language(_str(raw.get("language"))) or language,
        image_url=image,
        published_at=parse_date(_str(raw.get("date_published")) or _str(raw.get("date_modified"))),
        tags=normalise_tags([_str(t) for t in tags]),
    )


def _authors(obj: dict[str, Any]) -> str:
    """1.1 `authors` (a list) or 1.0 `author` (one object): their names, comma-separated."""
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    names = [clean_title(_str(a.get("name")), 100) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n)[:200]


def _paragraphs(text: str) -> str:
    from html import escape

    return "".join(f"<p>{escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _str(value: Any) -> str:
    """Strings as they are, numbers as text (ids often are), anything else (lists, objects, null) as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
