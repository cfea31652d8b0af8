"""What every view needs: settings, database, signer, limits, templates, and running blocking work off the loop."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from digest.audience.signup import Origin
from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db.models import MailingList
from digest.db.session import Database
from digest.web.ratelimit import Limit
from digest.web.writer import GroupWriter

T = TypeVar("T")

_pages = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                     autoescape=select_autoescape(default=True))
_pages.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)


def page(template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(template).render(**context), status_code=status_code, headers=headers)


def wants_json(request: Request) -> bool:
    """One view, two faces: `?format=json` or an Accept header that prefers JSON gets the data itself."""
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def respond(request: Request, template: str, data: dict[str, Any], **extra: Any) -> Response:
    if wants_json(request):
        return JSONResponse(json.loads(json.dumps(data, default=_plain)))
    return page(template, **data, **extra)


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return getattr(value, "value", str(value))


@dataclass
class WebContext:
    settings: Settings
    database: Database
    signer: Signer
    subscribe_per_ip: Limit
    subscribe_per_address: Limit
    login_per_ip: Limit = field(default_factory=lambda: Limit("login-ip", limit=30, window=900))
    # The configured lists as rows, loaded once: they change only with the config (and a restart).
    lists: dict[str, MailingList] = field(default_factory=dict)
    _writer: GroupWriter | None = None

    @classmethod
    def create(cls, settings: Settings, database: Database, lists: dict[str, MailingList] | None = None) -> WebContext:
        web = settings.web
        return cls(settings=settings, database=database, signer=Signer(settings.secret_key()), lists=lists or {},
                   _writer=GroupWriter(database) if database.is_sqlite else None,
                   subscribe_per_ip=Limit("subscribe-ip", web.subscribe_per_ip_hour, 3600),
                   subscribe_per_address=Limit("subscribe-address", web.subscribe_per_address_day, 86400))

    async def db(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(session, *args)` in a transaction off the event loop, so database waits never block it.

        On SQLite every transaction is a write transaction (BEGIN IMMEDIATE) and they run one at a time
        anyway, so one writer thread commits the queued units together (`web/writer.py`). PostgreSQL runs
        them concurrently on the thread pool, one transaction each.
        """
        if self._writer is not None:
            return await self._writer.run(work, *args)

        def unit() -> T:
            with self.database.session() as session:
                return work(session, *args)

        return await run_in_threadpool(unit)

    def origin(self, request: Request, source: str) -> Origin:
        return Origin(ip=client_ip(request), source=source, wording_version=self.settings.web.consent_version)


def client_ip(request: Request) -> str:
    # uvicorn rewrites the client from X-Forwarded-For for trusted proxies (--forwarded-allow-ips).
    return request.client.host if request.client else "unknown"
