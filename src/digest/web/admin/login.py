"""Admin login and logout: CSRF even on the login form, per-IP limits, per-account lockout with backoff."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.db.models import AdminUser
from digest.web.accounts import authenticate
from digest.web.admin.guard import AdminRequest, Guard
from digest.web.context import client_ip, page
from digest.web.errors import RateLimited

REFUSED = "Wrong user name or password, or too many attempts: wait a little and try again."


def safe_next(value: str) -> str:
    """Only admin paths on this site: never an open redirect."""
    if value.startswith("/admin") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return "/admin"


def routes(guard: Guard) -> list[Route]:
    ctx, sessions = guard.ctx, guard.sessions
    web = ctx.settings.web

    def form(request: Request, session_csrf: str, status: int = 200, message: str = "") -> Response:
        return page("admin/login.html", status, title="Log in", csrf=session_csrf, message=message,
                    next=safe_next(request.query_params.get("next", "/admin")))

    async def show(request: Request) -> Response:
        session = sessions.load(request)
        response = form(request, sessions.csrf_token(session))
        if session.fresh:
            sessions.save(response, session)
        return response

    async def submit(request: Request) -> Response:
        session = sessions.load(request)
        data = await request.form(max_files=0, max_fields=10)
        sessions.check_csrf(session, request, str(data.get("csrf", "")) or None)
        username, password = str(data.get("username", ""))[:100], str(data.get("password", ""))[:1000]
        ip = client_ip(request)

        def check(db: Session) -> tuple[int, int] | None:
            if not ctx.login_per_ip.allow(db, ip):  # counted across every web process
                raise RateLimited("too many login attempts from your network; wait a few minutes")
            user: AdminUser | None = authenticate(db, username, password, max_failures=web.login_max_failures,
                                                  lockout_seconds=web.login_lockout_seconds)
            return (user.id, user.session_epoch) if user else None

        found = await ctx.db(check)
        if found is None:
            return form(request, sessions.csrf_token(session), 401, REFUSED)
        response = RedirectResponse(safe_next(str(data.get("next", "/admin"))), status_code=303)
        sessions.save(response, sessions.login(*found))  # a new session id: no fixation
        return response

    async def logout(req: AdminRequest) -> Response:
        def end(db: Session) -> None:
            user = db.get(AdminUser, req.principal.user_id)
            if user is not None:
                user.session_epoch += 1  # every copy of the cookie stops working

        await ctx.db(end)
        response = RedirectResponse("/admin/login", status_code=303)
        sessions.clear(response)
        return response

    return [Route("/admin/login", show, methods=["GET"]), Route("/admin/login", submit, methods=["POST"]),
            guard.route("/admin/logout", logout, methods=("POST",))]
