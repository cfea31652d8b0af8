"""Sitemaps and Google News sitemaps: a `<urlset>` lists article URLs, a `<sitemapindex>` lists more sitemaps.

`read_sitemap()` is the CPU half (bytes in, plain entries out; it runs in a parse process like any feed):
gzip is undone under the same byte cap as a fetch, the XML is read by lxml with no entity expansion, no
network, no DTD and no huge-tree mode, and every `<loc>` is canonicalised (http(s) only). The worker
(worker.py) follows an index's newest child sitemaps and fetches each recent URL's page through the
article-page path (page.py).
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass, field

from lxml import etree

from digest.errors import ParseError
from digest.gather.clean import canonical_url, clean_text, clean_title, normalise_language
from digest.gather.dates import parse_date
from digest.gather.xmlsafe import hardened_parser

# Child sitemaps of a <sitemapindex> followed per run (the most recently modified first).
MAX_CHILD_SITEMAPS = 5
_GZIP_MAGIC = b"\x1f\x8b"
# The first element, after an optional BOM, XML declaration, comments and processing instructions.
_SITEMAP_ROOT = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:(?:<\?[^>]*>|<!--.*?-->)\s*)*<(?:[\w.-]+:)?(urlset|sitemapindex)\b",
                           re.S)
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S)


@dataclass
class Entry:
    """One `<url>` of a urlset: its canonical URL and what the sitemap says about it."""

    url: str
    published_at: dt.datetime | None = None  # news:publication_date, else lastmod
    title: str = ""  # news:title
    language: str = ""  # news:publication/news:language


@dataclass
class Child:
    url: str
    lastmod: dt.datetime | None = None


@dataclass
class Sitemap:
    index: bool = False
    entries: list[Entry] = field(default_factory=list)  # a urlset's URLs within the age window
    children: list[Child] = field(default_factory=list)  # an index's child sitemaps
    listed: int = 0  # <url> (or <sitemap>) elements in the document, before any filter
    old: int = 0  # URLs dated before the age window
    invalid: int = 0  # <loc>s that are missing or not http(s)


def looks_like_sitemap(body: bytes) -> bool:
    """Whether `body` is a `<urlset>`/`<sitemapindex>` document (plain or gzipped); cheap, for kind = "auto"."""
    if body[:2] == _GZIP_MAGIC:
        try:
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, 4096)
        except zlib.error:
            return False
    return bool(_SITEMAP_ROOT.match(body[:4096]))


def read_sitemap(body: bytes, base_url: str, *, oldest: dt.datetime, max_bytes: int) -> Sitemap:
    """The entries (or child sitemaps) of a sitemap document; ParseError when the bytes are not a usable one."""
    if body[:2] == _GZIP_MAGIC:
        body = _gunzip(body, max_bytes)
    if not body.strip():
        raise ParseError("empty response: no sitemap")
    from digest.gather.parse import _refuse_binary

    _refuse_binary(body, "")
    if _HTML_START.match(body[:4096]):
        raise ParseError("not a sitemap: got an HTML page")
    root = _parse_xml(body)
    name = etree.QName(root).localname if isinstance(root.tag, str) else ""
    if name not in ("urlset", "sitemapindex"):
        raise ParseError(f"not a sitemap: the root element is <{name or '?'}>, not <urlset> or <sitemapindex>")
    sitemap = Sitemap(index=name == "sitemapindex")
    for element in root:
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if sitemap.index and local == "sitemap":
            sitemap.listed += 1
            fields = _fields(element)
            url = _link(fields.get("loc", ""), base_url)
            if url:
                sitemap.children.append(Child(url, parse_date(fields.get("lastmod", ""))))
            else:
                sitemap.invalid += 1
        elif not sitemap.index and local == "url":
            sitemap.listed += 1
            _add_entry(sitemap, element, base_url, oldest)
    return sitemap


def newest_children(children: list[Child], limit: int | None = None) -> list[Child]:
    """The `limit` (default MAX_CHILD_SITEMAPS) most recently modified child sitemaps (undated ones last, in
    document order), each URL once."""
    limit = MAX_CHILD_SITEMAPS if limit is None else limit
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    unique = list({c.url: c for c in reversed(children)}.values())[::-1]  # first occurrence wins
    ordered = sorted(enumerate(unique), key=lambda p: (p[1].lastmod or floor, -p[0]), reverse=True)
    return [child for _, child in ordered[:limit]]


def _add_entry(sitemap: Sitemap, element: etree._Element, base_url: str, oldest: dt.datetime) -> None:
    fields = _fields(element)
    url = _link(fields.get("loc", ""), base_url)
    if not url:
        sitemap.invalid += 1
        return
    published = parse_date(fields.get("publication_date", "")) or parse_date(fields.get("lastmod", ""))
    if published is not None and published < oldest:
        sitemap.old += 1
        return
    sitemap.entries.append(Entry(url, published, clean_title(fields.get("title", "")),
                                 normalise_language(fields.get("language", ""))))


def _fields(element: etree._Element) -> dict[str, str]:
    """loc and lastmod, and the news extension's title, publication_date and publication/language; matched by
    local name (publishers get the namespaces wrong often enough that names alone are read)."""
    found: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local in ("loc", "lastmod"):
            found.setdefault(local, clean_text(child.text or ""))
        elif local == "news" and "title" not in found:
            for part in child:
                if not isinstance(part.tag, str):
                    continue
                name = etree.QName(part).localname
                if name in ("title", "publication_date"):
                    found.setdefault(name, clean_text(part.text or ""))
                elif name == "publication":
                    for detail in part:
                        if isinstance(detail.tag, str) and etree.QName(detail).localname == "language":
                            found.setdefault("language", clean_text(detail.text or ""))
    return found


_PARSER = hardened_parser(remove_comments=True, remove_pis=True)


def _link(value: str, base_url: str) -> str:
    return canonical_url(value, base_url) if value else ""  # http(s) only, or ""


def _parse_xml(body: bytes) -> etree._Element:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        message = clean_text(str(exc.msg if getattr(exc, "msg", None) else exc)).split(" (line")[0][:160]
        raise ParseError(f"not a usable sitemap: not well-formed XML ({message}){line}") from None
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot use
        raise ParseError(f"not a usable sitemap: {clean_text(str(exc))[:160]}") from None
    if root is None:
        raise ParseError("not a usable sitemap: no root element")
    if root.getroottree().docinfo.doctype:
        raise ParseError("not a usable sitemap: a DOCTYPE is not allowed in a sitemap")
    return root


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """A gzipped sitemap (.xml.gz served as-is), decompressed under the same cap as any fetched body."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise ParseError(f"not a usable sitemap: broken gzip ({exc})") from None
    if len(out) > max_bytes:
        raise ParseError(f"sitemap exceeds the {max_bytes}-byte cap once decompressed")
    if not inflater.eof:
        raise ParseError("not a usable sitemap: truncated gzip")
    return out
