"""Per-recipient MIME messages from a compiled body: fill placeholders, add headers, serialise."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr

from digest.render.digest_email import fill

# SMTP line endings; long header values are not folded into RFC 2047 words no client reads.
SMTP_POLICY = policy.SMTP.clone(max_line_length=998)


@dataclass
class Envelope:
    """Everything about one message that is not its body."""

    from_header: str
    to_email: str
    to_name: str
    subject: str
    message_id: str
    list_id: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    feedback_id: str = ""
    bulk: bool = True
    date: dt.datetime | None = None


def sender_domain(from_header: str) -> str:
    return parseaddr(from_header)[1].rsplit("@", 1)[-1].lower()


def punycode_address(email: str) -> str:
    local, _, domain = email.rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = domain
    return f"{local}@{ascii_domain}"


def build_message(envelope: Envelope, *, html_body: str, text_body: str) -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = envelope.from_header
    to_addr = punycode_address(envelope.to_email)
    msg["To"] = formataddr((_one_line(envelope.to_name), to_addr)) if envelope.to_name else to_addr
    msg["Subject"] = _one_line(envelope.subject)
    msg["Date"] = format_datetime((envelope.date or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    msg["Message-ID"] = envelope.message_id
    if envelope.list_id:
        msg["List-Id"] = envelope.list_id
    unsubscribe = [f"<{u}>" for u in (envelope.unsubscribe_url, envelope.unsubscribe_mailto) if u]
    if unsubscribe:
        msg["List-Unsubscribe"] = ", ".join(unsubscribe)
        if envelope.unsubscribe_url:
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if envelope.feedback_id:
        msg["Feedback-ID"] = envelope.feedback_id
    if envelope.bulk:
        msg["Precedence"] = "bulk"
        msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text_body, cte="quoted-printable")
    msg.add_alternative(html_body, subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=SMTP_POLICY)


def personalise(html_body: str, text_body: str, token: str, *, greeting_html: str, greeting_text: str,
                unsubscribe_url: str, preferences_url: str, confirm_url: str = "") -> tuple[str, str]:
    html_values = {"GREETING": greeting_html, "UNSUBSCRIBE": html.escape(unsubscribe_url),
                   "PREFERENCES": html.escape(preferences_url), "CONFIRM": html.escape(confirm_url)}
    text_values = {"GREETING": greeting_text, "UNSUBSCRIBE": unsubscribe_url, "PREFERENCES": preferences_url,
                   "CONFIRM": confirm_url}
    return fill(html_body, token, html_values), fill(text_body, token, text_values)


def _one_line(value: str) -> str:
    return " ".join((value or "").split())


def list_id(name: str, slug: str, domain: str) -> str:
    label = _one_line(name).replace('"', "'")
    return f'"{label}" <{slug}.{domain}>' if label else f"<{slug}.{domain}>"
