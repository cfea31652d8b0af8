"""The REST API's operations: each one a function of (session, call) returning plain data.

The table at the bottom is the single declaration from which both the routes and the OpenAPI schema are
made (see `digest.web.api`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from digest.audience import preferences as prefs
from digest.audience.addresses import normalise_address
from digest.audience.signup import Origin, request_subscription
from digest.audience.subscribers import add_subscriber, validate_row
from digest.db import audience as queries
from digest.web import actions, data
from digest.web.accounts import Principal
from digest.web.api import models as m
from digest.web.errors import Conflict, NotFound


@dataclass
class Call:
    """One API request, validated."""

    principal: Principal
    path: dict[str, Any]
    query: Any = None
    body: Any = None
    pending: list[tuple[int, int]] = field(default_factory=list)  # confirmation mails to send after the commit


def list_lists(session: Session, call: Call) -> Any:
    return data.lists_data(session)


def get_list(session: Session, call: Call) -> Any:
    return data.list_data(session, call.path["slug"])


def list_subscribers(session: Session, call: Call) -> Any:
    q: m.SubscriberQuery = call.query
    return data.subscribers_data(session, q=q.q, list_slug=q.list, status=q.status, limit=q.limit, offset=q.offset)


def get_subscriber(session: Session, call: Call) -> Any:
    return data.subscriber_data(session, data.subscriber_by_id(session, call.path["id"]))


def create_subscriber(session: Session, call: Call) -> Any:
    body: m.SubscriberIn = call.body
    mailing_list = queries.list_by_slug(session, body.list)
    if mailing_list is None:
        raise NotFound(f"no list {body.list!r}")
    row = validate_row({"email": body.email, "name": body.name, "timezone": body.timezone,
                        "send_hour": "" if body.send_hour is None else str(body.send_hour), "locale": body.locale,
                        "topics": ";".join(body.topics), "frequency": body.frequency, "weekly_day": body.weekly_day})
    if queries.is_suppressed(session, row.email):
        raise Conflict(f"{row.email} is on the suppression list")
    source = call.principal.name
    if body.confirmed:
        existing = queries.subscriber_by_email(session, row.email)
        known = existing and queries.subscription(session, mailing_list.id, existing.id)
        _, sub = add_subscriber(session, mailing_list, row, confirmed=True, source=source)
        if not known:
            queries.record_consent(session, sub.subscriber_id, mailing_list.id, "imported", source=source)
    else:
        due = request_subscription(session, mailing_list, row, Origin(source=source))
        if due:
            call.pending.append(due)
    found = queries.subscriber_by_email(session, row.email)
    assert found is not None
    return data.subscriber_data(session, found)


def update_subscriber(session: Session, call: Call) -> Any:
    person = data.subscriber_by_id(session, call.path["id"])
    actions.edit_subscriber(session, person, call.body.model_dump(exclude_unset=True))
    return data.subscriber_data(session, person)


def delete_subscriber(session: Session, call: Call) -> Any:
    prefs.erase(session, data.subscriber_by_id(session, call.path["id"]), how=call.principal.name)
    return None


def export_subscriber(session: Session, call: Call) -> Any:
    return prefs.export_data(session, data.subscriber_by_id(session, call.path["id"]))


def list_sources(session: Session, call: Call) -> Any:
    return data.sources_data(session)


def list_editions(session: Session, call: Call) -> Any:
    q: m.EditionQuery = call.query
    return data.editions_data(session, list_slug=q.list, status=q.status, limit=q.limit, offset=q.offset)


def get_edition(session: Session, call: Call) -> Any:
    return data.edition_data(session, data.edition_by_id(session, call.path["id"]))


def edition_action(session: Session, call: Call) -> Any:
    return actions.edition_action(session, call.path["id"], call.path["action"])


def list_deliveries(session: Session, call: Call) -> Any:
    q: m.DeliveryQuery = call.query
    return data.deliveries_data(session, edition_id=q.edition, state=q.state, limit=q.limit, offset=q.offset)


def ledger(session: Session, call: Call) -> Any:
    return data.ledger_data(session, days=call.query.days)


def list_suppressions(session: Session, call: Call) -> Any:
    q: m.SuppressionQuery = call.query
    return data.suppressions_data(session, q=q.q, limit=q.limit, offset=q.offset)


def add_suppression(session: Session, call: Call) -> Any:
    email = normalise_address(call.body.email)
    queries.suppress(session, email, call.body.reason)
    rows, _ = queries.suppressions(session, q=email, limit=10)
    return data.suppression_data(next(r for r in rows if r.email == email))


def remove_suppression(session: Session, call: Call) -> Any:
    if not queries.unsuppress(session, normalise_address(call.path["email"])):
        raise NotFound("that address is not suppressed")
    return None


@dataclass
class Endpoint:
    method: str
    path: str
    run: Callable[[Session, Call], Any]
    summary: str
    response: Any = None  # a pydantic model or list[...] of one; None: 204 without a body
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    role: str = "viewer"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # path parameter -> JSON schema


ID = {"id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
SLUG = {"slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}}

ENDPOINTS = [
    Endpoint("GET", "/api/lists", list_lists, "Lists with subscription counts", list[m.ListOut]),
    Endpoint("GET", "/api/lists/{slug}", get_list, "One list", m.ListOut, params=SLUG),
    Endpoint("GET", "/api/subscribers", list_subscribers, "Search subscribers", m.SubscriberPage, query=m.SubscriberQuery),
    Endpoint("POST", "/api/subscribers", create_subscriber, "Subscribe someone (double opt-in unless confirmed)",
             m.SubscriberOut, body=m.SubscriberIn, status=201, role="admin"),
    Endpoint("GET", "/api/subscribers/{id}", get_subscriber, "One subscriber", m.SubscriberOut, params=ID),
    Endpoint("PATCH", "/api/subscribers/{id}", update_subscriber, "Change name, time zone, send hour or language",
             m.SubscriberOut, body=m.SubscriberPatch, role="admin", params=ID),
    Endpoint("DELETE", "/api/subscribers/{id}", delete_subscriber, "Erase a subscriber and their data (GDPR)",
             None, status=204, role="admin", params=ID),
    Endpoint("GET", "/api/subscribers/{id}/export", export_subscriber, "Everything stored about a subscriber (GDPR)",
             dict[str, Any], params=ID),
    Endpoint("GET", "/api/sources", list_sources, "Sources with their health", list[m.SourceOut]),
    Endpoint("GET", "/api/editions", list_editions, "Editions, newest first", list[m.EditionOut], query=m.EditionQuery),
    Endpoint("GET", "/api/editions/{id}", get_edition, "One edition with delivery counts", m.EditionOut, params=ID),
    Endpoint("POST", "/api/editions/{id}/{action}", edition_action, "Pause, resume or cancel an edition, or retry its failed deliveries",
             m.EditionActionOut, role="admin",
             params={**ID, "action": {"type": "string", "enum": list(actions.EDITION_ACTIONS)}}),
    Endpoint("GET", "/api/deliveries", list_deliveries, "The delivery ledger", m.DeliveryPage, query=m.DeliveryQuery),
    Endpoint("GET", "/api/deliveries/daily", ledger, "Sends, deferrals and bounces per day", m.LedgerOut, query=m.LedgerQuery),
    Endpoint("GET", "/api/suppressions", list_suppressions, "The suppression list", m.SuppressionPage, query=m.SuppressionQuery),
    Endpoint("POST", "/api/suppressions", add_suppression, "Suppress an address", m.SuppressionOut, body=m.SuppressionIn,
             status=201, role="admin"),
    Endpoint("DELETE", "/api/suppressions/{email}", remove_suppression, "Stop suppressing an address", None, status=204,
             role="admin", params={"email": {"type": "string", "minLength": 3, "maxLength": 320}}),
]
