"""Validating and normalising email addresses (email-validator; IDN domains become punycode)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from digest.errors import AudienceError


def normalise_address(raw: str) -> str:
    """The address as we store it: validated, domain lower-cased and ASCII (punycode)."""
    value = (raw or "").strip()
    if not value:
        raise AudienceError("empty email address")
    if any(c in value for c in "\r\n<>,;"):
        raise AudienceError(f"not a single email address: {value!r}")
    try:
        info = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AudienceError(f"invalid email address {value!r}: {exc}") from None
    domain = info.ascii_domain.lower()
    local = info.ascii_email.rsplit("@", 1)[0] if info.ascii_email else info.local_part
    return f"{local}@{domain}"
