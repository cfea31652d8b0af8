"""Public pages: subscribe (double opt-in), confirm, RFC 8058 one-click unsubscribe, /healthz.

Nothing here sets a cookie, and every answer to the subscribe form reads the same whether the address
is new, known, suppressed or rate-limited, so the form cannot be used to learn who subscribes.
"""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import available_timezones

from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.audience.addresses import normalise_address
from digest.audience.confirmations import queue_confirmations
from digest.audience.preferences import languages, offered_topics
from digest.audience.signup import confirm_subscription, request_subscription, withdraw
from digest.audience.subscribers import validate_row
from digest.audience.tokens import Scope
from digest.db import audience as queries
from digest.db.models import MailingList, Subscription
from digest.errors import AudienceError, TokenError
from digest.web.context import WebContext, client_ip, page
from digest.web.errors import NotFound, RateLimited

ZONES = sorted(available_timezones())
CHECK_INBOX = "If the address can receive mail, a confirmation message is on its way. Open it and press the link to start."


def subscription_from(session: Session, ctx: WebContext, scope: Scope, token: str) -> tuple[Subscription, MailingList]:
    """The subscription a signed link points at; TokenError (a clear 400 page) for anything else."""
    subscriber_id, list_id = ctx.signer.read(scope, token)
    sub = queries.subscription(session, list_id, subscriber_id)
    if sub is None:
        raise TokenError("this link is not valid any more")
    cached = next((row for row in ctx.lists.values() if row.id == list_id), None)
    return sub, cached or sub.mailing_list


def routes(ctx: WebContext) -> list[Route]:
    settings = ctx.settings

    async def healthz(request: Request) -> Response:
        try:  # through the same path as every request: a stuck writer shows here
            await ctx.db(lambda session: session.execute(text("SELECT 1")))
        except Exception as exc:  # report, don't crash the probe
            return JSONResponse({"status": "error", "database": exc.__class__.__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def home(request: Request) -> Response:
        lists = [{"slug": c.slug, "name": c.name, "description": c.description,
                  "topics": offered_topics(settings, c)} for c in settings.lists]
        return page("subscribe.html", title="Subscribe", lists=lists, zones=ZONES, languages=languages(),
                    consent_text=settings.web.consent_text, hours=range(24))

    async def subscribe(request: Request) -> Response:
        form = await request.form()
        done = page("base.html", title="Check your inbox", message=CHECK_INBOX)
        if str(form.get("website", "")).strip():  # honeypot: bots fill every field
            return done
        ip = client_ip(request)
        slugs = [str(v) for v in form.getlist("list")] or [""]
        known = {c.slug for c in settings.lists}
        if any(slug not in known for slug in slugs):
            raise NotFound("that list does not exist")
        email = normalise_address(str(form.get("email", "")))
        data = validate_row({"email": email, "name": str(form.get("name", "")),
                             "timezone": str(form.get("timezone", "") or "UTC"),
                             "send_hour": str(form.get("send_hour", "")), "locale": str(form.get("locale", "") or "en"),
                             "topics": ";".join(str(t) for t in form.getlist("topics")),
                             "frequency": str(form.get("frequency", "") or "daily"),
                             "weekly_day": str(form.get("weekly_day", "") or "mon")})
        if data.locale not in languages():
            raise AudienceError(f"language must be one of {', '.join(languages())}")
        origin = ctx.origin(request, f"web:{ip}")

        def record(session: Session) -> None:
            # One transaction: the limits' counters, the pending subscriptions, their consent records and the
            # queued confirmation mails. The mailer process sends those; this request never waits on SMTP.
            if not ctx.subscribe_per_ip.allow(session, ip):
                raise RateLimited("too many subscribe requests from your network; please try again in an hour")
            if not ctx.subscribe_per_address.allow(session, email):
                return  # same answer: nobody learns whether the address is known
            pending = []
            for slug in dict.fromkeys(slugs):
                mailing_list = ctx.lists.get(slug) or queries.list_by_slug(session, slug)
                if mailing_list is None:
                    continue
                offered = offered_topics(settings, settings.get_list(slug))
                choice = replace(data, topics=[t for t in data.topics if t in offered])
                due = request_subscription(session, mailing_list, choice, origin)
                if due:
                    pending.append(due)
            queue_confirmations(session, pending)

        await ctx.db(record)
        return done

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":  # link scanners prefetch: a GET only shows the button
            _, mailing_list = await ctx.db(subscription_from, ctx, "confirm", token)
            return page("action.html", title=f"Confirm {mailing_list.name}", action=f"/confirm/{token}",
                        message="Press the button to start receiving this list.", button="Confirm subscription")
        origin = ctx.origin(request, "web")

        def apply(session: Session) -> tuple[bool, str, str]:
            sub, mailing_list = subscription_from(session, ctx, "confirm", token)
            confirm_subscription(session, sub, origin)
            preferences = ctx.signer.make("preferences", sub.subscriber_id, sub.list_id)
            return sub.status.value == "unsubscribed", mailing_list.name, preferences

        gone, name, preferences = await ctx.db(apply)
        if gone:
            raise TokenError("you unsubscribed after this link was sent; subscribe again from the form")
        return page("confirmed.html", title="Subscribed", message=f"You will receive {name}.",
                    preferences=f"/p/{preferences}")

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":  # link scanners prefetch: a GET changes nothing
            _, mailing_list = await ctx.db(subscription_from, ctx, "unsubscribe", token)
            return page("action.html", title=f"Unsubscribe from {mailing_list.name}", action=f"/u/{token}",
                        message="Press the button to stop receiving this list.", button="Unsubscribe")
        form = await request.form()  # RFC 8058: form-encoded or multipart, no cookie, no redirect
        one_click = form.get("List-Unsubscribe") == "One-Click"
        origin = ctx.origin(request, "one-click" if one_click else "web")

        def apply(session: Session) -> str:
            sub, mailing_list = subscription_from(session, ctx, "unsubscribe", token)
            withdraw(session, sub, origin, how=origin.source)
            return mailing_list.name

        name = await ctx.db(apply)
        if one_click:
            return PlainTextResponse("unsubscribed\n")
        return page("base.html", title="Unsubscribed", message=f"You will not receive {name} any more.")

    return [
        Route("/healthz", healthz),
        Route("/", home),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
    ]
