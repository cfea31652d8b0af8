"""Admin pages about sending: overview, sources with health, editions (preview, test send, pause/resume/cancel,
retry failed) and the delivery ledger with its per-day chart."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from digest.audience.addresses import normalise_address
from digest.db.models import DeliveryState
from digest.errors import DispatchError
from digest.web import actions, data
from digest.web.admin.guard import AdminRequest, Guard
from digest.web.chart import daily_chart
from digest.web.errors import BadRequest

STATES = [s.value for s in DeliveryState]
# The preview is the email's own HTML: shown sandboxed (no scripts, no forms, no same-origin access).
PREVIEW_HEADERS = {"content-security-policy": "sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; frame-ancestors 'self'",
                   "cache-control": "no-store"}


def routes(guard: Guard) -> list[Route]:
    ctx = guard.ctx

    async def overview(req: AdminRequest) -> Response:
        def load(s: Session) -> dict[str, Any]:
            return {"ledger": data.ledger_data(s), "lists": data.lists_data(s), "editions": data.editions_data(s, limit=5),
                    "sources": data.sources_data(s)}

        found = await ctx.db(load)
        return req.page("admin/overview.html", found, title="Overview", chart=daily_chart(found["ledger"]["days"]))

    async def sources(req: AdminRequest) -> Response:
        return req.page("admin/sources.html", {"sources": await ctx.db(data.sources_data)}, title="Sources")

    async def editions(req: AdminRequest) -> Response:
        slug, status = req.query("list") or None, req.query("status") or None
        found = await ctx.db(lambda s: data.editions_data(s, list_slug=slug, status=status, limit=100))
        return req.page("admin/editions.html", {"editions": found}, title="Editions", filters={"list": slug or "", "status": status or ""},
                        lists=[c.slug for c in ctx.settings.lists])

    async def edition(req: AdminRequest) -> Response:
        edition_id = int(req.path_params["id"])

        def load(s: Session) -> dict[str, Any]:
            row = data.edition_by_id(s, edition_id)
            return {"edition": data.edition_data(s, row), "variants": [v.variant_key for v in row.variants if v.html],
                    "deliveries": data.deliveries_data(s, edition_id=edition_id, limit=20)}

        return req.page("admin/edition.html", await ctx.db(load), title=f"Edition {edition_id}",
                        message=req.query("message")[:300], actions=actions.EDITION_ACTIONS)

    async def preview(req: AdminRequest) -> Response:
        edition_id, key = int(req.path_params["id"]), req.query("variant") or None
        html = await ctx.db(actions.preview_html, edition_id, key)
        return HTMLResponse(html, headers=PREVIEW_HEADERS)

    async def act(req: AdminRequest) -> Response:
        edition_id = int(req.path_params["id"])
        result = await ctx.db(actions.edition_action, edition_id, req.field("action"))
        return RedirectResponse(f"/admin/editions/{edition_id}?message=Edition+is+now+{result['status']}",
                                status_code=303)

    async def test_send(req: AdminRequest) -> Response:
        edition_id = int(req.path_params["id"])
        email = normalise_address(req.field("email"))
        try:
            await run_in_threadpool(actions.send_test, ctx.database, ctx.settings, edition_id, email,
                                    req.field("variant") or None)
        except DispatchError as exc:
            raise BadRequest(f"the test message was not accepted: {exc}") from None
        return RedirectResponse(f"/admin/editions/{edition_id}?message=Test+sent+to+{email}", status_code=303)

    async def deliveries(req: AdminRequest) -> Response:
        state = req.query("state") or None
        if state is not None and state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        edition_id = req.int_query("edition", 0) or None
        days = req.int_query("days", 14, 1, 366)

        def load(s: Session) -> dict[str, Any]:
            return {"ledger": data.ledger_data(s, days=days),
                    "deliveries": data.deliveries_data(s, edition_id=edition_id, state=state,
                                                       offset=req.int_query("offset", 0))}

        found = await ctx.db(load)
        return req.page("admin/deliveries.html", found, title="Delivery ledger", chart=daily_chart(found["ledger"]["days"]),
                        states=STATES, filters={"state": state or "", "edition": edition_id or "", "days": days})

    return [
        guard.route("/admin", overview),
        guard.route("/admin/sources", sources),
        guard.route("/admin/editions", editions),
        guard.route("/admin/editions/{id:int}", edition),
        guard.route("/admin/editions/{id:int}/preview", preview),
        guard.route("/admin/editions/{id:int}/action", act, methods=("POST",), role="admin"),
        guard.route("/admin/editions/{id:int}/test", test_send, methods=("POST",), role="admin"),
        guard.route("/admin/deliveries", deliveries),
    ]
