"""Admin pages about people: lists, subscribers (search, filter, edit, suppress, erase), suppressions, CSV import."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.audience import preferences as prefs
from digest.audience.addresses import normalise_address
from digest.audience.confirmations import queue_confirmations
from digest.audience.subscribers import ImportReport, import_csv
from digest.db import audience as queries
from digest.db.models import SubscriptionStatus
from digest.web import actions, data
from digest.web.admin.guard import AdminRequest, Guard
from digest.web.errors import BadRequest

PAGE = 50
STATUSES = [s.value for s in SubscriptionStatus]


def routes(guard: Guard) -> list[Route]:
    ctx = guard.ctx

    async def lists(req: AdminRequest) -> Response:
        return req.page("admin/lists.html", {"lists": await ctx.db(data.lists_data)}, title="Lists")

    async def subscribers(req: AdminRequest) -> Response:
        status = req.query("status") or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
        filters: dict[str, Any] = {"q": req.query("q")[:200], "list_slug": req.query("list") or None, "status": status}
        offset = req.int_query("offset", 0)
        found = await ctx.db(lambda s: data.subscribers_data(s, **filters, limit=PAGE, offset=offset))
        return req.page("admin/subscribers.html", found, title="Subscribers", filters=filters, statuses=STATUSES,
                        lists=[c.slug for c in ctx.settings.lists])

    async def subscriber(req: AdminRequest) -> Response:
        subscriber_id = int(req.path_params["id"])

        def load(s: Session) -> dict[str, Any]:
            person = data.subscriber_by_id(s, subscriber_id)
            return {"subscriber": data.subscriber_data(s, person), "consents": prefs.consent_records(s, subscriber_id)}

        return req.page("admin/subscriber.html", await ctx.db(load), title="Subscriber",
                        languages=prefs.languages())

    async def change(req: AdminRequest) -> Response:
        subscriber_id = int(req.path_params["id"])
        action = req.field("action")

        def apply(s: Session) -> str:
            person = data.subscriber_by_id(s, subscriber_id)
            if action == "edit":
                actions.edit_subscriber(s, person, {k: req.field(k) for k in ("name", "timezone", "send_hour", "locale")})
            elif action == "suppress":
                queries.suppress(s, person.email, req.field("reason") or "suppressed by an admin")
            elif action == "unsuppress":
                queries.unsuppress(s, person.email)
            elif action == "status":
                actions.set_subscription_status(s, person, req.field("list"), req.field("status"))
            elif action == "erase":
                prefs.erase(s, person, how=f"admin:{req.principal.name}")
                return "/admin/subscribers"
            else:
                raise BadRequest(f"unknown action {action!r}")
            return f"/admin/subscribers/{subscriber_id}"

        return RedirectResponse(await ctx.db(apply), status_code=303)

    async def suppressions(req: AdminRequest) -> Response:
        q = req.query("q")[:200]
        found = await ctx.db(lambda s: data.suppressions_data(s, q=q, offset=req.int_query("offset", 0)))
        return req.page("admin/suppressions.html", found, title="Suppression list", q=q)

    async def change_suppressions(req: AdminRequest) -> Response:
        email = normalise_address(req.field("email"))
        if req.field("action") == "remove":
            await ctx.db(queries.unsuppress, email)
        else:
            await ctx.db(queries.suppress, email, req.field("reason") or "added by an admin")
        return RedirectResponse("/admin/suppressions", status_code=303)

    async def import_form(req: AdminRequest) -> Response:
        return req.page("admin/import.html", {"report": None}, title="Import subscribers",
                        lists=[c.slug for c in ctx.settings.lists])

    async def import_file(req: AdminRequest) -> Response:
        upload = req.form.get("file")
        slug = req.field("list")
        if not isinstance(upload, UploadFile):
            raise BadRequest("choose a CSV file to import")
        ctx.settings.get_list(slug)
        raw = await upload.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"the file is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
        confirmed = req.field("confirmed") == "1"

        def run(s: Session) -> ImportReport:
            mailing_list = queries.list_by_slug(s, slug)
            assert mailing_list is not None  # synced at start-up
            report = import_csv(s, mailing_list, text.splitlines(keepends=True), confirmed=confirmed,
                                source=f"admin:{req.principal.name}:{upload.filename or 'upload'}")
            queue_confirmations(s, report.pending)  # sent by the mailer, not while the admin waits
            return report

        report = await ctx.db(run)
        result = {**report.as_dict(), "confirmations_queued": len(report.pending)}
        return req.page("admin/import.html", {"report": result}, title="Import subscribers",
                        lists=[c.slug for c in ctx.settings.lists], filename=upload.filename)

    return [
        guard.route("/admin/lists", lists),
        guard.route("/admin/subscribers", subscribers),
        guard.route("/admin/subscribers/{id:int}", subscriber),
        guard.route("/admin/subscribers/{id:int}", change, methods=("POST",), role="admin"),
        guard.route("/admin/suppressions", suppressions),
        guard.route("/admin/suppressions", change_suppressions, methods=("POST",), role="admin"),
        guard.route("/admin/import", import_form, role="admin"),
        guard.route("/admin/import", import_file, methods=("POST",), role="admin"),
    ]
