"""The Starlette application: public pages and /healthz.

Errors map to status codes in one place (`_error_page`): a bad token is 400
with a clear page, an unknown list 404, anything else from digest 400.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.audience.addresses import normalise_address
from digest.audience.confirmations import send_confirmations
from digest.audience.subscribers import SubscriberData, add_subscriber
from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.db.models import MailingList, Subscription, SubscriptionStatus
from digest.db.session import Database, open_database
from digest.errors import AudienceError, TokenError

log = logging.getLogger(__name__)

_pages = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                     autoescape=select_autoescape(default=True))


def page(template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(template).render(**context), status_code=status_code)


class RateLimiter:
    """At most `limit` events per key in a sliding `window` of seconds (in memory, per process)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self._events[key]
        while events and now - events[0] > self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


def create_app(settings: Settings, database: Database | None = None) -> Starlette:
    database = database or open_database(settings.database.url)
    signer = Signer(settings.secret_key())
    per_ip = RateLimiter(limit=10, window=3600)
    per_address = RateLimiter(limit=3, window=86400)

    def subscription_from(scope: str, token: str) -> tuple[Subscription, MailingList]:
        subscriber_id, list_id = signer.read(scope, token)  # type: ignore[arg-type]
        with database.session() as session:
            sub = queries.subscription(session, list_id, subscriber_id)
            if sub is None:
                raise TokenError("this link is not valid any more")
            mailing_list = sub.mailing_list
            return sub, mailing_list

    async def healthz(request: Request) -> Response:
        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, don't crash the probe
            return JSONResponse({"status": "error", "database": str(exc.__class__.__name__)}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def home(request: Request) -> Response:
        return page("subscribe.html", title="Subscribe", lists=settings.lists)

    async def subscribe(request: Request) -> Response:
        form = await request.form()
        done = page("base.html", title="Check your inbox",
                    message="If the address can receive mail, a confirmation message is on its way.")
        if str(form.get("website", "")).strip():  # honeypot: bots fill every field
            return done
        client = request.client.host if request.client else "unknown"
        if not per_ip.allow(client):
            return page("base.html", 429, title="Too many requests", message="Please try again later.")
        slug = str(form.get("list", ""))
        conf = next((c for c in settings.lists if c.slug == slug), None)
        if conf is None:
            return page("base.html", 404, title="No such list", message="That list does not exist.")
        try:
            email = normalise_address(str(form.get("email", "")))
        except AudienceError as exc:
            return page("base.html", 400, title="Check the address", message=str(exc))
        if not per_address.allow(email):
            return done  # same answer: nobody learns whether the address is known
        pending: list[tuple[int, int]] = []
        with database.session() as session:
            lists = queries.sync_lists(session, settings.lists)
            if not queries.is_suppressed(session, email):
                _, sub = add_subscriber(session, lists[slug], SubscriberData(email=email), confirmed=False,
                                        source=f"web:{client}")
                if sub.status == SubscriptionStatus.unsubscribed:
                    sub.status = SubscriptionStatus.pending
                if sub.status == SubscriptionStatus.pending:
                    pending.append((sub.subscriber_id, sub.list_id))
        send_confirmations(database, settings, pending)
        return done

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        sub, mailing_list = subscription_from("confirm", token)
        if request.method == "GET":
            return page("action.html", title=f"Confirm {mailing_list.name}",
                        message="Press the button to start receiving this list.", action=f"/confirm/{token}",
                        button="Confirm subscription")
        with database.session() as session:
            row = session.get(Subscription, sub.id)
            assert row is not None
            queries.confirm(session, row, how="web")
        return page("base.html", title="Subscribed", message=f"You will receive {mailing_list.name}.")

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        sub, mailing_list = subscription_from("unsubscribe", token)
        if request.method == "GET":  # link scanners prefetch: a GET changes nothing
            return page("action.html", title=f"Unsubscribe from {mailing_list.name}",
                        message="Press the button to stop receiving this list.", action=f"/u/{token}",
                        button="Unsubscribe")
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
        with database.session() as session:
            row = session.get(Subscription, sub.id)
            assert row is not None
            queries.unsubscribe(session, row, how="one-click" if one_click else "web")
        if one_click:
            return PlainTextResponse("unsubscribed\n")
        return page("base.html", title="Unsubscribed", message=f"You will not receive {mailing_list.name} any more.")

    async def preferences(request: Request) -> Response:
        token = request.path_params["token"]
        sub, mailing_list = subscription_from("preferences", token)
        unsubscribe_token = signer.make("unsubscribe", sub.subscriber_id, sub.list_id)
        return page("action.html", title=f"{mailing_list.name}: your subscription",
                    message=f"Status: {sub.status.value}. Topics: {', '.join(sub.topics) or 'all'}.",
                    action=f"/u/{unsubscribe_token}", button="Unsubscribe")

    async def _error_page(request: Request, exc: Exception) -> Response:
        return page("base.html", 400, title="This link does not work", message=str(exc))

    routes = [
        Route("/healthz", healthz),
        Route("/", home),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/p/{token}", preferences),
    ]
    return Starlette(routes=routes, exception_handlers={TokenError: _error_page})
