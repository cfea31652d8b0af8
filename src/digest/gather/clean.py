"""Sanitising and normalising what sources send: HTML, text, titles, URLs, language tags."""

from __future__ import annotations

import html
import re
import threading
import unicodedata
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import nh3

# Email-safe allowlist: no script/style/iframe/form, no on* attributes, no classes or ids.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "em", "figcaption", "figure", "h2", "h3", "h4",
    "hr", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "u", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "abbr": {"title"}}
ALLOWED_SCHEMES = {"http", "https", "mailto"}
# Dropped with everything inside them: active content, and form/fallback text that is not the article.
DROPPED_WITH_CONTENT = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "button", "select",
    "textarea", "noscript", "template", "svg", "math", "canvas", "audio", "video", "head", "title",
}

TRACKING_PARAMS = re.compile(
    r"^(utm_[a-z_]+|fbclid|gclid|gclsrc|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_hsenc|_hsmi|ref_src|cmpid|ocid"
    r"|_ga|_gl|wt_mc|at_medium|at_campaign|at_custom\d*|s_cid|spm|mkt_tok|oly_anon_id|oly_enc_id|rb_clickid|vero_[a-z]+)$",
    re.I)
# C0/C1 controls, line/paragraph separators, BOM and bidi overrides (which can disguise a title's text).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069]")
_ASCII_CONTROL = str.maketrans({c: " " for c in map(chr, range(128)) if _CONTROL.match(c)})  # the same, for ASCII
_SPACES = re.compile(r"\s+")
_URL_BREAKS = re.compile(r"[\t\r\n]")  # browsers drop these anywhere in a URL (WHATWG); so do we
# Where a block element starts or ends (a lookahead: a space is inserted there, nothing is replaced).
_BLOCK_TAG = re.compile(r"(?=</?(?:p|div|br|li|ul|ol|h[1-6]|blockquote|tr|td|th|table|section|article|header|footer"
                        r"|figure|figcaption|pre|hr|dd|dt)\b)", re.I)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")


def sanitize_html(fragment: str, base_url: str = "") -> str:
    """Keep only email-safe markup; relative links and images become absolute."""
    if not fragment:
        return ""
    # Controls go before (raw) and after (&#27; and friends decode inside nh3).
    outer, _fragment_base.url = getattr(_fragment_base, "url", ""), base_url
    try:
        return clean_controls(_SANITISER.clean(clean_controls(fragment))).strip()
    finally:
        _fragment_base.url = outer


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed; block boundaries separate words."""
    if not fragment:
        return ""
    return clean_text(html.unescape(_TEXT_ONLY.clean(_BLOCK_TAG.sub(" ", fragment))))


# nh3 calls the attribute filter back on the thread that called clean(): the base URL of the fragment being
# sanitised is that thread's.
_fragment_base = threading.local()


def _absolutise(element: str, attribute: str, value: str) -> str | None:
    if attribute in {"href", "src"}:
        base_url = getattr(_fragment_base, "url", "")
        absolute = urljoin(base_url, value.strip()) if base_url else value.strip()
        return absolute if urlsplit(absolute).scheme in ALLOWED_SCHEMES else None
    return value


# Built once: building an nh3 cleaner from these sets costs three times as much as cleaning a typical summary.
_SANITISER = nh3.Cleaner(tags=ALLOWED_TAGS, clean_content_tags=DROPPED_WITH_CONTENT, attributes=ALLOWED_ATTRIBUTES,
                         url_schemes=ALLOWED_SCHEMES, link_rel="noopener noreferrer", attribute_filter=_absolutise,
                         strip_comments=True)
_TEXT_ONLY = nh3.Cleaner(tags=set(), clean_content_tags=DROPPED_WITH_CONTENT, attributes={}, strip_comments=True)


def clean_controls(value: str) -> str:
    """Control characters (other than tab and line feed) become spaces."""
    # str.translate has a fast path for ASCII text (most feeds) that the regular expression's search lacks.
    return value.translate(_ASCII_CONTROL) if value.isascii() else _CONTROL.sub(" ", value)


def clean_text(value: str) -> str:
    value = clean_controls(unicodedata.normalize("NFC", value or ""))
    return " ".join(value.split())  # str.split() and re's \s agree on what whitespace is: runs become one space


def clean_title(value: str, limit: int = 300) -> str:
    """One line of plain text: markup dropped, CR/LF and control characters gone."""
    text = html_to_text(value) if "<" in (value or "") else clean_text(html.unescape(value or ""))
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def canonical_url(url: str, base_url: str = "") -> str:
    """Absolute http(s), lower-case host, no credentials, default port or fragment, no tracking parameters,
    sorted query, dot segments resolved, unsafe characters percent-encoded; "" when not a usable web link."""
    url = _SPACES.sub(" ", clean_controls(_URL_BREAKS.sub("", url or ""))).strip()
    if not url:
        return ""
    try:
        parts = _joined(url, base_url)
        scheme = parts.scheme
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:  # bad IPv6 literal, non-numeric port
        return ""
    if scheme not in {"http", "https"} or not host:
        return ""
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return ""
    netloc = f"[{host}]" if ":" in host else host
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc += f":{port}"
    path = quote(_remove_dot_segments(parts.path or "/"), safe="/%:@!$&'()*+,;=-._~")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k)]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def _joined(url: str, base_url: str) -> SplitResult:
    """urlsplit(urljoin(base_url, url)), without the join when `url` is already absolute http(s) (most links are):
    urljoin then only splits and reassembles it, which changes nothing urlsplit returns."""
    parts = urlsplit(url)
    if base_url and not (parts.scheme in {"http", "https"} and parts.netloc):
        parts = urlsplit(urljoin(base_url, url))
    return parts


def _remove_dot_segments(path: str) -> str:
    if "." not in path:
        return path
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if path.endswith(("/.", "/..")):
        out.append("")
    return "/".join(out) or "/"


def safe_link(url: str) -> str:
    """A link we are willing to put in an email: http(s) only, else empty."""
    try:
        return url if urlsplit(url or "").scheme in {"http", "https"} else ""
    except ValueError:
        return ""


def absolute_url(url: str, base_url: str = "") -> str:
    """`url` resolved against `base_url`, kept only if http(s); unlike canonical_url, the query is left alone
    (image CDNs sign theirs)."""
    url = _SPACES.sub(" ", clean_controls(_URL_BREAKS.sub("", url or ""))).strip()
    if not url:
        return ""
    try:
        url = urljoin(base_url, url) if base_url else url
    except ValueError:
        return ""
    return safe_link(url.replace(" ", "%20"))


def normalise_language(value: str) -> str:
    """A BCP 47-ish tag in lower case ("en-us", "ko"), or "" when the value is not one."""
    tag = clean_text(value or "").replace("_", "-").lower().split(",")[0].strip()[:20]
    return tag if _LANGUAGE.match(tag) else ""
