"""Header values built by hand where the email package gets them wrong for bulk mail.

`email` RFC 2047-encodes anything long (a List-Unsubscribe URL becomes unreadable) and leaves
non-ASCII display names raw in some paths; here encoded words appear only where a phrase is
not ASCII, addresses go out with punycode domains, and nothing carries CR or LF.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from email import policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from digest.errors import RenderError

MAX_LINE = 998
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$")
_ENCODED_WORD_BYTES = 45  # 45 bytes → 60 base64 chars: "=?utf-8?b?…?=" stays within 75


def one_line(value: str) -> str:
    """Collapse all whitespace, CR and LF included: a hostile title cannot start a new header."""
    return " ".join((value or "").split())


def ascii_header_value(name: str, value: str) -> str:
    if not value.isascii() or "\r" in value or "\n" in value:
        raise RenderError(f"{name} must be one line of ASCII: {value!r}")
    return value


@lru_cache(maxsize=4096)
def punycode_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise RenderError(f"not a valid domain: {domain!r}") from None


def punycode_address(email: str) -> str:
    local, _, domain = email.strip().rpartition("@")
    if not local or not domain:
        raise RenderError(f"not an email address: {email!r}")
    return f"{local}@{punycode_domain(domain)}"


def encode_phrase(text: str, fold: bool = True) -> str:
    """A display name: bare if atext, quoted if other ASCII, RFC 2047 words (≤ 75 chars each) otherwise."""
    text = one_line(text)
    if not text:
        return ""
    if _ATEXT_PHRASE.match(text):
        return text
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return ("\r\n " if fold else " ").join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def mailbox(name: str, email: str, fold: bool = True) -> str:
    address = punycode_address(email)
    phrase = encode_phrase(name[:120] if name else "", fold)
    return f"{phrase} <{address}>" if phrase else address


def mailbox_from_header(value: str, fold: bool = True) -> str:
    """`Name <addr>` from config, re-encoded: punycode domain, encoded words only if needed."""
    name, address = parseaddr(one_line(value))
    if "@" not in address:
        raise RenderError(f"not a sender address: {value!r}")
    return mailbox(name, address, fold)


def fold_unstructured(name: str, value: str) -> str:
    """'Name: value\\r\\n', folded at 78 with encoded words only around non-ASCII words."""
    value = one_line(value)
    line = f"{name}: {value}\r\n"
    if value.isascii() and len(line) <= 80:
        return line
    # header_factory(...).fold encodes only the non-ASCII words; policy.fold(name, str) would not encode at all.
    return policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP)  # type: ignore[no-any-return]


def list_id(name: str, slug: str, domain: str) -> str:
    """RFC 2919 List-Id: `"Daily Digest" <daily.example.org>`; a non-ASCII label in encoded words."""
    name = one_line(name).replace('"', "'")[:100]
    label = f'"{name}"' if name.isascii() and name else encode_phrase(name, fold=False)
    ident = f"{slug}.{punycode_domain(domain)}"
    return f"{label} <{ident}>" if label else f"<{ident}>"


def list_unsubscribe(https_url: str, mailto: str = "") -> str:
    """The List-Unsubscribe line, folded between URIs only (never encoded words)."""
    uris = [f"<{ascii_header_value('List-Unsubscribe', u)}>" for u in (https_url, mailto) if u]
    line = "List-Unsubscribe: " + ", ".join(uris) + "\r\n"
    if len(line) > 80 and len(uris) == 2:
        line = f"List-Unsubscribe: {uris[0]},\r\n {uris[1]}\r\n"
    if any(len(part) > MAX_LINE for part in line.split("\r\n")):
        raise RenderError("List-Unsubscribe URL is longer than an SMTP line allows")
    return line


_date_cache: tuple[int, str] = (-1, "")


def date_header(when: dt.datetime | None = None) -> str:
    """RFC 5322 date in UTC with +0000; cached per second (it is asked for per recipient)."""
    global _date_cache
    when = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    second = int(when.timestamp())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(when.replace(microsecond=0)))
    return _date_cache[1]


def sender_domain(from_header: str) -> str:
    return parseaddr(from_header)[1].rsplit("@", 1)[-1].lower()


def default_unsubscribe_mailto(from_header: str) -> str:
    """mailto: for List-Unsubscribe: the sender with a fixed subject (no per-recipient data)."""
    address = punycode_address(parseaddr(from_header)[1])
    return f"mailto:{address}?subject=unsubscribe"
