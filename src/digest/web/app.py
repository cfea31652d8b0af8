"""The Starlette application: public pages, preference centre, admin UI and REST API.

    public.py        /healthz, /, /subscribe, /confirm/{token}, /u/{token}   (no cookies)
    preferences.py   /p/{token}, /p/{token}/export, /p/{token}/delete         (signed link, no login)
    admin/           /admin/…   login, CSRF on every form, roles admin / viewer
    api/             /api/…     bearer tokens, /api/openapi.json
    errors.py        every exception → one status code, in one place
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from digest.config import Settings
from digest.db import audience as queries
from digest.db.session import Database, open_database
from digest.errors import DigestError
from digest.runtime import settle_heap
from digest.web import admin, api, preferences, public
from digest.web.context import WebContext, page
from digest.web.errors import handle
from digest.web.security import SecurityHeaders

__all__ = ["create_app", "page"]


def create_app(settings: Settings, database: Database | None = None) -> Starlette:
    database = database or open_database(settings.database.url)
    with database.session() as session:  # the lists the pages offer exist as rows from the start
        lists = queries.sync_lists(session, settings.lists)
    ctx = WebContext.create(settings, database, lists)
    routes = [*public.routes(ctx), *preferences.routes(ctx), *admin.routes(ctx), *api.routes(ctx)]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={DigestError: handle, HTTPException: handle, Exception: handle})
    app.state.context = ctx
    return app


def app_from_environment() -> Starlette:
    """The app for `uvicorn --factory` worker processes: config from DIGEST_CONFIG and the environment."""
    from digest.config import load_settings

    app = create_app(load_settings(require_file=True))
    settle_heap()
    return app
