"""Sanitising and normalising what sources send: HTML, text, titles, URLs."""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

# Email-safe allowlist: no script/style/iframe/form, no on* attributes, no classes or ids.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "em", "figcaption", "figure", "h2", "h3", "h4",
    "hr", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "u", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "abbr": {"title"}}
ALLOWED_SCHEMES = {"http", "https", "mailto"}

TRACKING_PARAMS = re.compile(r"^(utm_[a-z_]+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_hsenc|_hsmi|ref_src|cmpid|ocid)$", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def sanitize_html(fragment: str, base_url: str = "") -> str:
    """Keep only email-safe markup; relative links and images become absolute."""
    if not fragment:
        return ""

    def absolutise(element: str, attribute: str, value: str) -> str | None:
        if attribute in {"href", "src"}:
            absolute = urljoin(base_url, value.strip()) if base_url else value.strip()
            return absolute if urlsplit(absolute).scheme in ALLOWED_SCHEMES else None
        return value

    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer",
        attribute_filter=absolutise,
        strip_comments=True,
    ).strip()


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    if not fragment:
        return ""
    bare = nh3.clean(fragment, tags=set(), attributes={}, strip_comments=True)
    return clean_text(html.unescape(bare))


def clean_text(value: str) -> str:
    value = unicodedata.normalize("NFC", value or "")
    value = _CONTROL.sub(" ", value)
    return _SPACES.sub(" ", value).strip()


def clean_title(value: str, limit: int = 300) -> str:
    """One line of plain text: markup dropped, CR/LF and control characters gone."""
    text = html_to_text(value) if "<" in (value or "") else clean_text(html.unescape(value or ""))
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def canonical_url(url: str, base_url: str = "") -> str:
    """Absolute, lower-case host, no fragment, no tracking parameters, sorted query."""
    if not url:
        return ""
    url = urljoin(base_url, url.strip()) if base_url else url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return ""
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k)]
    netloc = (parts.hostname or "").lower()
    if parts.port and not ((parts.scheme == "http" and parts.port == 80) or (parts.scheme == "https" and parts.port == 443)):
        netloc += f":{parts.port}"
    path = parts.path or "/"
    return urlunsplit((parts.scheme, netloc, path, urlencode(sorted(query)), ""))


def safe_link(url: str) -> str:
    """A link we are willing to put in an email: http(s) only, else empty."""
    return url if urlsplit(url or "").scheme in {"http", "https"} else ""
