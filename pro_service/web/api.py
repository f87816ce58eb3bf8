"""REST API v1: bearer tokens, JSON in and out, errors as {"error", "detail"} with a 4xx status.

Every view is declared with `route(...)`: it authenticates the token and checks the role, validates the
body and query string with the pydantic models in `schemas`, owns the unit of work (commit, or rollback on
error), replays `Idempotency-Key` retries, and registers the operation for /api/v1/openapi.json. Views stay
thin: they call a service and return a response model. Every read of a patient's record is audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from pro_service.db import ROW_LOCK
from pro_service.models import (
    Alert,
    AlertStatus,
    ApiToken,
    AuditLog,
    CareTeam,
    CareTeamMember,
    CheckIn,
    IdempotencyKey,
    Message,
    OnCallShift,
    Patient,
    PatientProfile,
    PatientStatus,
    Schedule,
    StaffRole,
    StaffUser,
    utcnow,
)
from pro_service.scheduling import ScheduleError, validate_rrule
from pro_service.services import access, clinical_profile, disclosure, labs, patients, tokens
from pro_service.services import staff as staff_service
from pro_service.services.admin import AdminError, acute_oncology_number
from pro_service.services.alert_lifecycle import AlertActionError, acknowledge, add_note, assign, resolve
from pro_service.services.audit import record
from pro_service.services.check_ins import CheckInError, start_now
from pro_service.services.patients import (
    Conflict,
    EnrolmentError,
    create_care_team,
    enrol_patient,
    normalise_phone,
)
from pro_service.services.staff import StaffError, create_staff
from pro_service.web import openapi, serialize
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


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    db().rollback()
    return json_error(exc.status, exc.error, exc.detail)


@bp.errorhandler(labs.LabError)
def _lab_error(exc: labs.LabError) -> ResponseReturnValue:
    db().rollback()
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


def _replay(token: ApiToken, key: str, fingerprint: str) -> ResponseReturnValue | None:
    stored = db().scalar(
        select(IdempotencyKey).where(IdempotencyKey.token_id == token.id, IdempotencyKey.key == key)
    )
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    shown = disclosure.replayed_patients(stored.path, stored.response)
    disclosed(actor(), "api_replay", shown, path=stored.path)
    db().commit()
    return (jsonify(stored.response), stored.status_code) if stored.response is not None else ("", 204)


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
            fingerprint = ""
            if key:
                if len(key) > 200:
                    raise ApiError(400, "invalid_header", "Idempotency-Key is at most 200 characters")
                fingerprint = hashlib.sha256(
                    f"{method} {request.path} ".encode() + request.get_data()
                ).hexdigest()
                replay = _replay(token, key, fingerprint)
                if replay is not None:
                    return replay
            result = view(**kwargs)
            payload = _dump(result)
            if key:
                db().add(
                    IdempotencyKey(
                        token_id=token.id,
                        key=key,
                        method=method,
                        path=request.path[:300],
                        request_hash=fingerprint,
                        status_code=status,
                        response=payload,
                        created_at=runtime().now(),
                    )
                )
            try:
                db().commit()
            except IntegrityError:
                db().rollback()
                raise ApiError(409, "conflict", "a concurrent request changed this; retry") from None
            if payload is None:
                return "", status
            return jsonify(payload), status

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        return wrapper

    return decorate


def actor() -> str:
    """`staff:12 (token 7)` or `client:EHR-interface (token 7)`: the person or client behind the request."""
    token: ApiToken = g.api_token
    return tokens.actor_label(token)


def acting_staff_id() -> int | None:
    """The person behind the request's token (alert events name them); None for a client."""
    token: ApiToken = g.api_token
    return token.staff_id


def audit(action: str, subject: tuple[str, object], patient_id: int | None, **detail: Any) -> None:
    record(
        db(),
        actor=actor(),
        action=action,
        subject=subject,
        patient_id=patient_id,
        detail=detail,
        ip=request.remote_addr,
        at=runtime().now(),
    )


def patient_scope() -> access.Scope:
    """The patients this request's token may see (services/access.py): a person's token, what the person
    sees on the dashboard now; a client's token, every patient."""
    token: ApiToken = g.api_token
    return access.scope_for_token(db(), token, runtime().now())


def check_patient(scope: access.Scope, patient_id: int | None) -> None:
    """403 when `patient_id` is outside `scope` (nothing is read when the scope is everything). As on the
    dashboard, a nurse also opens the record of a patient whose active alert paged them."""
    if scope.everything or patient_id is None:
        return
    team_id = db().scalar(select(Patient.care_team_id).where(Patient.id == patient_id))
    if team_id is None or scope.allows(patient_id, team_id):
        return
    token: ApiToken = g.api_token
    if token.staff is not None and access.paged_for_patient(db(), token.staff, patient_id):
        return
    raise ApiError(403, "forbidden", f"patient {patient_id} is outside the care teams of this token's owner")


def _patient(patient_id: int, *, lock: bool = False) -> Patient:
    scope = patient_scope()  # before the read: a refused token learns nothing, not even a 404
    patient: Patient = _get(Patient, patient_id, "patient", lock=lock)
    check_patient(scope, patient.id)
    return patient


def _alert(alert_id: int, *, lock: bool = False) -> Alert:
    scope = patient_scope()
    alert: Alert = _get(Alert, alert_id, "alert", lock=lock)
    check_patient(scope, alert.patient_id)
    return alert


def _get(model: type[Any], ident: int, what: str, *, lock: bool = False) -> Any:
    row = db().get(model, ident, with_for_update=ROW_LOCK if lock else None)
    if row is None:
        raise ApiError(404, "not_found", f"no {what} {ident}")
    return row


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "validation_failed", [{"field": field, "message": message}])


def _save_profile(patient_id: int, data: s.ProfileIn | None) -> list[str]:
    """The sent profile fields through the service (validated, audited); a bad value is a 400 naming
    the field as `profile.<name>`."""
    if data is None:
        return []
    try:
        return clinical_profile.update_profile(
            db(),
            patient_id,
            data.model_dump(exclude_unset=True),
            actor=actor(),
            staff_id=acting_staff_id(),
            now=runtime().now(),
            ip=request.remote_addr,
        )
    except clinical_profile.ProfileError as exc:
        raise _invalid(f"profile.{exc.field}", exc.message) from None


def _patient_out(patient: Patient) -> s.PatientOut:
    return serialize.patient(patient, clinical_profile.get_profile(db(), patient.id))


def _page(query: Select[Any], page: s.Page) -> tuple[list[Any], bool]:
    rows = list(db().scalars(query.offset((page.page - 1) * page.page_size).limit(page.page_size + 1)))
    return rows[: page.page_size], len(rows) > page.page_size


# ---- the contract --------


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """Public: the contract is not a secret (every operation in it still needs a token)."""
    return jsonify(openapi.build(bp.url_prefix or ""))


# ---- care teams, staff, rota --------


@route(
    "POST",
    "/care-teams",
    summary="Create a care team",
    roles=ADMIN,
    tag="care teams",
    body=s.CareTeamIn,
    response=s.CareTeamOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 409),
)
def create_team(data: s.CareTeamIn) -> s.CareTeamOut:
    try:
        team = create_care_team(db(), name=data.name, timezone=data.timezone, phone=data.phone)
        team.acute_oncology_phone = acute_oncology_number(data.acute_oncology_phone)
    except EnrolmentError as exc:
        raise _invalid(exc.field, exc.message) from None
    except AdminError as exc:
        raise _invalid(exc.field, exc.message) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    audit("create_care_team", ("care_team", team.id), None)
    return serialize.care_team(team)


@route(
    "GET",
    "/care-teams",
    summary="List care teams",
    tag="care teams",
    response=s.CareTeamList,
    errors=(401, 403),
)
def list_teams() -> s.CareTeamList:
    teams = db().scalars(select(CareTeam).order_by(CareTeam.id)).all()
    return s.CareTeamList(care_teams=[serialize.care_team(t) for t in teams])


@route(
    "GET",
    "/care-teams/<int:team_id>/members",
    summary="Members of a care team",
    tag="care teams",
    response=s.StaffList,
)
def list_members(team_id: int) -> s.StaffList:
    _get(CareTeam, team_id, "care team")
    staff = (
        db()
        .scalars(
            select(StaffUser)
            .join(CareTeamMember, CareTeamMember.staff_id == StaffUser.id)
            .where(CareTeamMember.care_team_id == team_id)
            .order_by(StaffUser.id)
        )
        .all()
    )
    return s.StaffList(staff=[serialize.staff(m) for m in staff])


@route(
    "POST",
    "/care-teams/<int:team_id>/members",
    summary="Add a member to a care team",
    roles=ADMIN,
    tag="care teams",
    body=s.MemberIn,
    status=204,
    errors=(401, 403, 404),
)
def add_member(team_id: int, data: s.MemberIn) -> None:
    _get(CareTeam, team_id, "care team")
    _get(StaffUser, data.staff_id, "staff member")
    if db().get(CareTeamMember, (team_id, data.staff_id)) is None:
        db().add(CareTeamMember(care_team_id=team_id, staff_id=data.staff_id))
    audit("add_team_member", ("care_team", team_id), None, staff_id=data.staff_id)


@route(
    "DELETE",
    "/care-teams/<int:team_id>/members/<int:staff_id>",
    summary="Remove a member",
    roles=ADMIN,
    tag="care teams",
    status=204,
)
def remove_member(team_id: int, staff_id: int) -> None:
    member = db().get(CareTeamMember, (team_id, staff_id))
    if member is None:
        raise ApiError(404, "not_found", f"staff {staff_id} is not a member of care team {team_id}")
    db().delete(member)
    audit("remove_team_member", ("care_team", team_id), None, staff_id=staff_id)


@route(
    "GET",
    "/care-teams/<int:team_id>/on-call",
    summary="On-call rota of a care team",
    tag="care teams",
    response=s.ShiftList,
)
def list_shifts(team_id: int) -> s.ShiftList:
    _get(CareTeam, team_id, "care team")
    rows = (
        db()
        .scalars(
            select(OnCallShift)
            .where(OnCallShift.care_team_id == team_id)
            .order_by(OnCallShift.starts_at, OnCallShift.level)
        )
        .all()
    )
    return s.ShiftList(shifts=[serialize.shift(r) for r in rows])


@route(
    "POST",
    "/care-teams/<int:team_id>/on-call",
    summary="Add an on-call shift",
    roles=ADMIN,
    tag="care teams",
    body=s.ShiftIn,
    response=s.ShiftOut,
    status=201,
    idempotent=True,
)
def add_shift(team_id: int, data: s.ShiftIn) -> s.ShiftOut:
    _get(CareTeam, team_id, "care team")
    _get(StaffUser, data.staff_id, "staff member")
    if data.starts_at.tzinfo is None or data.ends_at.tzinfo is None:
        raise _invalid("starts_at", "give times with a UTC offset, e.g. 2026-12-01T08:00:00-05:00")
    if data.ends_at <= data.starts_at:
        raise _invalid("ends_at", "must be after starts_at")
    shift = OnCallShift(
        care_team_id=team_id,
        staff_id=data.staff_id,
        level=data.level,
        starts_at=data.starts_at.astimezone(UTC),
        ends_at=data.ends_at.astimezone(UTC),
    )
    db().add(shift)
    db().flush()
    audit("add_on_call_shift", ("care_team", team_id), None, shift_id=shift.id)
    return serialize.shift(shift)


@route(
    "DELETE",
    "/care-teams/<int:team_id>/on-call/<int:shift_id>",
    summary="Remove an on-call shift",
    roles=ADMIN,
    tag="care teams",
    status=204,
)
def remove_shift(team_id: int, shift_id: int) -> None:
    shift: OnCallShift = _get(OnCallShift, shift_id, "shift")
    if shift.care_team_id != team_id:
        raise ApiError(404, "not_found", f"no shift {shift_id} in care team {team_id}")
    db().delete(shift)
    audit("remove_on_call_shift", ("care_team", team_id), None, shift_id=shift_id)


@route(
    "GET", "/staff", summary="List staff", roles=ADMIN, tag="staff", response=s.StaffList, errors=(401, 403)
)
def list_staff() -> s.StaffList:
    return s.StaffList(
        staff=[serialize.staff(m) for m in db().scalars(select(StaffUser).order_by(StaffUser.id))]
    )


@route(
    "POST",
    "/staff",
    summary="Create a staff account",
    roles=ADMIN,
    tag="staff",
    body=s.StaffIn,
    response=s.StaffOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 409),
)
def create_staff_member(data: s.StaffIn) -> s.StaffOut:
    try:
        staff = create_staff(
            db(),
            email=data.email,
            name=data.name,
            role=StaffRole(data.role),
            phone=data.phone,
            password=data.password,
            # The caller (an administrator or a hospital system) knows this password: it is a temporary
            # one, replaced by its owner at first sign-in.
            must_change_password=data.password is not None,
        )
    except StaffError as exc:
        field, _, message = str(exc).partition(": ")
        if "already has an account" in message:
            raise ApiError(409, "conflict", str(exc)) from None
        raise _invalid(field, message) from None
    audit("create_staff", ("staff", staff.id), None)
    return serialize.staff(staff)


@route(
    "PATCH",
    "/staff/<int:staff_id>",
    summary="Update or deactivate a staff account",
    roles=ADMIN,
    tag="staff",
    body=s.StaffPatch,
    response=s.StaffOut,
    errors=(400, 401, 403, 404, 409),
)
def update_staff(staff_id: int, data: s.StaffPatch) -> s.StaffOut:
    staff: StaffUser = _get(StaffUser, staff_id, "staff member", lock=True)
    if data.name is not None:
        staff.name = data.name
    if "phone" in data.model_fields_set:
        try:
            phone = normalise_phone(data.phone) if data.phone else None
        except EnrolmentError as exc:
            raise _invalid("phone", exc.message) from None
        other = db().scalar(select(StaffUser.id).where(StaffUser.phone == phone, StaffUser.id != staff.id))
        if phone and other is not None:
            raise ApiError(409, "conflict", "another staff member has this phone")
        staff.phone = phone
    if data.active is not None:
        # Through the service: deactivating ends every session of the account at once.
        staff_service.set_active(db(), staff, data.active, now=utcnow())  # sessions keep wall-clock time
    audit("update_staff", ("staff", staff.id), None, fields=sorted(data.model_fields_set))
    return serialize.staff(staff)


# ---- tokens --------


@route(
    "GET",
    "/tokens",
    summary="List API tokens (never the secrets)",
    roles=ADMIN,
    tag="tokens",
    response=s.TokenList,
    errors=(401, 403),
)
def list_tokens() -> s.TokenList:
    return s.TokenList(tokens=[serialize.token(t) for t in tokens.list_tokens(db())])


@route(
    "POST",
    "/tokens",
    summary="Create an API token (shown once)",
    roles=ADMIN,
    tag="tokens",
    body=s.TokenIn,
    response=s.NewTokenOut,
    status=201,
    errors=(400, 401, 403),
)
def create_api_token(data: s.TokenIn) -> s.NewTokenOut:
    """For a staff member (`staff_id` or `staff_email`) or a client (`client` and `scopes`)."""
    if data.staff_id is not None and data.staff_email is not None:
        raise _invalid("staff_email", "give staff_id or staff_email, not both")
    staff = data.staff_id if data.staff_id is not None else data.staff_email
    try:
        new = tokens.create_token(
            db(),
            name=data.name,
            staff=staff,
            client=data.client,
            scopes=data.scopes or (),
            requested_by=g.api_token.staff_id,
        )
    except tokens.TokenError as exc:
        raise _invalid(exc.field, exc.message) from None
    row: ApiToken = _get(ApiToken, new.id, "token")
    audit("create_token", ("token", new.id), None, owner=tokens.actor_label(row))
    return s.NewTokenOut(**serialize.token(row).model_dump(), token=new.token)


@route(
    "DELETE", "/tokens/<int:token_id>", summary="Revoke an API token", roles=ADMIN, tag="tokens", status=204
)
def revoke_token(token_id: int) -> None:
    row: ApiToken = _get(ApiToken, token_id, "token")
    if tokens.revoke(db(), token_id):  # revoking again changes nothing and records nothing
        audit("revoke_token", ("token", token_id), None, owner=tokens.actor_label(row))


# ---- patients --------


@route(
    "POST",
    "/patients",
    summary="Enrol a patient",
    scope=tokens.ENROLMENT,
    roles=ADMIN,
    tag="patients",
    body=s.PatientIn,
    response=s.PatientOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 409),
)
def create_patient(data: s.PatientIn) -> s.PatientOut:
    try:
        patient = enrol_patient(
            db(),
            **data.model_dump(exclude={"profile"}),
            ruleset_version=runtime().enrolment_ruleset.version,
        )
    except EnrolmentError as exc:
        raise _invalid(exc.field, exc.message) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    _save_profile(patient.id, data.profile)
    audit("create_patient", ("patient", patient.id), patient.id)
    return _patient_out(patient)


@route(
    "GET",
    "/patients",
    summary="Find patients",
    tag="patients",
    query=s.PatientQuery,
    response=s.PatientList,
    errors=(400, 401, 403),
)
def list_patients(query: s.PatientQuery) -> s.PatientList:
    stmt = access.scoped(select(Patient), patient_scope(), Patient.id, Patient.care_team_id).order_by(
        Patient.id
    )
    if query.mrn:
        stmt = stmt.where(Patient.mrn == query.mrn)
    if query.care_team_id:
        stmt = stmt.where(Patient.care_team_id == query.care_team_id)
    if query.status:
        stmt = stmt.where(Patient.status == PatientStatus(query.status))
    rows, more = _page(stmt, query)
    profiles = {
        row.patient_id: row
        for row in db().scalars(
            select(PatientProfile).where(PatientProfile.patient_id.in_([p.id for p in rows]))
        )
    }
    audit("list_patients", ("patient", None), None, count=len(rows))
    disclosed(actor(), "api_patients", (p.id for p in rows))
    return s.PatientList(
        patients=[serialize.patient(p, profiles.get(p.id)) for p in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


@route(
    "GET", "/patients/<int:patient_id>", summary="A patient's record", tag="patients", response=s.PatientOut
)
def get_patient(patient_id: int) -> s.PatientOut:
    patient = _patient(patient_id)
    audit("view_patient", ("patient", patient.id), patient.id)
    return _patient_out(patient)


@route(
    "PATCH",
    "/patients/<int:patient_id>",
    summary="Edit, pause or discharge a patient",
    scope=tokens.ENROLMENT,
    roles=ADMIN,
    tag="patients",
    body=s.PatientPatch,
    response=s.PatientOut,
    errors=(400, 401, 403, 404, 409),
)
def update_patient(patient_id: int, data: s.PatientPatch) -> s.PatientOut:
    patient: Patient = _get(Patient, patient_id, "patient", lock=True)
    changes = data.model_dump(exclude_unset=True, exclude={"status", "profile"})
    try:
        patients.update_patient(db(), patient, **changes)
    except EnrolmentError as exc:
        raise _invalid(exc.field, exc.message) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    _save_profile(patient.id, data.profile)
    if data.status is not None:
        patients.set_patient_status(db(), patient, PatientStatus(data.status), runtime().now())
    audit("update_patient", ("patient", patient.id), patient.id, fields=sorted(data.model_fields_set))
    return _patient_out(patient)


@route(
    "GET",
    "/patients/<int:patient_id>/profile",
    summary="A patient's baseline and call information",
    tag="patients",
    response=s.ProfileOut,
)
def get_profile(patient_id: int) -> s.ProfileOut:
    patient = _patient(patient_id)
    audit("view_patient", ("patient", patient.id), patient.id, part="profile")
    return serialize.profile(clinical_profile.get_profile(db(), patient.id))


@route(
    "PATCH",
    "/patients/<int:patient_id>/profile",
    summary="Record a patient's baseline and call information (nurses and admins)",
    scope=tokens.ENROLMENT,
    tag="patients",
    body=s.ProfileIn,
    response=s.ProfileOut,
    errors=(400, 401, 403, 404),
)
def update_profile(patient_id: int, data: s.ProfileIn) -> s.ProfileOut:
    patient = _patient(patient_id)
    _save_profile(patient.id, data)
    return serialize.profile(clinical_profile.get_profile(db(), patient.id))


@route(
    "POST",
    "/patients/<int:patient_id>/check-ins",
    summary="Start a check-in now",
    scope=tokens.ENROLMENT,
    tag="check-ins",
    body=s.CheckInIn,
    response=s.CheckInOut,
    status=201,
    idempotent=True,
    errors=(401, 403, 404, 409),
)
def start_check_in(patient_id: int, data: s.CheckInIn) -> s.CheckInOut:
    patient = _patient(patient_id, lock=True)
    try:
        check_in = start_now(db(), runtime(), patient, data.instrument)
    except CheckInError as exc:
        if "unknown instrument" in str(exc):
            raise ApiError(404, "not_found", str(exc)) from None
        raise ApiError(409, "conflict", str(exc)) from None
    audit("start_check_in", ("check_in", check_in.id), patient.id)
    return serialize.check_in(check_in)


@route(
    "GET",
    "/check-ins",
    summary="List check-ins",
    tag="check-ins",
    query=s.CheckInQuery,
    response=s.CheckInList,
    errors=(400, 401, 403),
)
def list_check_ins(query: s.CheckInQuery) -> s.CheckInList:
    stmt = access.scoped(select(CheckIn), patient_scope(), CheckIn.patient_id).order_by(CheckIn.id.desc())
    if query.patient_id:
        stmt = stmt.where(CheckIn.patient_id == query.patient_id)
    if query.status:
        stmt = stmt.where(CheckIn.status == query.status)
    rows, more = _page(stmt, query)
    audit("list_check_ins", ("check_in", None), query.patient_id)
    disclosed(actor(), "api_check_ins", (c.patient_id for c in rows))
    return s.CheckInList(
        check_ins=[serialize.check_in(c) for c in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


@route(
    "GET",
    "/check-ins/<int:check_in_id>",
    summary="A check-in with its answers",
    tag="check-ins",
    response=s.CheckInOut,
)
def get_check_in(check_in_id: int) -> s.CheckInOut:
    scope = patient_scope()
    check_in: CheckIn = _get(CheckIn, check_in_id, "check-in")
    check_patient(scope, check_in.patient_id)
    audit("view_check_in", ("check_in", check_in.id), check_in.patient_id)
    return serialize.check_in(check_in)


@route(
    "GET",
    "/instruments",
    summary="Questionnaires and their versions",
    tag="check-ins",
    response=s.InstrumentList,
    errors=(401, 403),
)
def list_instruments() -> s.InstrumentList:
    rt = runtime()
    registry = rt.instruments
    return s.InstrumentList(
        instruments=[
            serialize.instrument(i, rt.instrument_for(None, i.code))
            for _key, i in sorted(registry.by_key.items())
        ]
    )


@route(
    "GET",
    "/rulesets",
    summary="Red-flag rulesets, their versions, and which is active",
    tag="check-ins",
    response=s.RulesetList,
    errors=(401, 403),
)
def list_rulesets() -> s.RulesetList:
    active = runtime().enrolment_ruleset
    return s.RulesetList(rulesets=[serialize.ruleset(r, r is active) for r in runtime().rulesets.values()])


# ---- lab results --------


@route(
    "GET",
    "/patients/<int:patient_id>/labs",
    summary="A patient's lab results, newest sample first (values in canonical units)",
    tag="labs",
    query=s.LabQuery,
    response=s.LabList,
)
def list_labs(patient_id: int, query: s.LabQuery) -> s.LabList:
    check_patient(patient_scope(), patient_id)
    rows, more = labs.patient_labs(
        db(),
        patient_id,
        code=query.code,
        since=query.since,
        history=query.history,
        offset=(query.page - 1) * query.page_size,
        limit=query.page_size,
    )
    audit("view_labs", ("patient", patient_id), patient_id, count=len(rows))
    return s.LabList(
        patient_id=patient_id,
        labs=[serialize.lab(r) for r in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


# ---- schedules --------


@route(
    "GET",
    "/patients/<int:patient_id>/schedules",
    summary="A patient's schedules",
    tag="schedules",
    response=s.ScheduleList,
)
def list_schedules(patient_id: int) -> s.ScheduleList:
    patient = _patient(patient_id)
    rows = db().scalars(select(Schedule).where(Schedule.patient_id == patient.id).order_by(Schedule.id)).all()
    audit("view_schedules", ("patient", patient.id), patient.id)
    return s.ScheduleList(schedules=[serialize.schedule(x, runtime().now(), patient.timezone) for x in rows])


def _check_schedule(rrule: str | None, instrument: str | None, start: Any, end: Any) -> str | None:
    if instrument is not None and runtime().instruments.latest(instrument) is None:
        raise _invalid("instrument", f"unknown instrument {instrument!r}")
    if start is not None and end is not None and end < start:
        raise _invalid("end_date", "is before start_date")
    if rrule is None:
        return None
    try:
        return validate_rrule(rrule)
    except ScheduleError as exc:
        raise _invalid("rrule", str(exc)) from None


@route(
    "POST",
    "/patients/<int:patient_id>/schedules",
    summary="Add a schedule",
    scope=tokens.ENROLMENT,
    roles=ADMIN,
    tag="schedules",
    body=s.ScheduleIn,
    response=s.ScheduleOut,
    status=201,
    idempotent=True,
)
def create_schedule(patient_id: int, data: s.ScheduleIn) -> s.ScheduleOut:
    patient: Patient = _get(Patient, patient_id, "patient")
    rrule = _check_schedule(data.rrule, data.instrument, data.start_date, data.end_date)
    assert rrule is not None
    schedule = Schedule(
        patient_id=patient.id,
        instrument_code=data.instrument,
        rrule=rrule,
        start_date=data.start_date,
        end_date=data.end_date,
        active=data.active,
        created_at=runtime().now(),
    )
    db().add(schedule)
    db().flush()
    audit("create_schedule", ("schedule", schedule.id), patient.id)
    return serialize.schedule(schedule, runtime().now(), patient.timezone)


def _schedule_of(patient_id: int, schedule_id: int) -> tuple[Patient, Schedule]:
    patient: Patient = _get(Patient, patient_id, "patient")
    schedule: Schedule = _get(Schedule, schedule_id, "schedule")
    if schedule.patient_id != patient.id:
        raise ApiError(404, "not_found", f"no schedule {schedule_id} for patient {patient_id}")
    return patient, schedule


@route(
    "PATCH",
    "/patients/<int:patient_id>/schedules/<int:schedule_id>",
    summary="Change or pause a schedule",
    scope=tokens.ENROLMENT,
    roles=ADMIN,
    tag="schedules",
    body=s.SchedulePatch,
    response=s.ScheduleOut,
)
def update_schedule(patient_id: int, schedule_id: int, data: s.SchedulePatch) -> s.ScheduleOut:
    patient, schedule = _schedule_of(patient_id, schedule_id)
    start = data.start_date or schedule.start_date
    end = data.end_date if "end_date" in data.model_fields_set else schedule.end_date
    rrule = _check_schedule(data.rrule, None, start, end)
    if rrule is not None:
        schedule.rrule = rrule
    schedule.start_date, schedule.end_date = start, end
    if data.active is not None:
        schedule.active = data.active
    schedule.next_due_at = None  # what it produces may have changed: the next tick looks again
    audit("update_schedule", ("schedule", schedule.id), patient.id)
    return serialize.schedule(schedule, runtime().now(), patient.timezone)


@route(
    "DELETE",
    "/patients/<int:patient_id>/schedules/<int:schedule_id>",
    summary="Delete a schedule",
    scope=tokens.ENROLMENT,
    roles=ADMIN,
    tag="schedules",
    status=204,
)
def delete_schedule(patient_id: int, schedule_id: int) -> None:
    patient, schedule = _schedule_of(patient_id, schedule_id)
    db().delete(schedule)
    audit("delete_schedule", ("schedule", schedule_id), patient.id)


# ---- alerts --------


@route(
    "GET",
    "/alerts",
    summary="Alerts, most urgent first, then oldest",
    tag="alerts",
    query=s.AlertQuery,
    response=s.AlertList,
    errors=(400, 401, 403),
)
def list_alerts(query: s.AlertQuery) -> s.AlertList:
    stmt = access.scoped(select(Alert), patient_scope(), Alert.patient_id).order_by(
        Alert.urgency_rank.desc(), Alert.opened_at, Alert.id
    )
    if query.patient_id is not None:
        stmt = stmt.where(Alert.patient_id == query.patient_id)
    if query.status:
        stmt = stmt.where(Alert.status == AlertStatus(query.status))
    if query.urgency:
        stmt = stmt.where(Alert.urgency == query.urgency)
    if query.category:
        stmt = stmt.where(Alert.category == query.category)
    rows, more = _page(stmt, query)
    audit("list_alerts", ("alert", None), query.patient_id, status=query.status)
    disclosed(actor(), "api_alerts", (a.patient_id for a in rows))
    return s.AlertList(
        alerts=[serialize.alert(a) for a in rows], page=query.page, page_size=query.page_size, has_more=more
    )


@route(
    "GET",
    "/alerts/<int:alert_id>",
    summary="An alert with its evidence and events",
    tag="alerts",
    response=s.AlertOut,
)
def get_alert(alert_id: int) -> s.AlertOut:
    alert = _alert(alert_id)
    rt = runtime()
    # The call information is part of the record this read's audit row covers.
    info = clinical_profile.call_info(db(), alert, rt.instruments)
    audit("view_alert", ("alert", alert.id), alert.patient_id)
    return serialize.alert(
        alert, with_events=True, call_out=serialize.call(info, rt.call_scripts.get(alert.category))
    )


@route(
    "POST",
    "/alerts/<int:alert_id>/acknowledge",
    summary="Acknowledge (stops escalation)",
    tag="alerts",
    response=s.AlertOut,
    idempotent=True,
    errors=(401, 403, 404, 409),
)
def acknowledge_alert(alert_id: int) -> s.AlertOut:
    alert = _alert(alert_id, lock=True)
    if alert.status == AlertStatus.RESOLVED:
        raise ApiError(409, "conflict", "the alert is resolved")
    acknowledge(db(), alert, staff_id=acting_staff_id(), actor=actor(), now=runtime().now(), via="api")
    audit("acknowledge_alert", ("alert", alert.id), alert.patient_id)
    return serialize.alert(alert, with_events=True)


@route(
    "POST",
    "/alerts/<int:alert_id>/resolve",
    summary="Resolve with an outcome",
    tag="alerts",
    body=s.ResolveIn,
    response=s.AlertOut,
    idempotent=True,
    errors=(401, 403, 404, 409),
)
def resolve_alert(alert_id: int, data: s.ResolveIn) -> s.AlertOut:
    alert = _alert(alert_id, lock=True)
    try:
        resolve(
            db(),
            alert,
            staff_id=acting_staff_id(),
            actor=actor(),
            now=runtime().now(),
            outcome=data.outcome,
            note=data.note,
            rag=data.rag,
        )
    except AlertActionError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    audit("resolve_alert", ("alert", alert.id), alert.patient_id, outcome=data.outcome, rag=data.rag)
    return serialize.alert(alert, with_events=True)


@route(
    "POST",
    "/alerts/<int:alert_id>/assign",
    summary="Assign to a staff member (who may act on the patient)",
    tag="alerts",
    body=s.AssignIn,
    response=s.AlertOut,
    idempotent=True,
    errors=(400, 401, 403, 404, 409),
)
def assign_alert(alert_id: int, data: s.AssignIn) -> s.AlertOut:
    alert = _alert(alert_id, lock=True)
    to_staff = db().get(StaffUser, data.staff_id)
    if to_staff is None:
        raise _invalid("staff_id", f"no staff member {data.staff_id}")
    try:
        changed = assign(
            db(), alert, to_staff, by_staff_id=acting_staff_id(), actor=actor(), now=runtime().now()
        )
    except AlertActionError as exc:
        if alert.status == AlertStatus.RESOLVED:
            raise ApiError(409, "conflict", str(exc)) from None
        raise _invalid("staff_id", str(exc)) from None
    if changed:
        audit("assign_alert", ("alert", alert.id), alert.patient_id, to_staff_id=to_staff.id)
    db().flush()
    db().refresh(alert, ["events"])
    return serialize.alert(alert, with_events=True)


@route(
    "POST",
    "/alerts/<int:alert_id>/notes",
    summary="Add a note",
    tag="alerts",
    body=s.NoteIn,
    response=s.AlertOut,
    status=201,
    idempotent=True,
)
def note_alert(alert_id: int, data: s.NoteIn) -> s.AlertOut:
    alert = _alert(alert_id, lock=True)
    try:
        add_note(db(), alert, staff_id=acting_staff_id(), actor=actor(), now=runtime().now(), note=data.note)
    except AlertActionError as exc:
        raise _invalid("note", str(exc)) from None
    audit("note_alert", ("alert", alert.id), alert.patient_id)
    db().flush()
    db().refresh(alert, ["events"])
    return serialize.alert(alert, with_events=True)


# ---- messages and audit --------


@route(
    "GET",
    "/messages",
    summary="A patient's message timeline, newest first",
    tag="messages",
    query=s.MessageQuery,
    response=s.MessageList,
    errors=(400, 401, 403),
)
def list_messages(query: s.MessageQuery) -> s.MessageList:
    check_patient(patient_scope(), query.patient_id)
    stmt = select(Message).where(Message.patient_id == query.patient_id).order_by(Message.id.desc())
    rows, more = _page(stmt, query)
    audit("view_messages", ("patient", query.patient_id), query.patient_id)
    return s.MessageList(
        messages=[serialize.message(m) for m in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )


@route(
    "GET",
    "/audit",
    summary="The audit log, newest first",
    roles=ADMIN,
    tag="audit",
    query=s.AuditQuery,
    response=s.AuditList,
    errors=(400, 401, 403),
)
def list_audit(query: s.AuditQuery) -> s.AuditList:
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if query.patient_id:
        stmt = stmt.where(AuditLog.patient_id == query.patient_id)
    if query.actor:
        stmt = stmt.where(AuditLog.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditLog.action == query.action)
    rows, more = _page(stmt, query)
    disclosed(actor(), "api_audit", (r.patient_id for r in rows))  # who saw whom is itself disclosed
    return s.AuditList(
        entries=[s.AuditOut.model_validate(r) for r in rows],
        page=query.page,
        page_size=query.page_size,
        has_more=more,
    )
