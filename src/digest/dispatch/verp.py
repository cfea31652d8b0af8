"""VERP envelope senders: bounces+<delivery id>-<tag>@bounce-domain.

A bounce comes back to the envelope sender (the receiving MTA writes it into Return-Path), so
the address alone names the delivery. The tag is an HMAC of the id: a forged report cannot name
a delivery, so it cannot get an address suppressed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from digest.config import BounceSettings


def _tag(secret: bytes, delivery_id: int) -> str:
    digest = hmac.new(secret, f"verp:{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:12]


def verp_address(delivery_id: int, secret: bytes, settings: BounceSettings) -> str:
    return f"{settings.local_part}+{delivery_id}-{_tag(secret, delivery_id)}@{settings.domain.lower()}"


def parse_verp(address: str, secret: bytes, settings: BounceSettings) -> int | None:
    """The delivery id of a genuine VERP address; None for anything else (including a bad tag)."""
    pattern = rf"^{re.escape(settings.local_part)}\+(\d{{1,18}})-([a-z2-7]{{12}})@{re.escape(settings.domain.lower())}$"
    match = re.match(pattern, address.strip().strip("<>").lower())
    if not match:
        return None
    delivery_id = int(match.group(1))
    return delivery_id if hmac.compare_digest(match.group(2), _tag(secret, delivery_id)) else None


def find_verp(candidates: list[str], secret: bytes, settings: BounceSettings) -> int | None:
    """The first genuine VERP address among header values (Delivered-To, X-Original-To, To …)."""
    pattern = re.compile(rf"{re.escape(settings.local_part)}\+\d+-[a-z2-7]+@{re.escape(settings.domain.lower())}", re.I)
    for value in candidates:
        for found in pattern.findall(value or ""):
            delivery_id = parse_verp(found, secret, settings)
            if delivery_id is not None:
                return delivery_id
    return None
