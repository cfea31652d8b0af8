"""The OpenAPI 3.1 document, made from the endpoint table and the pydantic models (never written by hand)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from digest import __version__
from digest.web.api import models as m
from digest.web.api.endpoints import Endpoint

REF = "#/components/schemas/{model}"
ERRORS = {400: "Invalid input", 401: "No or bad API token", 403: "The token's role does not allow this",
          404: "No such object", 409: "Not possible in the object's current state"}


def _schema(shape: Any) -> dict[str, Any]:
    return TypeAdapter(shape).json_schema(ref_template=REF, mode="serialization")


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    props = model.model_json_schema(ref_template=REF)["properties"]
    params = []
    for name, prop in props.items():
        alternatives = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
        schema = alternatives[0] if len(alternatives) == 1 else {k: v for k, v in prop.items() if k not in ("title", "description")}
        schema = {k: v for k, v in schema.items() if k != "title"}
        if "default" in prop and prop["default"] is not None:
            schema["default"] = prop["default"]
        params.append({"name": name, "in": "query", "required": False, "description": prop.get("description", ""),
                       "schema": schema})
    return params


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": endpoint.summary, "operationId": endpoint.run.__name__,
                                 "security": [{"bearer": []}], "parameters": []}
    for name, spec in endpoint.params.items():
        operation["parameters"].append({"name": name, "in": "path", "required": True, "schema": spec})
    if endpoint.query is not None:
        operation["parameters"] += _query_parameters(endpoint.query)
    if endpoint.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=endpoint.body.__name__)}}}}
    ok: dict[str, Any] = {"description": "OK" if endpoint.status != 201 else "Created"}
    if endpoint.response is not None:
        ok["content"] = {"application/json": {"schema": _schema(endpoint.response)}}
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    operation["responses"] = {str(endpoint.status): ok,
                              **{str(code): {"description": text, **error} for code, text in ERRORS.items()}}
    if endpoint.role == "admin":
        operation["description"] = "Needs an admin token."
    return operation


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [(cls, "validation") for cls in vars(m).values()
              if isinstance(cls, type) and issubclass(cls, BaseModel) and not cls.__name__.startswith("_")
              and cls.__module__ == m.__name__]
    _, defs = models_json_schema(models, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    document = {
        "openapi": "3.1.0",
        "info": {"title": "digest API", "version": __version__,
                 "description": "Lists, subscribers, sources, editions, deliveries and suppressions. "
                                "Authenticate with `Authorization: Bearer <token>` (`digest admin create-token`)."},
        "paths": _strip_titles(paths),
        "components": {"schemas": _strip_titles(defs.get("$defs", {})),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    return document


def _strip_titles(value: Any) -> Any:
    """pydantic's auto titles are noise in a schema meant for reading."""
    if isinstance(value, dict):
        return {k: _strip_titles(v) for k, v in value.items() if not (k == "title" and isinstance(v, str) and re.fullmatch(r"[\w ]+", v))}
    if isinstance(value, list):
        return [_strip_titles(v) for v in value]
    return value

