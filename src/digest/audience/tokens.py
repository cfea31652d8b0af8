"""Signed, scoped tokens for links in emails (HMAC via itsdangerous).

A token made for one scope never validates in another: the scope is the salt.
Unsubscribe tokens do not expire (a years-old email must still unsubscribe);
confirm tokens expire after a week.
"""

from __future__ import annotations

from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digest.errors import TokenError

Scope = Literal["confirm", "unsubscribe", "preferences"]

MAX_AGE: dict[str, int | None] = {"confirm": 7 * 86400, "unsubscribe": None, "preferences": 90 * 86400}


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _serializer(self, scope: Scope) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=f"digest.{scope}")

    def make(self, scope: Scope, subscriber_id: int, list_id: int) -> str:
        return self._serializer(scope).dumps([subscriber_id, list_id])

    def read(self, scope: Scope, token: str) -> tuple[int, int]:
        """(subscriber_id, list_id) from a token; TokenError if forged, altered, expired or of another scope."""
        try:
            value = self._serializer(scope).loads(token, max_age=MAX_AGE[scope])
        except SignatureExpired:
            raise TokenError("this link has expired") from None
        except BadSignature:
            raise TokenError("this link is not valid") from None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            raise TokenError("this link is not valid")
        return value[0], value[1]
