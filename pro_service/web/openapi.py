"""OpenAPI 3.1 for /api/v1, generated from the routes and the pydantic models that validate them.

Each API view is declared with `Operation` metadata (by `api.routing.route`); this module turns the
registry into the document served at /api/v1/openapi.json. Nothing here is written by hand beside the
code it describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from pro_service.web.schemas import ErrorOut

_PATH_PARAM = re.compile(r"<(?:(int|string):)?([a-z_]+)>")
ERROR_TEXT = {
    400: "Invalid request (JSON body or query parameters)",
    401: "Missing, unknown or revoked bearer token",
    403: "The token's role may not do this",
    404: "No such resource",
    409: "Conflicts with the current state",
    415: "The body must be JSON",
    422: "Idempotency-Key reused with a different request",
}


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    summary: str
    roles: tuple[str, ...]
    tag: str
    scope: str = ""  # what an integration client's token needs (services/tokens.py)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    idempotent: bool = False
    errors: tuple[int, ...] = field(default=(400, 401, 403, 404))


REGISTRY: list[Operation] = []


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for kind, name in _PATH_PARAM.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} if kind == "int" else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", rule), params


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _ref(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build(base_path: str = "") -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_ref = _ref(ErrorOut, components, "serialization")
    for op in REGISTRY:
        path, params = _openapi_path(op.rule)
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
            "tags": [op.tag],
            "description": f"Roles: {', '.join(op.roles)}."
            + (f" Integration clients: scope `{op.scope}`." if op.scope else ""),
            "parameters": list(params),
            "responses": {},
        }
        if op.query is not None:
            entry["parameters"] += _query_params(op.query, components)
        if op.idempotent:
            entry["parameters"].append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": "Retry safely: the same key and body replay the first response.",
                }
            )
        errors = set(op.errors)
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body, components, "validation")}},
            }
            errors |= {400, 415}
        if op.idempotent:
            errors.add(422)
        if op.response is not None:
            entry["responses"][str(op.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(op.response, components, "serialization")}},
            }
        else:
            entry["responses"][str(op.status)] = {"description": "Done"}
        for code in sorted(errors):
            entry["responses"][str(code)] = {
                "description": ERROR_TEXT[code],
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(base_path + path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pro-service API",
            "version": "1",
            "description": "Patient-reported outcomes by SMS for patients with bone metastases: enrolment, "
            'schedules, check-ins, red-flag alerts. Errors are {"error", "detail"} with a 4xx status.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`pro-service create-token` or POST /api/v1/tokens",
                }
            },
        },
    }
