"""The admin UI (login required): every route goes through `Guard`, which checks session, CSRF and role."""

from __future__ import annotations

from starlette.routing import Route

from digest.web.admin import audience, delivery, login
from digest.web.admin.guard import Guard
from digest.web.context import WebContext
from digest.web.security import Sessions


def routes(ctx: WebContext) -> list[Route]:
    guard = Guard(ctx, Sessions(ctx.settings))
    return [*login.routes(guard), *delivery.routes(guard), *audience.routes(guard)]
