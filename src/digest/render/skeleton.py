"""Frozen message skeletons: a variant's headers and both MIME parts serialised once.

Building an `EmailMessage` per recipient costs 2–6 ms; here the constant bytes (static headers,
quoted-printable text and HTML around the placeholders) are prepared once per (edition,
variant), and a recipient costs a few small encodings and one `bytes.join`.

How placeholders survive the transfer encoding: the compiled text is split on its placeholders
*before* encoding; each literal piece is quoted-printable encoded on its own and ends in a soft
line break, so a recipient's value (encoded for its context: HTML-escaped, then QP) always
starts a fresh encoded line and no line passes 76 characters. The encoder also escapes tabs and
repeated spaces, so the body is already in DKIM "relaxed" canonical form (cheap to hash).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from digest.errors import RenderError
from digest.render.digest_email import PLACEHOLDER_FIELDS, _placeholder_pattern
from digest.render.headers import (ascii_header_value, date_header, fold_unstructured, list_unsubscribe,
                                   mailbox, mailbox_from_header)

_QP_ESCAPE = re.compile(rb"[^\x20-\x3c\x3e-\x7e]|(?<= ) | $")
_QP_TABLE = [b"=%02X" % i for i in range(256)]
_SOFT_BREAK = b"=\r\n"
QP_LINE = 76


def qp_encode(text: str, reserve: int = 0) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF; no tab, no run of spaces, no line over 76.

    `reserve` keeps that many columns free on the last line (for a soft break appended after it).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[bytes] = []
    for number, line in enumerate(lines, 1):
        escaped = _QP_ESCAPE.sub(lambda m: _QP_TABLE[m.group()[0]], line.encode("utf-8")) if line else b""
        start, end = 0, len(escaped)
        limit = QP_LINE - reserve if number == len(lines) else QP_LINE
        while end - start > limit:
            cut = start + limit - 1
            if escaped[cut - 1] == 61:  # never split "=XX"
                cut -= 1
            elif escaped[cut - 2] == 61:
                cut -= 2
            out.append(escaped[start:cut] + b"=")
            start = cut
        out.append(escaped[start:])
    return b"\r\n".join(out)


def _qp_piece(text: str) -> bytes:
    """A piece that a placeholder follows or precedes: ends on a line boundary (soft break if needed)."""
    if not text:
        return b""
    encoded = qp_encode(text, reserve=1)
    return encoded if encoded.endswith(b"\r\n") else encoded + _SOFT_BREAK


@dataclass
class Recipient:
    """What differs per recipient. URLs are plain (unescaped); names are plain text."""

    email: str
    message_id: str
    name: str = ""
    date: dt.datetime | None = None
    greeting_html: str = ""
    greeting_text: str = ""
    unsubscribe_url: str = ""
    preferences_url: str = ""
    confirm_url: str = ""
    subscribe_url: str = ""


class MessageSkeleton:
    """A multipart/alternative message with holes for one recipient's values."""

    def __init__(self, *, html_body: str, text_body: str, token: str, subject: str, from_header: str,
                 list_id: str = "", feedback_id: str = "", unsubscribe_mailto: str = "", bulk: bool = True,
                 one_click: bool = True, boundary: str | None = None) -> None:
        self.boundary = boundary or f"=_digest_{secrets.token_hex(12)}"  # "=" never occurs in QP text
        self.one_click = one_click
        self.unsubscribe_mailto = unsubscribe_mailto
        self._head = fold_unstructured("Subject", subject) if subject else ""
        self._from = f"From: {mailbox_from_header(from_header)}\r\n"
        tail = ["MIME-Version: 1.0\r\n", f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n']
        if list_id:
            tail.append(f"List-Id: {ascii_header_value('List-Id', list_id)}\r\n")
        self._tail_before_unsubscribe = "".join(tail)
        after: list[str] = []
        if feedback_id:
            after.append(f"Feedback-ID: {ascii_header_value('Feedback-ID', feedback_id)}\r\n")
        if bulk:
            after += ["Precedence: bulk\r\n", "Auto-Submitted: auto-generated\r\n",
                      "X-Auto-Response-Suppress: OOF, AutoReply\r\n"]
        self._tail_after_unsubscribe = "".join(after)
        self._literals, self._fields = self._body(html_body, text_body, token)
        self.fields = frozenset(self._fields)

    def _body(self, html_body: str, text_body: str, token: str) -> tuple[list[bytes], list[str]]:
        pattern = _placeholder_pattern(token)
        boundary = self.boundary.encode("ascii")
        literals: list[bytes] = []
        fields: list[str] = []
        pending = b"--" + boundary + b"\r\n"
        for prefix, subtype, body in (("T", "plain", text_body), ("H", "html", html_body)):
            pending += (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii")
            pieces = pattern.split(body)
            for index, piece in enumerate(pieces):
                if index % 2:
                    if piece not in PLACEHOLDER_FIELDS:
                        raise RenderError(f"unknown placeholder {piece!r} in a compiled body")
                    literals.append(pending)
                    fields.append(f"{prefix}{piece}")
                    pending = b""
                elif index == len(pieces) - 1:
                    pending += qp_encode(piece) + b"\r\n"  # this CRLF belongs to the boundary line
                else:
                    pending += _qp_piece(piece)
            pending += b"--" + boundary + (b"\r\n" if prefix == "T" else b"--\r\n")
        literals.append(pending)
        return literals, fields

    def headers(self, recipient: Recipient) -> str:
        unsubscribe = ""
        if recipient.unsubscribe_url or self.unsubscribe_mailto:
            unsubscribe = list_unsubscribe(recipient.unsubscribe_url, self.unsubscribe_mailto)
            if self.one_click and recipient.unsubscribe_url:
                unsubscribe += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        message_id = ascii_header_value("Message-ID", recipient.message_id)
        return (f"{self._from}To: {mailbox(recipient.name, recipient.email)}\r\n{self._head}"
                f"Date: {date_header(recipient.date)}\r\nMessage-ID: {message_id}\r\n"
                f"{self._tail_before_unsubscribe}{unsubscribe}{self._tail_after_unsubscribe}")

    def render(self, recipient: Recipient) -> bytes:
        """The whole message for one recipient, CRLF line endings, ready for SMTP (and DKIM)."""
        values = self._values(recipient)
        literals = self._literals
        out = [self.headers(recipient).encode("ascii"), b"\r\n", literals[0]]
        for index, name in enumerate(self._fields, 1):
            out.append(values[name])
            out.append(literals[index])
        return b"".join(out)

    def _values(self, r: Recipient) -> dict[str, bytes]:
        plain = {"GREETING": r.greeting_text, "UNSUBSCRIBE": r.unsubscribe_url, "PREFERENCES": r.preferences_url,
                 "CONFIRM": r.confirm_url, "SUBSCRIBE": r.subscribe_url}
        values: dict[str, bytes] = {}
        for name in self.fields:
            kind, key = name[0], name[1:]
            if kind == "T":
                values[name] = _encode_value(plain[key])
            elif key == "GREETING":
                values[name] = _encode_value(r.greeting_html)  # already HTML (the name escaped by greeting())
            else:
                values[name] = _encode_value(html.escape(plain[key]))
        return values


# Printable ASCII that quoted-printable keeps as it is (no "=", no space): a signed link, nearly always.
_QP_LITERAL = re.compile(r"[!-<>-~]+")


def _encode_value(value: str) -> bytes:
    """`_qp_piece` of a recipient's value. A per-recipient link (most values) is only cut into lines: no
    escaping to do and no point caching it; anything else goes through the encoder, cached."""
    if _QP_LITERAL.fullmatch(value):
        raw, start, lines = value.encode("ascii"), 0, []
        while len(raw) - start > QP_LINE - 1:  # as qp_encode(reserve=1) cuts: 74 characters and "=", the last ≤ 75
            lines.append(raw[start:start + QP_LINE - 2])
            start += QP_LINE - 2
        lines.append(raw[start:])
        return _SOFT_BREAK.join(lines) + _SOFT_BREAK
    return _encode_general(value)


@lru_cache(maxsize=4096)
def _encode_general(value: str) -> bytes:
    # Values repeat across recipients (greetings without a name): cache them.
    return _qp_piece(value.replace("\r", " ").replace("\n", " "))


@lru_cache(maxsize=64)
def cached_skeleton(html_body: str, text_body: str, token: str, subject: str, from_header: str, list_id: str = "",
                    feedback_id: str = "", unsubscribe_mailto: str = "", bulk: bool = True) -> MessageSkeleton:
    """One skeleton per compiled variant in a worker process (the compiled strings are the key)."""
    return MessageSkeleton(html_body=html_body, text_body=text_body, token=token, subject=subject,
                           from_header=from_header, list_id=list_id, feedback_id=feedback_id,
                           unsubscribe_mailto=unsubscribe_mailto, bulk=bulk)
