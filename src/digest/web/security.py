"""Admin sessions in a signed cookie, CSRF tokens bound to them, and security headers on every response.

The cookie holds a random session id, the user id and the user's session epoch, signed and time-limited
(itsdangerous). Logging in issues a new session id (no fixation); logging out bumps the epoch, which ends
every session of that user. The CSRF token is an HMAC of the session id, so an anonymous visitor (the
login form) has one too; every admin POST must carry it as the `csrf` field or `X-CSRF-Token` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.config import Settings
from digest.web.errors import CsrfError

COOKIE = "digest_admin"
COOKIE_PATH = "/admin"


@dataclass
class AdminSession:
    sid: str
    user_id: int | None = None
    epoch: int = 0
    fresh: bool = False  # set-cookie needed


class Sessions:
    def __init__(self, settings: Settings) -> None:
        secret = settings.secret_key()
        self._serializer = URLSafeTimedSerializer(secret, salt="digest.admin-session")
        self._csrf_key = hmac.new(secret, b"digest.csrf", hashlib.sha256).digest()
        self.max_age = int(settings.web.session_hours * 3600)
        secure = settings.web.cookie_secure
        self.secure = settings.web.base_url.startswith("https://") if secure is None else secure

    def load(self, request: Request) -> AdminSession:
        raw = request.cookies.get(COOKIE, "")
        if raw:
            try:
                sid, user_id, epoch = self._serializer.loads(raw, max_age=self.max_age)
                if isinstance(sid, str) and (user_id is None or isinstance(user_id, int)) and isinstance(epoch, int):
                    return AdminSession(sid, user_id, epoch)
            except (BadSignature, ValueError, TypeError):
                pass
        return AdminSession(secrets.token_urlsafe(24), fresh=True)

    def login(self, user_id: int, epoch: int) -> AdminSession:
        return AdminSession(secrets.token_urlsafe(24), user_id, epoch, fresh=True)

    def save(self, response: Response, session: AdminSession) -> None:
        response.set_cookie(COOKIE, self._serializer.dumps([session.sid, session.user_id, session.epoch]),
                            max_age=self.max_age, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict")

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict")

    def csrf_token(self, session: AdminSession) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: AdminSession, request: Request, submitted: str | None) -> None:
        value = submitted or request.headers.get("x-csrf-token", "")
        if session.fresh or not value or not hmac.compare_digest(value, self.csrf_token(session)):
            raise CsrfError("the form was not sent from this site's page (or it is too old): reload the page and try again")


# Token links must not leak through Referer; pages must not be framed by others; nothing loads from elsewhere.
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "script-src 'self' 'unsafe-inline'; frame-ancestors 'self'; form-action 'self'; "
                                "base-uri 'none'"),
}


class SecurityHeaders:
    """Pure ASGI middleware: adds HEADERS unless the view set its own (the edition preview does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
