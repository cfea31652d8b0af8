"""What every view needs: settings, database, signer, limits, templates, and running blocking work off the loop."""

from __future__ import annotations

import json
import threading
from contextlib import AbstractContextManager, nullcontext
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
    _writer: AbstractContextManager[Any] = field(default_factory=nullcontext)

    @classmethod
    def create(cls, settings: Settings, database: Database, lists: dict[str, MailingList] | None = None) -> WebContext:
        web = settings.web
        return cls(settings=settings, database=database, signer=Signer(settings.secret_key()), lists=lists or {},
                   _writer=threading.Lock() if database.is_sqlite else nullcontext(),
                   subscribe_per_ip=Limit("subscribe-ip", web.subscribe_per_ip_hour, 3600),
                   subscribe_per_address=Limit("subscribe-address", web.subscribe_per_address_day, 86400))

    async def db(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(session, *args)` in one transaction on a worker thread, so SQLite waits never block the loop.

        On SQLite every transaction here is a write transaction (BEGIN IMMEDIATE), so they run one at a time
        anyway; queueing the threads on a lock, rather than in SQLite's busy handler (which sleeps in steps of
        up to 100 ms), keeps the waits as short as the work.
        """
        def unit() -> T:
            with self._writer, self.database.session() as session:
                return work(session, *args)

        return await run_in_threadpool(unit)

    def origin(self, request: Request, source: str) -> Origin:
        return Origin(ip=client_ip(request), source=source, wording_version=self.settings.web.consent_version)


def client_ip(request: Request) -> str:
    # uvicorn rewrites the client from X-Forwarded-For for trusted proxies (--forwarded-allow-ips).
    return request.client.host if request.client else "unknown"
