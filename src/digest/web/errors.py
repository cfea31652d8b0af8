"""Errors of the web layer, and the one place every exception becomes a status code.

    DigestError (digest.errors)
    ├── TokenError            400  a signed link is forged, altered, expired or of another scope
    ├── AudienceError         400  bad subscriber data (address, time zone, list)
    ├── ConfigError           500  the server is misconfigured (the page says so, without detail)
    └── WebError              its own `status`
        ├── BadRequest        400  malformed input
        ├── LoginRequired     401  no session / no bearer token (pages redirect to the login form)
        ├── Forbidden         403  the role does not allow it
        ├── CsrfError         403  a form without a valid CSRF token
        ├── NotFound          404
        ├── Conflict          409  the action does not fit the object's state
        └── RateLimited       429  too many requests; try later

/api/… answers JSON `{"error": …}`; every other path an HTML page.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from digest.errors import AudienceError, ConfigError, DigestError, TokenError

log = logging.getLogger(__name__)


class WebError(DigestError):
    status = 400
    title = "Something is wrong with this request"


class BadRequest(WebError):
    status, title = 400, "Check what you sent"


class LoginRequired(WebError):
    status, title = 401, "Please log in"


class Forbidden(WebError):
    status, title = 403, "Not allowed"


class CsrfError(Forbidden):
    title = "This form has expired"


class NotFound(WebError):
    status, title = 404, "Not found"


class Conflict(WebError):
    status, title = 409, "Not possible right now"


class RateLimited(WebError):
    status, title = 429, "Too many requests"


def status_of(exc: Exception) -> tuple[int, str]:
    """(status, page title) for an exception; the whole mapping lives here."""
    if isinstance(exc, WebError):
        return exc.status, exc.title
    if isinstance(exc, TokenError):
        return 400, "This link does not work"
    if isinstance(exc, AudienceError):
        return 400, "Check what you entered"
    if isinstance(exc, ConfigError):
        return 500, "The server is not configured correctly"
    if isinstance(exc, DigestError):
        return 400, "That did not work"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    return 500, "Something went wrong on our side"


async def handle(request: Request, exc: Exception) -> Response:
    from digest.web.context import page  # the page renderer needs the templates; imported late to stay light

    status, title = status_of(exc)
    message = str(exc) if status < 500 else "The problem was logged; please try again later."
    if status >= 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    if isinstance(exc, HTTPException):
        message = exc.detail
    if request.url.path.startswith("/api/") or request.url.path == "/api":
        headers = {"WWW-Authenticate": 'Bearer realm="digest"'} if status == 401 else None
        return JSONResponse({"error": message or title}, status_code=status, headers=headers)
    if isinstance(exc, LoginRequired) and request.method == "GET":
        return RedirectResponse(f"/admin/login?next={quote(request.url.path)}", status_code=303)
    return page("base.html", status, title=title, message=message)
