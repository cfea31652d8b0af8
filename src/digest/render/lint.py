"""A linter for rendered messages: the header, MIME and HTML rules every digest must keep.

Used by the tests on real rendered messages and by previews; returns a list of problems
(empty means clean) rather than raising, so a caller can show all of them at once.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import lxml.html

from digest.render.clip import CLIP_LIMIT
from digest.render.digest_email import PREHEADER_FILLER, PREHEADER_MAX, PREHEADER_MIN

ONE_EACH = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")
BULK_ONE_EACH = ("list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id")
DKIM_MUST_SIGN = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                  "list-unsubscribe", "list-unsubscribe-post", "feedback-id")
STYLE_LIMIT = 16 * 1024
FORBIDDEN_TAGS = ("script", "form", "iframe", "object", "embed", "input")


def lint_message(raw: bytes, *, bulk: bool = True) -> list[str]:
    problems: list[str] = []
    if re.search(rb"[^\r]\n|\r[^\n]", raw):
        problems.append("bare LF or CR: lines must end in CRLF")
    if any(len(line) > 998 for line in raw.split(b"\r\n")):
        problems.append("a line is longer than 998 octets")
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
             for line in head.split(b"\r\n") if line and line[:1] not in (b" ", b"\t")]
    for name in ONE_EACH + (BULK_ONE_EACH if bulk else ()):
        if names.count(name) != 1:
            problems.append(f"header {name} appears {names.count(name)} times, expected once")
    if re.search(rb"[\x80-\xff]", head):
        problems.append("raw 8-bit bytes in the header block")
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    if not str(msg.get("Date", "")).endswith("+0000"):
        problems.append("Date is not in +0000")
    if not re.fullmatch(r"<[^<>@\s]+@[A-Za-z0-9.-]+>", str(msg.get("Message-ID", ""))):
        problems.append("Message-ID is not <id@domain>")
    unsubscribe = _raw_header(head, b"list-unsubscribe")
    if bulk:
        if b"=?" in unsubscribe:
            problems.append("List-Unsubscribe is RFC 2047-encoded")
        if b"<https://" not in unsubscribe or b"<mailto:" not in unsubscribe:
            problems.append("List-Unsubscribe needs an https and a mailto URI")
        if str(msg.get("List-Unsubscribe-Post", "")) != "List-Unsubscribe=One-Click":
            problems.append("List-Unsubscribe-Post is not List-Unsubscribe=One-Click")
    problems += _lint_dkim(head)
    if msg.get_content_type() != "multipart/alternative":
        problems.append("not multipart/alternative")
    else:
        parts = [p.get_content_type() for p in msg.iter_parts()]
        if parts != ["text/plain", "text/html"]:
            problems.append(f"parts are {parts}, expected text/plain then text/html")
        for part in msg.iter_parts():
            if part.get_content_charset() != "utf-8":
                problems.append(f"{part.get_content_type()} is not UTF-8")
        html_part = msg.get_body(("html",))
        if html_part is not None:
            problems += lint_html(html_part.get_content())
    return problems


def _raw_header(head: bytes, name: bytes) -> bytes:
    match = re.search(rb"(?im)^" + name + rb":([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
    return match.group(1) if match else b""


def _lint_dkim(head: bytes) -> list[str]:
    problems = []
    for match in re.finditer(rb"(?im)^dkim-signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head):
        tags = dict(t.strip().split(b"=", 1) for t in re.sub(rb"\s+", b"", match.group(1)).split(b";") if b"=" in t)
        signed = tags.get(b"h", b"").decode().lower().split(":")
        missing = [h for h in DKIM_MUST_SIGN if h not in signed]
        if missing:
            problems.append(f"DKIM h= does not cover {', '.join(missing)}")
        if signed.count("from") < 2:
            problems.append("DKIM does not over-sign From")
        if tags.get(b"c") != b"relaxed/relaxed":
            problems.append("DKIM canonicalisation is not relaxed/relaxed")
    return problems


def lint_html(html: str) -> list[str]:
    problems: list[str] = []
    size = len(html.encode("utf-8"))
    if size > CLIP_LIMIT:
        problems.append(f"HTML is {size} bytes; Gmail clips past ~102 KB")
    doc = lxml.html.document_fromstring(html)
    if not doc.get("lang"):
        problems.append("<html> has no lang")
    if not (doc.findtext(".//title") or "").strip():
        problems.append("no <title>")
    styles = "".join(s.text or "" for s in doc.iter("style"))
    if len(styles.encode()) > STYLE_LIMIT:
        problems.append(f"<style> totals {len(styles.encode())} bytes; Gmail drops it past 16 KB")
    for block in re.findall(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)[^{}]*\}", styles):
        for declarations in re.findall(r"\{([^{}]*)\}", block):
            if declarations.strip() and "!important" not in declarations:
                problems.append(f"@media rule without !important: {declarations.strip()[:60]}")
    for img in doc.iter("img"):
        if img.get("alt") is None:
            problems.append(f"img without alt: {img.get('src')}")
        if not (img.get("src") or "").startswith("https://"):
            problems.append(f"img src is not https: {img.get('src')}")
    hidden = [d for d in doc.iter("div") if "display:none" in (d.get("style") or "").replace(" ", "")]
    if len(hidden) != 1:
        problems.append(f"{len(hidden)} preheaders, expected exactly one")
    else:
        text = hidden[0].text_content().strip(PREHEADER_FILLER + " ")
        if not PREHEADER_MIN <= len(text) <= PREHEADER_MAX:
            problems.append(f"preheader is {len(text)} characters, expected {PREHEADER_MIN}–{PREHEADER_MAX}")
    if "max-width:600px" not in html.replace(" ", ""):
        problems.append("no 600 px container")
    if html.count("<!--[if") != html.count("<![endif]-->"):
        problems.append("unbalanced <!--[if …]> / <![endif]--> conditional comments")
    for tag in FORBIDDEN_TAGS:
        if next(doc.iter(tag), None) is not None:
            problems.append(f"<{tag}> is not allowed in email")
    for a in doc.iter("a"):
        href = a.get("href") or ""
        if not href.startswith(("https://", "mailto:")):
            problems.append(f"link is not https/mailto: {href[:80]}")
    return problems
