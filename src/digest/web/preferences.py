"""The preference centre, reached from every email by a signed link (no login, no cookie).

`/p/{token}` shows and changes lists, topics, frequency, send hour, time zone, language and pause;
`/p/{token}/export` downloads everything stored about the person as JSON; `/p/{token}/delete` erases it.
The token is the credential (it reached the mailbox), so these forms need no CSRF token: a forger
would need the link itself.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.audience import preferences as prefs
from digest.db.models import Subscriber
from digest.errors import AudienceError
from digest.web.context import WebContext, page, respond
from digest.web.public import ZONES, subscription_from


def routes(ctx: WebContext) -> list[Route]:
    settings = ctx.settings

    def subscriber_of(session: Session, token: str) -> Subscriber:
        sub, _ = subscription_from(session, ctx, "preferences", token)
        return sub.subscriber

    def render(request: Request, token: str, view: dict[str, Any], message: str = "", status: int = 200) -> Response:
        response = respond(request, "preferences.html", view, title="Your subscription", token=token, zones=ZONES,
                           hours=range(24), weekdays=("mon", "tue", "wed", "thu", "fri", "sat", "sun"), message=message)
        response.status_code = status
        return response

    async def show(request: Request) -> Response:
        token = request.path_params["token"]
        view = await ctx.db(lambda s: prefs.preferences_view(s, settings, subscriber_of(s, token)))
        return render(request, token, view)

    async def change(request: Request) -> Response:
        token = request.path_params["token"]
        form = await request.form()
        values = {key: [str(v) for v in form.getlist(key)] for key in form.keys()}
        origin = ctx.origin(request, "preferences")

        def apply(session: Session) -> dict[str, Any]:
            subscriber = subscriber_of(session, token)
            chosen = prefs.parse_preferences(settings, subscriber.email, values)
            prefs.apply_preferences(session, subscriber, chosen, origin)
            session.flush()
            return prefs.preferences_view(session, settings, subscriber)

        try:
            view = await ctx.db(apply)
        except AudienceError as exc:  # show the form again, with what was wrong
            view = await ctx.db(lambda s: prefs.preferences_view(s, settings, subscriber_of(s, token)))
            return render(request, token, view, message=f"Not saved: {exc}", status=400)
        return render(request, token, view, message="Saved. Your choices apply from the next edition.")

    async def export(request: Request) -> Response:
        token = request.path_params["token"]
        data = await ctx.db(lambda s: prefs.export_data(s, subscriber_of(s, token)))
        body = json.dumps(data, indent=2, ensure_ascii=False).encode()
        return Response(body, media_type="application/json", headers={
            "content-disposition": 'attachment; filename="my-digest-data.json"', "cache-control": "no-store"})

    async def delete(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":  # shows the button only; link scanners change nothing
            await ctx.db(subscriber_of, token)
            return page("action.html", title="Delete my data", action=f"/p/{token}/delete", button="Delete everything",
                        message="This removes your address, every subscription and their consent records at once. "
                                "It cannot be undone.")

        def erase(session: Session) -> None:
            prefs.erase(session, subscriber_of(session, token), how="preference centre")

        await ctx.db(erase)
        return page("base.html", title="Deleted", message="Your address and everything stored with it are gone.")

    return [
        Route("/p/{token}", show, methods=["GET"]),
        Route("/p/{token}", change, methods=["POST"]),
        Route("/p/{token}/export", export, methods=["POST"]),
        Route("/p/{token}/delete", delete, methods=["GET", "POST"]),
    ]
