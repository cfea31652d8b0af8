"""Per-recipient messages.

Two ways to the same bytes: `skeleton.MessageSkeleton` (the send path: compiled once per variant,
microseconds per recipient) and `build_message` here, the `email.message.EmailMessage` way
(2–6 ms per message) kept for one-off mails and as the benchmark's baseline.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from digest.render.digest_email import fill
from digest.render.headers import (date_header, list_id, mailbox, mailbox_from_header, one_line,
                                   punycode_address, sender_domain)

__all__ = ["Envelope", "build_message", "personalise", "list_id", "punycode_address", "sender_domain",
           "SMTP_POLICY"]

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


def build_message(envelope: Envelope, *, html_body: str, text_body: str) -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = mailbox_from_header(envelope.from_header, fold=False)
    msg["To"] = mailbox(envelope.to_name, envelope.to_email, fold=False)
    msg["Subject"] = one_line(envelope.subject)
    msg["Date"] = date_header(envelope.date)
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
                unsubscribe_url: str, preferences_url: str, confirm_url: str = "",
                subscribe_url: str = "") -> tuple[str, str]:
    """Both parts with one recipient's values, escaped per part (for `build_message` and previews)."""
    html_values = {"GREETING": greeting_html, "UNSUBSCRIBE": html.escape(unsubscribe_url),
                   "PREFERENCES": html.escape(preferences_url), "CONFIRM": html.escape(confirm_url),
                   "SUBSCRIBE": html.escape(subscribe_url)}
    text_values = {"GREETING": greeting_text, "UNSUBSCRIBE": unsubscribe_url, "PREFERENCES": preferences_url,
                   "CONFIRM": confirm_url, "SUBSCRIBE": subscribe_url}
    return fill(html_body, token, html_values), fill(text_body, token, text_values)
