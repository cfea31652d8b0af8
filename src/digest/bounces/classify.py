"""What came back: a DSN (RFC 3464), an ARF complaint (RFC 5965), an auto-reply, or a plain bounce.

Standard reports are read field by field (Action, Status, Final-Recipient; Feedback-Type,
Original-Rcpt-To and the original's Message-ID). Non-standard bounces go to flufl.bounce's
heuristic detectors. Auto-replies (RFC 3834 Auto-Submitted, vacation headers and subjects) are
recognised after the reports, because DSNs carry Auto-Submitted too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from digest.bounces.codes import enhanced_status, severity

RANK = {"complaint": 5, "hard": 4, "soft": 3, "delayed": 2, "auto_reply": 1, "unknown": 0}
_AUTO_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|absence|vacation|"
                           r"autoreply|auto:)", re.I)


@dataclass
class Finding:
    email: str
    kind: str  # hard | soft | delayed
    status: str = ""
    diagnostic: str = ""


@dataclass
class Report:
    kind: str  # complaint | hard | soft | delayed | auto_reply | unknown
    findings: list[Finding] = field(default_factory=list)
    original_message_id: str = ""
    feedback_type: str = ""
    detail: str = ""

    @property
    def reason(self) -> str:
        top = next((f for f in self.findings if f.kind == self.kind), None)
        if top is not None:
            return " ".join(x for x in (top.status, top.diagnostic) if x)[:300] or self.kind
        return self.detail or self.feedback_type or self.kind


def parse(data: bytes) -> Message:
    return message_from_bytes(data, policy=email_policy.compat32)


def classify(msg: Message) -> Report:
    if msg.get_content_type() == "multipart/report":
        report_type = (msg.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return _arf(msg)
        if report_type == "delivery-status":
            report = _dsn(msg)
            if report.findings:
                return report
    if _is_auto_reply(msg):
        return Report("auto_reply", detail=str(msg.get("Subject", ""))[:200])
    return _heuristic(msg)


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [message_from_bytes(block.strip().encode("utf-8", "replace") + b"\n", policy=email_policy.compat32)
            for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def _address(value: str | None) -> str:
    """'rfc822; user@example.org' → 'user@example.org'."""
    text = str(value or "").split(";", 1)[-1].strip().strip("<>")
    return text if "@" in text else ""


def _original_message_id(msg: Message) -> str:
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif kind == "text/rfc822-headers":
            headers = parse(part.get_payload(decode=True) or b"")
            if headers.get("Message-ID"):
                return str(headers["Message-ID"]).strip()
    return ""


def _dsn(msg: Message) -> Report:
    findings: list[Finding] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _fields(part)[1:] or _fields(part):
            email = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
            action = str(block.get("Action", "")).strip().lower()
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split(";", 1)[-1].split())
            status = str(block.get("Status", "")).strip() or enhanced_status(diagnostic)
            if not email or action not in ("failed", "delayed"):
                continue
            kind = "delayed" if action == "delayed" else severity(status)
            findings.append(Finding(email, kind, status, diagnostic[:300]))
    kind = max((f.kind for f in findings), key=RANK.__getitem__, default="unknown")
    return Report(kind, findings, original_message_id=_original_message_id(msg))


def _arf(msg: Message) -> Report:
    feedback_type, rcpts = "", []
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _fields(part):
                feedback_type = feedback_type or str(block.get("Feedback-Type", "")).strip().lower()
                rcpts += [_address(v) for v in block.get_all("Original-Rcpt-To", [])]
    findings = [Finding(r, "complaint") for r in rcpts if r]
    return Report("complaint", findings, original_message_id=_original_message_id(msg), feedback_type=feedback_type or "abuse")


def _is_auto_reply(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond")):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(str(msg.get("Subject", ""))))


def _heuristic(msg: Message) -> Report:
    temporary, permanent = all_failures(msg)
    findings = [Finding(_decode(a), "hard") for a in permanent] + [Finding(_decode(a), "soft") for a in temporary]
    if not findings:
        return Report("unknown", detail=str(msg.get("Subject", ""))[:200])
    return Report("hard" if permanent else "soft", findings, original_message_id=_original_message_id(msg))


def _decode(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def sender_address(msg: Message) -> str:
    found = getaddresses([str(v) for v in msg.get_all("From", [])])
    return found[0][1] if found else ""


def says_unsubscribe(msg: Message) -> bool:
    """The mailto: List-Unsubscribe variant: our header fixes the subject to 'unsubscribe'."""
    return "unsubscribe" in str(msg.get("Subject", "")).lower()
