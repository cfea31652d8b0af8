"""The REST API under /api: bearer tokens (`digest admin create-token`), JSON in and out, an OpenAPI schema.

Every operation goes through `_endpoint`: token → role → validated path, query and body → the
operation in one transaction → output checked against its declared model. Any failure becomes
`{"error": …}` with a documented status (see `digest.web.errors`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digest.audience.confirmations import queue_confirmations
from digest.web.accounts import Principal, principal_for_token
from digest.web.api.endpoints import ENDPOINTS, Call, Endpoint
from digest.web.api.openapi import openapi_document
from digest.web.context import WebContext
from digest.web.errors import BadRequest, Forbidden, LoginRequired, NotFound

MAX_BODY = 1024 * 1024


def routes(ctx: WebContext) -> list[Route]:
    document = openapi_document(ENDPOINTS)

    async def schema(request: Request) -> Response:
        return JSONResponse(document)

    return [Route("/api/openapi.json", schema), *[_route(ctx, e) for e in ENDPOINTS]]


async def _principal(ctx: WebContext, request: Request) -> Principal:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise LoginRequired("send an API token: Authorization: Bearer <token> (digest admin create-token)")
    found = await ctx.db(lambda s: principal_for_token(s, value.strip()))
    if found is None:
        raise LoginRequired("this API token is not valid (revoked, or never issued)")
    return found


def _path_values(endpoint: Endpoint, request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in endpoint.params.items():
        raw = str(request.path_params.get(name, ""))
        if spec["type"] == "integer":
            if not re.fullmatch(r"[0-9]{1,10}", raw) or not 1 <= int(raw) <= spec["maximum"]:
                raise NotFound(f"no such {name}: {raw[:40]!r}")
            values[name] = int(raw)
        elif "enum" in spec and raw not in spec["enum"]:
            raise NotFound(f"{name} must be one of {', '.join(spec['enum'])}")
        elif "pattern" in spec and not re.fullmatch(spec["pattern"].strip("^$"), raw):
            raise NotFound(f"no such {name}: {raw[:40]!r}")
        else:
            values[name] = raw
    return values


async def _body(endpoint: Endpoint, request: Request) -> Any:
    if endpoint.body is None:
        return None
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("the request body is too large")
    if "json" not in request.headers.get("content-type", ""):
        raise BadRequest("send the body as JSON (Content-Type: application/json)")
    try:
        value = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    return endpoint.body.model_validate(value)


def _validation_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def _route(ctx: WebContext, endpoint: Endpoint) -> Route:
    output = TypeAdapter(endpoint.response) if endpoint.response is not None else None

    async def handle(request: Request) -> Response:
        principal = await _principal(ctx, request)
        if endpoint.role == "admin" and not principal.is_admin:
            raise Forbidden(f"this needs an admin token (this one is {principal.role})")
        try:
            call = Call(principal, _path_values(endpoint, request),
                        endpoint.query.model_validate(dict(request.query_params)) if endpoint.query else None,
                        await _body(endpoint, request))
        except ValidationError as exc:
            raise BadRequest(_validation_message(exc)) from None

        def run(session: Session) -> Any:
            result = endpoint.run(session, call)
            queue_confirmations(session, call.pending)  # the mailer sends them; this request does not wait
            return None if output is None else output.dump_python(output.validate_python(result), mode="json")

        result = await ctx.db(run)
        if output is None:
            return Response(status_code=endpoint.status)
        return JSONResponse(result, status_code=endpoint.status)

    return Route(endpoint.path, handle, methods=[endpoint.method])
