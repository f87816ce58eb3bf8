"""REST API v1: bearer tokens, JSON in and out, errors as {"error", "detail"} with a 4xx status.

Every view is declared with `routing.route(...)`: it authenticates the token and checks the role, validates
the body and query string with the pydantic models in `schemas`, replays `Idempotency-Key` retries, and
registers the operation for /api/v1/openapi.json. Views stay thin: they call a service and return a response
model; the request's unit of work commits (web/unit_of_work.py), and the service errors are mapped to JSON
once, in `routing`. Every read of a patient's record is audited. One module per resource.
"""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from pro_service.web import openapi

# The resource modules register their routes on import, in this order: the order of the OpenAPI document.
# isort: off
from pro_service.web.api import care_teams, staff, tokens, patients  # noqa: F401
from pro_service.web.api import check_ins, labs, schedules, alerts, records  # noqa: F401

# isort: on
from pro_service.web.api.context import (
    acting_staff_id,
    actor,
    audit,
    check_patient,
    patient_scope,
)
from pro_service.web.api.routing import (
    ADMIN,
    ANY_STAFF,
    LAB_WRITERS,
    ApiError,
    bp,
    default_scope,
    requires,
    route,
)

__all__ = [
    "ADMIN",
    "ANY_STAFF",
    "LAB_WRITERS",
    "ApiError",
    "acting_staff_id",
    "actor",
    "audit",
    "bp",
    "check_patient",
    "default_scope",
    "patient_scope",
    "requires",
    "route",
]


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """Public: the contract is not a secret (every operation in it still needs a token)."""
    return jsonify(openapi.build(bp.url_prefix or ""))
