"""The gate in front of every admin page: session → user → CSRF (on every POST) → role.

Admin views are written as `async def view(req: AdminRequest) -> Response` and registered through
`Guard.route`, so no page can forget the login, CSRF or role check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.db.models import AdminUser
from digest.web.accounts import Principal
from digest.web.context import WebContext, respond
from digest.web.errors import BadRequest, Forbidden, LoginRequired
from digest.web.security import AdminSession, Sessions

NAV = [("/admin", "Overview"), ("/admin/lists", "Lists"), ("/admin/subscribers", "Subscribers"),
       ("/admin/sources", "Sources"), ("/admin/editions", "Editions"), ("/admin/deliveries", "Deliveries"),
       ("/admin/suppressions", "Suppressions"), ("/admin/import", "Import")]
MAX_UPLOAD = 20 * 1024 * 1024


@dataclass
class AdminRequest:
    request: Request
    principal: Principal
    session: AdminSession
    csrf: str
    form: FormData = field(default_factory=FormData)

    @property
    def path_params(self) -> dict[str, Any]:
        return self.request.path_params

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def int_query(self, name: str, default: int, low: int = 0, high: int = 10**9) -> int:
        raw = self.query(name)
        if not raw:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise BadRequest(f"{name} must be a whole number from {low} to {high}")
        return int(raw)

    def field(self, name: str) -> str:
        return str(self.form.get(name, "")).strip()

    def page(self, template: str, data: dict[str, Any], **extra: object) -> Response:
        """The page, or its data as JSON (`?format=json`): one view, two faces."""
        return respond(self.request, template, data, user=self.principal, csrf=self.csrf, nav=NAV,
                       path=self.request.url.path, **extra)


View = Callable[[AdminRequest], Awaitable[Response]]


class Guard:
    def __init__(self, ctx: WebContext, sessions: Sessions) -> None:
        self.ctx, self.sessions = ctx, sessions

    async def principal(self, session: AdminSession) -> Principal | None:
        if session.user_id is None:
            return None

        def load(db: Session) -> Principal | None:
            user = db.get(AdminUser, session.user_id)
            if user is None or user.session_epoch != session.epoch:  # logged out or password changed since
                return None
            return Principal(name=user.username, role=user.role, user_id=user.id)

        return await self.ctx.db(load)

    def route(self, path: str, view: View, *, methods: tuple[str, ...] = ("GET",), role: str = "viewer") -> Route:
        async def endpoint(request: Request) -> Response:
            session = self.sessions.load(request)
            principal = await self.principal(session)
            if principal is None:
                raise LoginRequired("log in to use the admin pages")
            form = FormData()
            if request.method == "POST":
                form = await request.form(max_files=1, max_fields=2000, max_part_size=MAX_UPLOAD)
                self.sessions.check_csrf(session, request, str(form.get("csrf", "")) or None)
                if not principal.is_admin and role == "admin":
                    raise Forbidden(f"{principal.name} may look but not change anything (role: {principal.role})")
            elif role == "admin" and not principal.is_admin:
                raise Forbidden(f"this page is for admins (your role: {principal.role})")
            response = await view(AdminRequest(request, principal, session, self.sessions.csrf_token(session), form))
            response.headers.setdefault("cache-control", "no-store")
            return response

        return Route(path, endpoint, methods=list(methods))
