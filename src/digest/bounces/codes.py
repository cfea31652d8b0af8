"""Enhanced status codes (RFC 3463) → hard or soft bounce.

Hard: the address itself is bad (5.1.x: no such user or domain, 5.2.1 disabled mailbox,
5.4.4 unroutable). Soft: everything else that failed — full mailbox (5.2.2), policy or
reputation blocks (5.7.x: not the address's fault), system trouble (5.3.x) and every 4.x.x.
A 5xx reply without an enhanced code counts as hard: that is what a 550 at RCPT means.
"""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD = ("5.1.", "5.2.1", "5.4.4", "5.0.0")


def enhanced_status(text: str) -> str:
    """The first x.y.z status in a reply or diagnostic ('' when none)."""
    match = _ENHANCED.search(text or "")
    return ".".join(match.groups()) if match else ""


def severity(status: str, code: int | None = None) -> str:
    """'hard' or 'soft' for a failed delivery's enhanced status (and SMTP code when there is no status)."""
    if status:
        if not status.startswith("5."):
            return "soft"
        return "hard" if status.startswith(_HARD) else "soft"
    return "hard" if code is not None and 500 <= code < 600 else "soft"
