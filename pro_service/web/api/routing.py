"""The `route(...)` decorator of every API view: the bearer token and its role or scope, the body and query
string validated with the pydantic models in `schemas`, `Idempotency-Key` replays (services/idempotency.py),
the operation registered for /api/v1/openapi.json, and the service errors mapped to JSON once for the
blueprint. The request's unit of work (web/unit_of_work.py) commits or rolls back; a view never does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from pro_service.models import ApiToken, StaffRole
from pro_service.services import disclosure, idempotency, labs, tokens
from pro_service.services.errors import Conflict, Invalid, NotFound
from pro_service.web import openapi
from pro_service.web import schemas as s
from pro_service.web.common import db, json_error, runtime
from pro_service.web.disclosure import disclosed

bp = Blueprint("api", __name__, url_prefix="/api/v1")
M = TypeVar("M", bound=BaseModel)
ANY_STAFF = (StaffRole.NURSE, StaffRole.ADMIN)
ADMIN = (StaffRole.ADMIN,)
# Who may send lab results (/fhir Observation, /hl7/oru): a client with the `labs:write` scope, or an
# administrator's own token (a go-live backfill, a test by the integration lead). Not nurses: a result comes
# from the lab's system, not from a person at the dashboard.
LAB_WRITERS = (StaffRole.INTEGRATION, StaffRole.ADMIN)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


# Every error of a view is mapped here, once (the request's unit of work has already rolled back).
@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    return json_error(exc.status, exc.error, exc.detail)


@bp.errorhandler(Invalid)
def _invalid(exc: Invalid) -> ResponseReturnValue:
    return json_error(400, "validation_failed", [{"field": exc.field, "message": exc.message}])


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> ResponseReturnValue:
    return json_error(409, "conflict", exc.message)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> ResponseReturnValue:
    return json_error(404, "not_found", exc.message)


@bp.errorhandler(IntegrityError)
def _integrity_error(exc: IntegrityError) -> ResponseReturnValue:
    # Raised by the unit of work's commit (or a flush) when a concurrent request wrote the same unique
    # row first (the same Idempotency-Key, the same MRN): the retry sees what it wrote.
    return json_error(409, "conflict", "a concurrent request changed this; retry")


@bp.errorhandler(labs.LabError)
def _lab_error(exc: labs.LabError) -> ResponseReturnValue:
    if isinstance(exc, labs.UnknownPatient):
        return json_error(404, "not_found", exc.message)
    return json_error(400, "validation_failed", [{"field": exc.where or "query", "message": exc.message}])


def _authenticate(roles: Sequence[StaffRole], scope: str) -> ApiToken:
    """The request's token: a person's token needs one of `roles` (the person's current role), a client's
    token the scope `scope` (services/tokens.py)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
    try:
        row = tokens.authenticate(db(), token.strip())
    except tokens.TokenRefused as exc:
        raise ApiError(401, "unauthorized", exc.message) from None
    refused = tokens.refusal(row, roles, scope)
    if refused is not None:
        raise ApiError(403, "forbidden", refused)
    g.api_token = row
    return row


def default_scope(method: str, roles: Sequence[StaffRole]) -> str:
    """The client scope a route needs unless it names one: `read` for what nurses may read, else `admin`."""
    return tokens.READ if method == "GET" and StaffRole.NURSE in roles else tokens.ADMIN


def requires(
    *roles: StaffRole, scope: str
) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    """Bearer-token guard for views outside this module (e.g. /fhir): staff `roles`, or a client's `scope`."""

    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            _authenticate(roles, scope)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _errors(exc: ValidationError, where: str) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or where, "message": e["msg"]} for e in exc.errors()]


def _body(model: type[M]) -> M:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_failed", _errors(exc, "body")) from None


def _query(model: type[M]) -> M:
    values: dict[str, Any] = {}
    for name in request.args:
        if name not in model.model_fields:
            raise ApiError(400, "invalid_parameter", [{"field": name, "message": "unknown query parameter"}])
        values[name] = request.args.get(name)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(400, "invalid_parameter", _errors(exc, "query")) from None


def _dump(result: BaseModel | None) -> Any:
    return None if result is None else result.model_dump(mode="json", exclude_none=False)


def _request_hash(method: str) -> str:
    return idempotency.fingerprint(method, request.path, request.get_data())


def _replay(token: ApiToken, key: str, request_hash: str) -> ResponseReturnValue | None:
    """The first answer again for a retried `Idempotency-Key` (its patients disclosed again), or None."""
    try:
        stored = idempotency.replay(db(), token_id=token.id, key=key, request_hash=request_hash)
    except idempotency.KeyReused as exc:
        raise ApiError(422, "idempotency_key_reused", exc.message) from None
    if stored is None:
        return None
    shown = disclosure.replayed_patients(stored.path, stored.response)
    disclosed(tokens.actor_label(token), "api_replay", shown, path=stored.path)
    return (jsonify(stored.response), stored.status) if stored.response is not None else ("", 204)


def route(
    method: str,
    rule: str,
    *,
    summary: str,
    roles: Sequence[StaffRole] = ANY_STAFF,
    scope: str | None = None,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    idempotent: bool = False,
    errors: tuple[int, ...] = (400, 401, 403, 404),
) -> Callable[[Callable[..., BaseModel | None]], Callable[..., ResponseReturnValue]]:
    needed = scope or default_scope(method, roles)
    openapi.REGISTRY.append(
        openapi.Operation(
            method=method,
            rule=rule,
            summary=summary,
            roles=tuple(r.value for r in roles),
            scope=needed,
            tag=tag,
            body=body,
            query=query,
            response=response,
            status=status,
            idempotent=idempotent,
            errors=errors,
        )
    )

    def decorate(view: Callable[..., BaseModel | None]) -> Callable[..., ResponseReturnValue]:
        @wraps(view)
        def wrapper(**path: Any) -> ResponseReturnValue:
            for name, value in path.items():
                if isinstance(value, int) and value > s.MAX_ID:
                    raise ApiError(404, "not_found", f"no {name.removesuffix('_id')} {value}")
            token = _authenticate(roles, needed)
            kwargs: dict[str, Any] = dict(path)
            if body is not None:
                kwargs["data"] = _body(body)
            if query is not None:
                kwargs["query"] = _query(query)
            key = request.headers.get("Idempotency-Key", "").strip() if idempotent else ""
            request_hash = ""
            if key:
                if len(key) > idempotency.MAX_KEY_LENGTH:
                    raise ApiError(400, "invalid_header", "Idempotency-Key is at most 200 characters")
                request_hash = _request_hash(method)
                replay = _replay(token, key, request_hash)
                if replay is not None:
                    return replay
            payload = _dump(view(**kwargs))
            if key:
                idempotency.remember(
                    db(),
                    token_id=token.id,
                    key=key,
                    method=method,
                    path=request.path,
                    request_hash=request_hash,
                    status=status,
                    response=payload,
                    now=runtime().now(),
                )
            if payload is None:
                return "", status
            return jsonify(payload), status

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        return wrapper

    return decorate
