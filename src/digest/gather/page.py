"""Article pages: trafilatura finds the main text and metadata; share bars, "Related", "Popular",
"More like this", navigation and footers are not article text and are left behind."""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlsplit

import trafilatura

from digest.errors import ParseError
from digest.gather.clean import absolute_url, canonical_url, clean_text, clean_title, normalise_language, safe_link
from digest.gather.dates import parse_date
from digest.gather.items import Item

_HTML_LANG = re.compile(rb"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z0-9_-]+)", re.I)
_DATE_OPTIONS = {"extensive_search": True, "original_date": True, "outputformat": "%Y-%m-%dT%H:%M:%S%z"}
SUMMARY_CHARS = 600


def extract_page(body: bytes, url: str) -> Item:
    """The article on a page as one Item; ParseError when no article text can be found."""
    try:
        document = trafilatura.bare_extraction(body, url=url or None, with_metadata=True, include_comments=False,
                                               include_tables=False, favor_precision=True,
                                               date_extraction_params=_DATE_OPTIONS)
    except Exception as exc:  # lxml and trafilatura raise many types on hostile markup
        raise ParseError(f"cannot read the page: {exc.__class__.__name__}: {str(exc)[:160]}") from None
    if document is None or not (document.text or "").strip():
        raise ParseError("no article text found on the page")
    title = clean_title(document.title or "")
    paragraphs = [clean_text(p) for p in document.text.splitlines()]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and paragraphs[0] == title:  # the headline is the title, not body text
        paragraphs = paragraphs[1:]
    link = _own_canonical(document.url or "", url) or safe_link(canonical_url(url))
    match = _HTML_LANG.search(body[:4096])
    return Item(
        guid=link or url,
        url=link,
        title=title or (paragraphs[0][:120] if paragraphs else ""),
        summary_html=_summary_html(clean_text(document.description or ""), paragraphs),
        text=" ".join(paragraphs),
        author=clean_title(document.author or "", 200),
        language=normalise_language(match.group(1).decode() if match else ""),
        image_url=absolute_url(document.image or "", url),
        published_at=parse_date(document.date),
    )


def enrich(item: Item, page: Item) -> None:
    """Fill a summary-only feed item from its page: the full text, and whatever metadata the feed lacked."""
    if len(page.text) > len(item.text):
        item.text = page.text
    item.summary_html = item.summary_html or page.summary_html
    item.author = item.author or page.author
    item.image_url = item.image_url or page.image_url
    item.language = item.language or page.language
    item.published_at = item.published_at or page.published_at


def _own_canonical(candidate: str, fetched: str) -> str:
    """The page's declared canonical URL, trusted only on the same site (a page cannot claim another's article)."""
    canonical = safe_link(canonical_url(candidate, fetched))
    if not canonical:
        return ""
    site = _site(fetched)
    return canonical if site and _site(canonical) == site else ""


def _site(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _summary_html(description: str, paragraphs: list[str]) -> str:
    """The page's own description, else its opening paragraphs up to ~600 characters; escaped, never raw."""
    if description:
        return f"<p>{escape(description)}</p>"
    chosen: list[str] = []
    for paragraph in paragraphs:
        if chosen and sum(map(len, chosen)) + len(paragraph) > SUMMARY_CHARS:
            break
        chosen.append(paragraph)
    return "".join(f"<p>{escape(p)}</p>" for p in chosen)
