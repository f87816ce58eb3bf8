"""FHIR R4 API under /fhir: read Patient, Questionnaire, QuestionnaireResponse, Flag, Observation, and
/metadata; lab results in as Observation (POST /fhir/Observation, or a transaction Bundle POSTed to /fhir).

Thin: parse the search, load rows, map them with `pro_service.fhir`, audit, answer application/fhir+json.
Same bearer tokens as /api: a nurse's or administrator's token, or a client's with the scope `read`, to read;
an administrator's token or a client's with `labs:write` to write lab results. /metadata is public, as FHIR
clients expect. Every error is an OperationOutcome with a 4xx status (5xx only when the database or the
code fails, never for input). Unknown search parameters are refused rather than ignored: a silently dropped
filter returns other patients' data. Writes parse with `pro_service.fhir_intake` and record through
`services.labs`, all of a request or nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from pro_service import fhir, fhir_intake
from pro_service.fhir import SearchError
from pro_service.instruments import Instrument
from pro_service.models import Alert, AlertStatus, CheckIn, CheckInStatus, LabResult, LabStatus, Patient
from pro_service.services import access, lab_alerts, labs, tokens
from pro_service.web.api import (
    ANY_STAFF,
    LAB_WRITERS,
    ApiError,
    actor,
    audit,
    check_patient,
    patient_scope,
    requires,
)
from pro_service.web.common import db, parse_int, runtime
from pro_service.web.disclosure import disclosed

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
log = logging.getLogger(__name__)

DEFAULT_COUNT = 50
MAX_COUNT = 100
MAX_OFFSET = 100_000
CONTROL_PARAMS = frozenset({"_count", "_offset", "_format", "_pretty"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir"})
ALLOWED: dict[str, frozenset[str]] = {
    "Patient": frozenset({"_id", "identifier"}),
    "Questionnaire": frozenset({"_id", "url", "version", "status"}),
    "QuestionnaireResponse": frozenset({"_id", "patient", "subject", "authored", "status"}),
    "Flag": frozenset({"_id", "patient", "subject", "date", "status"}),
    "Observation": frozenset({"_id", "patient", "subject", "code", "date", "status"}),
}
REPEATABLE = frozenset({"authored", "date"})  # ge…&le…: a range


class FhirError(Exception):
    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


# ------------------------------------------------------------------------------------------- responses
def _pretty() -> bool:
    if request.args.get("_pretty") == "true":
        return True
    try:
        return request.form.get("_pretty") == "true"
    except HTTPException:
        # The body itself was refused (over MAX_CONTENT_LENGTH: 413): answering that must not read it
        # again, or the error handler fails and the client gets the server's bare HTML 500.
        return False


def _respond(resource: dict[str, Any], status: int = 200) -> Response:
    text = json.dumps(resource, ensure_ascii=False, indent=2 if _pretty() else None)
    response = Response(text, status=status, content_type=f"{fhir.MEDIA_TYPE}; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"  # patient data: never kept by a browser or proxy
    return response


def _outcome(status: int, code: str, diagnostics: str) -> Response:
    response = _respond(fhir.operation_outcome(code, diagnostics), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pro-service"'
    return response


@bp.errorhandler(FhirError)
def _fhir_error(exc: FhirError) -> ResponseReturnValue:
    db().rollback()
    return _outcome(exc.status, exc.code, exc.diagnostics)


@bp.errorhandler(SearchError)
def _search_error(exc: SearchError) -> ResponseReturnValue:
    db().rollback()
    return _outcome(400, exc.code, str(exc))


@bp.errorhandler(labs.LabError)
def _lab_error(exc: labs.LabError) -> ResponseReturnValue:
    """A result that cannot be recorded: nothing of the request was stored."""
    db().rollback()
    if isinstance(exc, labs.UnknownPatient):
        return _outcome(422, "not-found", str(exc))
    if isinstance(exc, labs.UnknownCode):
        return _outcome(422, "code-invalid", str(exc))
    if isinstance(exc, labs.BadUnit):
        return _outcome(422, "required" if exc.missing else "value", str(exc))
    return _outcome(400, "invalid", str(exc))


@bp.errorhandler(ApiError)
def _auth_error(exc: ApiError) -> ResponseReturnValue:
    db().rollback()
    code = {401: "login", 403: "forbidden"}.get(exc.status, "processing")
    return _outcome(exc.status, code, str(exc.detail or exc.error))


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    code = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}
    issue = code.get(status, "invalid" if status < 500 else "exception")
    return _outcome(status, issue, exc.description or "")


bp.register_error_handler(HTTPException, _http_error)
# The app's handlers registered for these codes would otherwise win over a class handler.
for _code in (400, 403, 404, 405, 406, 413, 415):
    bp.register_error_handler(_code, _http_error)


@bp.errorhandler(DataError)
def _unstorable(exc: DataError) -> ResponseReturnValue:
    """PostgreSQL refused a value the request carried (JSON may hold NUL, "\\u0000"; a number out of range):
    the client's input, so a 400, and nothing of the request is kept."""
    with contextlib.suppress(Exception):
        db().rollback()
    log.warning("FHIR request refused by the database: %s", type(exc.orig).__name__)
    return _outcome(
        400, "invalid", "a value in the request cannot be stored (a NUL character, or out of range)"
    )


@bp.errorhandler(IntegrityError)
def _concurrent(_exc: IntegrityError) -> ResponseReturnValue:
    """Another request recorded the same result first (the request's commit, or a flush, refused ours):
    nothing of this one was kept (the unit of work rolled back); sending it again finds that row."""
    return _outcome(409, "conflict", "a concurrent request recorded this result; send it again")


@bp.errorhandler(OperationalError)
def _database_down(_exc: OperationalError) -> ResponseReturnValue:
    log.error("database unavailable")
    return _outcome(503, "transient", "the database is unavailable; try again")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    # Where, not what: an exception's message may quote row values (PHI); the frames are code only.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("FHIR request failed: %s in %s\n%s", type(exc).__name__, request.endpoint, frames)
    with contextlib.suppress(Exception):  # already failing: the answer below is what matters
        db().rollback()
    return _outcome(500, "exception", "internal error")


@bp.before_request
def _negotiate() -> ResponseReturnValue | None:
    fmt = _params().get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in JSON_FORMATS:
        return _outcome(406, "not-supported", "only JSON is served (_format=json)")
    accept = request.accept_mimetypes
    if accept and not any(accept[m] for m in (fhir.MEDIA_TYPE, "application/json", "application/json+fhir")):
        return _outcome(406, "not-supported", f"only {fhir.MEDIA_TYPE} is served")
    return None


# ---------------------------------------------------------------------------------------- parameters
def _params() -> MultiDict[str, str]:
    merged: MultiDict[str, str] = MultiDict(request.args)
    if request.method == "POST" and request.path.endswith("/_search"):
        if request.content_length and request.mimetype != "application/x-www-form-urlencoded":
            raise FhirError(
                415, "not-supported", "POST _search takes an application/x-www-form-urlencoded body"
            )
        merged.update(request.form)
    return merged


def _checked(resource_type: str) -> MultiDict[str, str]:
    params = _params()
    allowed = ALLOWED[resource_type]
    for name in params:
        base, _, modifier = name.partition(":")
        if base in CONTROL_PARAMS and not modifier:
            continue
        if base not in allowed:
            raise SearchError(f"unknown search parameter {name!r} for {resource_type}", "not-supported")
        if modifier:
            raise SearchError(f"the modifier :{modifier} is not supported", "not-supported")
        if base not in REPEATABLE and len(params.getlist(name)) > 1:
            raise SearchError(f"{name} is given more than once; use commas for alternatives")
        if not all(v.strip() for v in params.getlist(name)):
            raise SearchError(f"{name} has an empty value")
    return params


def _int_param(params: MultiDict[str, str], name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    number = parse_int(raw)  # 0-9 only: "²" passes isdigit() and fails int()
    if number is None:
        raise SearchError(f"{name} must be a whole number of 0 or more")
    return min(number, maximum)


def _ids(values: Iterable[str]) -> list[int]:
    """Logical ids among the alternatives; ids that cannot be ours match nothing."""
    return [number for v in values if (number := parse_int(v)) is not None]


def _patient_ids(params: MultiDict[str, str]) -> list[int] | None:
    raw = [v for name in ("patient", "subject") if (value := params.get(name)) for v in fhir.split_or(value)]
    if not raw:
        return None
    return [fhir.parse_patient_reference(v) for v in raw]


def _date_clause(values: list[str], start: Any, end: Any) -> ColumnElement[bool]:
    """FHIR date matching against the target range [start, end] (end NULL: ongoing)."""
    clauses = []
    for raw in values:
        param = fhir.parse_date(raw)
        if param.prefix == "eq":
            clauses.append(and_(start >= param.start, end.is_not(None), end < param.end))
        elif param.prefix == "gt":
            clauses.append(or_(end.is_(None), end >= param.end))
        elif param.prefix == "ge":
            clauses.append(or_(end.is_(None), end >= param.start))
        elif param.prefix == "lt":
            clauses.append(start < param.start)
        else:  # le
            clauses.append(start < param.end)
    return and_(*clauses)


def _search_url(resource_type: str, params: MultiDict[str, str], offset: int, count: int) -> str:
    pairs = [(k, v) for k, v in params.items(multi=True) if k not in ("_offset", "_count")]
    pairs += [("_count", str(count)), ("_offset", str(offset))]
    return f"{_base()}/{resource_type}?{urlencode(pairs)}"


def _base() -> str:
    return runtime().settings.PUBLIC_BASE_URL.rstrip("/") + "/fhir"


def _bundle(
    resource_type: str, params: MultiDict[str, str], resources: list[dict[str, Any]], total: int
) -> Response:
    count = _int_param(params, "_count", DEFAULT_COUNT, MAX_COUNT)
    offset = _int_param(params, "_offset", 0, MAX_OFFSET)
    links = {"self": _search_url(resource_type, params, offset, count)}
    if count and offset + count < total:
        links["next"] = _search_url(resource_type, params, offset + count, count)
    if offset:
        links["previous"] = _search_url(resource_type, params, max(0, offset - count), count)
    return _respond(fhir.searchset(_base(), resources, total, links))


def _page(query: Select[Any], params: MultiDict[str, str]) -> tuple[list[Any], int]:
    count = _int_param(params, "_count", DEFAULT_COUNT, MAX_COUNT)
    offset = _int_param(params, "_offset", 0, MAX_OFFSET)
    total = db().scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(db().scalars(query.limit(count).offset(offset)).all()) if count else []
    return rows, total


def _audit_search(resource_type: str, patient_ids: Iterable[int], asked: list[int] | None) -> None:
    """One row for the search as asked (its query, the one patient it names if it names one: nothing found
    is still a look-up of somebody's record), and a `seen_fhir_<type>` row per patient in the bundle, at
    most once per disclosure window (services/disclosure.py)."""
    seen = sorted(set(patient_ids))
    only = asked[0] if asked and len(asked) == 1 else None
    query = urlencode(list(_params().items(multi=True)))[:500]
    audit(f"fhir_search_{resource_type}", ("patient", only), only, query=query, via="fhir", found=len(seen))
    disclosed(actor(), f"fhir_{resource_type}", seen, via="fhir")


def _route(rule: str) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    """A GET view behind the API's bearer tokens; a type-level search also answers POST <rule>/_search
    with a form body (FHIR servers SHALL accept both)."""

    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        guarded = requires(*ANY_STAFF, scope=tokens.READ)(view)
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=guarded, methods=["GET"])
        if "<" not in rule:
            bp.add_url_rule(
                f"{rule}/_search", endpoint=f"{view.__name__}_post", view_func=guarded, methods=["POST"]
            )
        return guarded

    return decorate


# --------------------------------------------------------------------------------------------- views
@bp.get("/metadata")
def metadata_view() -> ResponseReturnValue:
    try:
        version = metadata.version("pro-service")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return _respond(fhir.capability_statement(_base(), version, runtime().now()))


def _row_id(ident: str, what: str) -> int:
    number = parse_int(ident)
    if number is None:
        raise FhirError(404, "not-found", f"{what}/{ident} is not known")
    return number


@_route("/Patient/<ident>")
def read_patient(ident: str) -> ResponseReturnValue:
    row = _audited_read(Patient, ident, "Patient", "patient", "fhir_read_patient")
    return _respond(fhir.patient(row))


_Row = TypeVar("_Row", Patient, CheckIn, Alert, LabResult)


def _audited_read(model: type[_Row], ident: str, kind: str, entity: str, action: str) -> _Row:
    """One row by its FHIR id, 404 when unknown, 403 outside the token's scope (a nurse's token: the
    nurse's care teams, services/access.py); the view of the patient's record is audited (kept with the
    request's successful answer)."""
    scope = patient_scope()
    row = db().get(model, _row_id(ident, kind))
    if row is None:
        raise FhirError(404, "not-found", f"{kind}/{ident} is not known")
    patient_id = row.id if isinstance(row, Patient) else row.patient_id
    check_patient(scope, patient_id)
    audit(action, (entity, row.id), patient_id, via="fhir")
    return row


@_route("/Patient")
def search_patient() -> ResponseReturnValue:
    params = _checked("Patient")
    if "identifier" not in params and "_id" not in params:
        raise SearchError("search Patient by identifier (<system>|<mrn>) or _id")
    query = access.scoped(select(Patient), patient_scope(), Patient.id, Patient.care_team_id).order_by(
        Patient.id
    )
    if "_id" in params:
        query = query.where(Patient.id.in_(_ids(fhir.split_or(params["_id"]))))
    if "identifier" in params:
        matches: list[ColumnElement[bool]] = []
        for token in fhir.split_or(params["identifier"]):
            system, value = fhir.parse_token(token)
            if system not in (None, fhir.MRN_SYSTEM):
                continue  # another system, or "|mrn" (no system): none of our identifiers
            matches.append(Patient.mrn == value if value else Patient.id.is_not(None))
        query = query.where(or_(*matches) if matches else false())
    rows, total = _page(query, params)
    _audit_search("patient", (p.id for p in rows), None)
    return _bundle("Patient", params, [fhir.patient(p) for p in rows], total)


def _instrument(ident: str) -> Instrument:
    parsed = fhir.parse_questionnaire_id(ident)
    found = runtime().instruments.by_key.get(parsed) if parsed else None
    if found is None:
        raise FhirError(404, "not-found", f"Questionnaire/{ident} is not known")
    return found


@_route("/Questionnaire/<ident>")
def read_questionnaire(ident: str) -> ResponseReturnValue:
    return _respond(fhir.questionnaire(_instrument(ident)))


@_route("/Questionnaire")
def search_questionnaire() -> ResponseReturnValue:
    params = _checked("Questionnaire")
    found = sorted(runtime().instruments.by_key.values(), key=lambda i: (i.code, i.version))
    if "_id" in params:
        wanted = set(fhir.split_or(params["_id"]))
        found = [i for i in found if fhir.questionnaire_id(i.code, i.version) in wanted]
    if "url" in params:
        url, _, version = params["url"].partition("|")
        found = [i for i in found if fhir.questionnaire_url(i.code) == url]
        if version:
            found = [i for i in found if str(i.version) == version]
    if "version" in params:
        versions = set(fhir.split_or(params["version"]))
        found = [i for i in found if str(i.version) in versions]
    if "status" in params and "active" not in fhir.split_or(params["status"]):
        found = []
    count = _int_param(params, "_count", DEFAULT_COUNT, MAX_COUNT)
    offset = _int_param(params, "_offset", 0, MAX_OFFSET)
    page = found[offset : offset + count]
    return _bundle("Questionnaire", params, [fhir.questionnaire(i) for i in page], len(found))


def _questionnaire_response(check_in: CheckIn) -> dict[str, Any]:
    instrument = runtime().instruments.by_key.get((check_in.instrument_code, check_in.instrument_version))
    return fhir.questionnaire_response(check_in, instrument)


@_route("/QuestionnaireResponse/<ident>")
def read_questionnaire_response(ident: str) -> ResponseReturnValue:
    row = _audited_read(
        CheckIn, ident, "QuestionnaireResponse", "check_in", "fhir_read_questionnaire_response"
    )
    return _respond(_questionnaire_response(row))


@_route("/QuestionnaireResponse")
def search_questionnaire_response() -> ResponseReturnValue:
    params = _checked("QuestionnaireResponse")
    authored = func.coalesce(CheckIn.closed_at, CheckIn.started_at, CheckIn.created_at)
    query = (
        access.scoped(select(CheckIn), patient_scope(), CheckIn.patient_id)
        .options(selectinload(CheckIn.answers))
        .order_by(authored.desc(), CheckIn.id.desc())
    )
    patients = _patient_ids(params)
    if patients is not None:
        query = query.where(CheckIn.patient_id.in_(patients))
    if "_id" in params:
        query = query.where(CheckIn.id.in_(_ids(fhir.split_or(params["_id"]))))
    if "authored" in params:
        query = query.where(_date_clause(params.getlist("authored"), authored, authored))
    if "status" in params:
        statuses: list[CheckInStatus] = []
        for value in fhir.split_or(params["status"]):
            if value not in fhir.QR_STATUS_SOURCES and value not in ("amended", "entered-in-error"):
                raise SearchError(f"status {value!r} is not a QuestionnaireResponse status")
            statuses += fhir.QR_STATUS_SOURCES.get(value, ())
        query = query.where(CheckIn.status.in_(statuses))
    rows, total = _page(query, params)
    _audit_search("questionnaire_response", (c.patient_id for c in rows), patients)
    return _bundle("QuestionnaireResponse", params, [_questionnaire_response(c) for c in rows], total)


@_route("/Flag/<ident>")
def read_flag(ident: str) -> ResponseReturnValue:
    return _respond(fhir.flag(_audited_read(Alert, ident, "Flag", "alert", "fhir_read_flag")))


@_route("/Flag")
def search_flag() -> ResponseReturnValue:
    params = _checked("Flag")
    query = access.scoped(select(Alert), patient_scope(), Alert.patient_id).order_by(
        Alert.opened_at.desc(), Alert.id.desc()
    )
    patients = _patient_ids(params)
    if patients is not None:
        query = query.where(Alert.patient_id.in_(patients))
    if "_id" in params:
        query = query.where(Alert.id.in_(_ids(fhir.split_or(params["_id"]))))
    if "date" in params:
        query = query.where(_date_clause(params.getlist("date"), Alert.opened_at, Alert.resolved_at))
    if "status" in params:
        flag_statuses: list[AlertStatus] = []
        for value in fhir.split_or(params["status"]):
            if value not in fhir.FLAG_STATUS_SOURCES and value != "entered-in-error":
                raise SearchError(f"status {value!r} is not a Flag status (active | inactive)")
            flag_statuses += fhir.FLAG_STATUS_SOURCES.get(value, ())
        query = query.where(Alert.status.in_(flag_statuses))
    rows, total = _page(query, params)
    _audit_search("flag", (a.patient_id for a in rows), patients)
    return _bundle("Flag", params, [fhir.flag(a) for a in rows], total)


# ------------------------------------------------------------------------------------------ Observation
@_route("/Observation/<ident>")
def read_observation(ident: str) -> ResponseReturnValue:
    return _respond(
        fhir.observation(
            _audited_read(LabResult, ident, "Observation", "lab_result", "fhir_read_observation")
        )
    )


def _loinc_codes(raw: str) -> list[str]:
    codes = []
    for token in fhir.split_or(raw):
        system, code = fhir.parse_token(token)
        if system in (None, fhir.LOINC_SYSTEM) and code:
            codes.append(code)  # another system, or "|code" (no system): none of our codes
    return codes


@_route("/Observation")
def search_observation() -> ResponseReturnValue:
    """Lab results. Without _id, only current versions (an amended result's earlier version is not listed;
    a withdrawn one is, with status entered-in-error and no value)."""
    params = _checked("Observation")
    query = access.scoped(select(LabResult), patient_scope(), LabResult.patient_id).order_by(
        LabResult.effective_at.desc(), LabResult.id.desc()
    )
    patients = _patient_ids(params)
    if patients is not None:
        query = query.where(LabResult.patient_id.in_(patients))
    if "_id" in params:
        query = query.where(LabResult.id.in_(_ids(fhir.split_or(params["_id"]))))
    else:
        query = query.where(LabResult.replaced_by_id.is_(None))
    if "code" in params:
        query = query.where(LabResult.code.in_(_loinc_codes(params["code"])))
    if "date" in params:
        query = query.where(
            _date_clause(params.getlist("date"), LabResult.effective_at, LabResult.effective_at)
        )
    if "status" in params:
        statuses: list[LabStatus] = []
        for value in fhir.split_or(params["status"]):
            if value not in {s.value for s in LabStatus} and value not in (
                "registered",
                "cancelled",
                "unknown",
            ):
                raise SearchError(f"status {value!r} is not an Observation status")
            statuses += [s for s in LabStatus if s.value == value]
        query = query.where(LabResult.status.in_(statuses))
    rows, total = _page(query, params)
    _audit_search("observation", (r.patient_id for r in rows), patients)
    return _bundle("Observation", params, [fhir.observation(r) for r in rows], total)


def _resource_body() -> dict[str, Any]:
    if not request.is_json:
        raise FhirError(415, "not-supported", f"send the resource as {fhir.MEDIA_TYPE}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body is not a JSON object (a FHIR resource)")
    return body


def _record(items: list[labs.IncomingResult]) -> list[labs.RecordOutcome]:
    """One unit of work: every result stored and audited, kept with the request's 200/201; or none (a
    LabError, or another request's same result: `_concurrent`, answers 4xx and the request rolls back)."""
    outcomes = lab_alerts.record_and_raise(db(), runtime(), items)
    for outcome in outcomes:
        row = outcome.result
        audit(
            "record_lab_result", ("lab_result", row.id), row.patient_id, via="fhir", outcome=outcome.outcome
        )
    return outcomes


@bp.post("/Observation")
@requires(*LAB_WRITERS, scope=tokens.LABS_WRITE)
def create_observation() -> ResponseReturnValue:
    """Record one lab result. 201 with the stored Observation (a new version, or one kept as history);
    200 with the one already stored when the same result was sent before."""
    body = _resource_body()
    if fhir_intake.resource_type(body) != "Observation":
        raise FhirError(400, "invalid", "POST /fhir/Observation takes an Observation")
    (outcome,) = _record([fhir_intake.observation(body)])
    response = _respond(fhir.observation(outcome.result), 201 if outcome.created else 200)
    response.headers["Location"] = f"{_base()}/Observation/{outcome.result.id}"
    return response


@bp.post("", strict_slashes=False)
@requires(*LAB_WRITERS, scope=tokens.LABS_WRITE)
def transaction() -> ResponseReturnValue:
    """A transaction Bundle of Observations: every entry is recorded, or none (the first problem is named
    by its entry in the OperationOutcome)."""
    body = _resource_body()
    if fhir_intake.resource_type(body) != "Bundle":
        raise FhirError(400, "not-supported", "POST to the FHIR base takes a transaction Bundle")
    outcomes = _record(fhir_intake.transaction(body))
    entries = [
        ("201 Created" if o.created else "200 OK", f"Observation/{o.result.id}", o.result.received_at)
        for o in outcomes
    ]
    return _respond(fhir.transaction_response(entries))


@bp.route("/", defaults={"rest": ""}, methods=["GET", "PUT", "PATCH", "DELETE"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unsupported(rest: str) -> ResponseReturnValue:
    """Anything else under /fhir: an OperationOutcome, not the staff site's HTML 404."""
    if request.method not in ("GET", "HEAD"):
        raise FhirError(
            405,
            "not-supported",
            "not supported: read with GET (or POST …/_search); write lab results with POST /fhir/Observation "
            "or a transaction Bundle POSTed to /fhir",
        )
    raise FhirError(404, "not-found", f"/fhir/{rest} is not supported here; see /fhir/metadata")
