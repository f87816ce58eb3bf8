"""REST API v1: bearer tokens, JSON in and out, errors as {"error", "detail"} with a 4xx status.

Views are thin: validate the body (pydantic), call a service, shape the answer. Every read of a patient's
record is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any, Literal, TypeVar

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from alerts.lifecycle import OUTCOMES, AlertActionError, acknowledge, add_note, resolve
from pro_service.models import (
    Alert,
    AlertStatus,
    ApiToken,
    CheckIn,
    Message,
    Patient,
    Schedule,
    StaffRole,
)
from pro_service.scheduling import ScheduleError, validate_rrule
from pro_service.services import tokens
from pro_service.services.audit import record
from pro_service.services.check_ins import CheckInError, start_now
from pro_service.services.patients import Conflict, EnrolmentError, create_care_team, enrol_patient
from pro_service.web import serialize
from pro_service.web.common import db, json_error, runtime

bp = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    db().rollback()
    return json_error(exc.status, exc.error, exc.detail)


def requires(*roles: StaffRole) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
            row = tokens.authenticate(db(), token.strip())
            if row is None:
                raise ApiError(401, "unauthorized", "unknown or revoked token")
            if row.role not in roles:
                raise ApiError(403, "forbidden", f"this needs the role {' or '.join(r.value for r in roles)}")
            g.api_token = row
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


ANY_STAFF = (StaffRole.NURSE, StaffRole.ADMIN)


def actor() -> str:
    token: ApiToken = g.api_token
    return f"token:{token.id}"


def body(model: type[M]) -> M:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "the body is not valid JSON")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise ApiError(400, "validation_failed", detail) from None


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


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CareTeamIn(_In):
    name: str = Field(min_length=1, max_length=120)
    timezone: str = Field(default="UTC", max_length=64)
    phone: str | None = Field(default=None, max_length=32)


class PatientIn(_In):
    mrn: str = Field(min_length=1, max_length=64)
    given_name: str = Field(min_length=1, max_length=120)
    family_name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=3, max_length=32)
    timezone: str = Field(max_length=64)
    language: Literal["en", "es"] = "en"
    care_team_id: int = Field(ge=1, le=2**31 - 1)
    sms_consent: bool = True


class CheckInIn(_In):
    instrument: str = Field(min_length=1, max_length=64)


class ScheduleIn(_In):
    instrument: str = Field(min_length=1, max_length=64)
    rrule: str = Field(min_length=1, max_length=500)
    start_date: date
    end_date: date | None = None
    active: bool = True


class SchedulePatch(_In):
    rrule: str | None = Field(default=None, min_length=1, max_length=500)
    start_date: date | None = None
    end_date: date | None = None
    active: bool | None = None


class ResolveIn(_In):
    outcome: Literal[tuple(OUTCOMES)]  # type: ignore[valid-type]
    note: str | None = Field(default=None, max_length=4000)


class NoteIn(_In):
    note: str = Field(min_length=1, max_length=4000)


def _get(model: type[Any], ident: int, what: str) -> Any:
    if ident > 2**31 - 1:
        raise ApiError(404, "not_found", f"no {what} {ident}")
    row = db().get(model, ident)
    if row is None:
        raise ApiError(404, "not_found", f"no {what} {ident}")
    return row


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise ApiError(400, "invalid_parameter", f"{name} must be a positive integer")
    return int(raw)


def _limit() -> int:
    limit = _int_arg("limit") or 100
    if not 1 <= limit <= 500:
        raise ApiError(400, "invalid_parameter", "limit must be between 1 and 500")
    return limit


@bp.post("/care-teams")
@requires(StaffRole.ADMIN)
def create_team() -> ResponseReturnValue:
    data = body(CareTeamIn)
    try:
        team = create_care_team(db(), name=data.name, timezone=data.timezone, phone=data.phone)
    except EnrolmentError as exc:
        raise ApiError(400, "validation_failed", [{"field": exc.field, "message": exc.message}]) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    audit("create_care_team", ("care_team", team.id), None)
    db().commit()
    return jsonify(serialize.care_team(team)), 201


@bp.post("/patients")
@requires(StaffRole.ADMIN)
def create_patient() -> ResponseReturnValue:
    data = body(PatientIn)
    try:
        patient = enrol_patient(db(), **data.model_dump())
    except EnrolmentError as exc:
        raise ApiError(400, "validation_failed", [{"field": exc.field, "message": exc.message}]) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    audit("create_patient", ("patient", patient.id), patient.id)
    db().commit()
    return jsonify(serialize.patient(patient)), 201


@bp.get("/patients/<int:patient_id>")
@requires(*ANY_STAFF)
def get_patient(patient_id: int) -> ResponseReturnValue:
    patient: Patient = _get(Patient, patient_id, "patient")
    audit("view_patient", ("patient", patient.id), patient.id)
    db().commit()
    return jsonify(serialize.patient(patient))


@bp.post("/patients/<int:patient_id>/check-ins")
@requires(*ANY_STAFF)
def start_check_in(patient_id: int) -> ResponseReturnValue:
    data = body(CheckInIn)
    session = db()
    patient = None
    if patient_id <= 2**31 - 1:
        patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
    if patient is None:
        raise ApiError(404, "not_found", f"no patient {patient_id}")
    try:
        check_in = start_now(session, runtime(), patient, data.instrument)
    except CheckInError as exc:
        status = 404 if "unknown instrument" in str(exc) else 409
        raise ApiError(status, "not_found" if status == 404 else "conflict", str(exc)) from None
    audit("start_check_in", ("check_in", check_in.id), patient.id)
    session.commit()
    return jsonify(serialize.check_in(check_in)), 201


@bp.get("/check-ins/<int:check_in_id>")
@requires(*ANY_STAFF)
def get_check_in(check_in_id: int) -> ResponseReturnValue:
    check_in: CheckIn = _get(CheckIn, check_in_id, "check-in")
    audit("view_check_in", ("check_in", check_in.id), check_in.patient_id)
    db().commit()
    return jsonify(serialize.check_in(check_in))


@bp.get("/instruments")
@requires(*ANY_STAFF)
def list_instruments() -> ResponseReturnValue:
    return jsonify({"instruments": [serialize.instrument(i) for i in runtime().instruments.by_key.values()]})


@bp.get("/alerts")
@requires(*ANY_STAFF)
def list_alerts() -> ResponseReturnValue:
    query = select(Alert).order_by(Alert.urgency_rank.desc(), Alert.opened_at, Alert.id)
    patient_id = _int_arg("patient_id")
    if patient_id is not None:
        query = query.where(Alert.patient_id == patient_id)
    status = request.args.get("status")
    if status:
        try:
            query = query.where(Alert.status == AlertStatus(status))
        except ValueError:
            raise ApiError(
                400, "invalid_parameter", f"status must be one of {', '.join(AlertStatus)}"
            ) from None
    alerts = db().scalars(query.limit(_limit())).all()
    audit("list_alerts", ("alert", None), patient_id, status=status)
    db().commit()
    return jsonify({"alerts": [serialize.alert(a) for a in alerts]})


@bp.get("/alerts/<int:alert_id>")
@requires(*ANY_STAFF)
def get_alert(alert_id: int) -> ResponseReturnValue:
    alert: Alert = _get(Alert, alert_id, "alert")
    audit("view_alert", ("alert", alert.id), alert.patient_id)
    db().commit()
    return jsonify(serialize.alert(alert, with_events=True))


def _alert_for_update(alert_id: int) -> Alert:
    if alert_id > 2**31 - 1:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    alert = db().scalar(select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    return alert


@bp.post("/alerts/<int:alert_id>/acknowledge")
@requires(*ANY_STAFF)
def acknowledge_alert(alert_id: int) -> ResponseReturnValue:
    alert = _alert_for_update(alert_id)
    if alert.status == AlertStatus.RESOLVED:
        raise ApiError(409, "conflict", "the alert is resolved")
    acknowledge(db(), alert, staff_id=None, actor=actor(), now=runtime().now(), via="api")
    audit("acknowledge_alert", ("alert", alert.id), alert.patient_id)
    db().commit()
    return jsonify(serialize.alert(alert, with_events=True))


@bp.post("/alerts/<int:alert_id>/resolve")
@requires(*ANY_STAFF)
def resolve_alert(alert_id: int) -> ResponseReturnValue:
    data = body(ResolveIn)
    alert = _alert_for_update(alert_id)
    try:
        resolve(
            db(),
            alert,
            staff_id=None,
            actor=actor(),
            now=runtime().now(),
            outcome=data.outcome,
            note=data.note,
        )
    except AlertActionError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    audit("resolve_alert", ("alert", alert.id), alert.patient_id, outcome=data.outcome)
    db().commit()
    return jsonify(serialize.alert(alert, with_events=True))


@bp.post("/alerts/<int:alert_id>/notes")
@requires(*ANY_STAFF)
def note_alert(alert_id: int) -> ResponseReturnValue:
    data = body(NoteIn)
    alert = _alert_for_update(alert_id)
    add_note(db(), alert, staff_id=None, actor=actor(), now=runtime().now(), note=data.note)
    audit("note_alert", ("alert", alert.id), alert.patient_id)
    db().commit()
    return jsonify(serialize.alert(alert, with_events=True)), 201


@bp.get("/messages")
@requires(*ANY_STAFF)
def list_messages() -> ResponseReturnValue:
    patient_id = _int_arg("patient_id")
    if patient_id is None:
        raise ApiError(400, "invalid_parameter", "patient_id is required")
    rows = (
        db()
        .scalars(
            select(Message)
            .where(Message.patient_id == patient_id)
            .order_by(Message.id.desc())
            .limit(_limit())
        )
        .all()
    )
    audit("view_messages", ("patient", patient_id), patient_id)
    db().commit()
    return jsonify({"messages": [serialize.message(m) for m in rows]})


@bp.get("/patients/<int:patient_id>/schedules")
@requires(*ANY_STAFF)
def list_schedules(patient_id: int) -> ResponseReturnValue:
    patient: Patient = _get(Patient, patient_id, "patient")
    rows = db().scalars(select(Schedule).where(Schedule.patient_id == patient.id).order_by(Schedule.id)).all()
    audit("view_schedules", ("patient", patient.id), patient.id)
    db().commit()
    return jsonify({"schedules": [serialize.schedule(s, runtime().now(), patient.timezone) for s in rows]})


def _check_schedule(
    rrule: str | None, instrument: str | None, start: date | None, end: date | None
) -> str | None:
    if instrument is not None and runtime().instruments.latest(instrument) is None:
        raise ApiError(
            400, "validation_failed", [{"field": "instrument", "message": f"unknown {instrument!r}"}]
        )
    if start is not None and end is not None and end < start:
        raise ApiError(400, "validation_failed", [{"field": "end_date", "message": "is before start_date"}])
    if rrule is None:
        return None
    try:
        return validate_rrule(rrule)
    except ScheduleError as exc:
        raise ApiError(400, "validation_failed", [{"field": "rrule", "message": str(exc)}]) from None


@bp.post("/patients/<int:patient_id>/schedules")
@requires(StaffRole.ADMIN)
def create_schedule(patient_id: int) -> ResponseReturnValue:
    data = body(ScheduleIn)
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
    db().commit()
    return jsonify(serialize.schedule(schedule, runtime().now(), patient.timezone)), 201


def _schedule_of(patient_id: int, schedule_id: int) -> tuple[Patient, Schedule]:
    patient: Patient = _get(Patient, patient_id, "patient")
    schedule: Schedule = _get(Schedule, schedule_id, "schedule")
    if schedule.patient_id != patient.id:
        raise ApiError(404, "not_found", f"no schedule {schedule_id} for patient {patient_id}")
    return patient, schedule


@bp.patch("/patients/<int:patient_id>/schedules/<int:schedule_id>")
@requires(StaffRole.ADMIN)
def update_schedule(patient_id: int, schedule_id: int) -> ResponseReturnValue:
    data = body(SchedulePatch)
    patient, schedule = _schedule_of(patient_id, schedule_id)
    start = data.start_date or schedule.start_date
    end = data.end_date if "end_date" in data.model_fields_set else schedule.end_date
    rrule = _check_schedule(data.rrule, None, start, end)
    if rrule is not None:
        schedule.rrule = rrule
    schedule.start_date, schedule.end_date = start, end
    if data.active is not None:
        schedule.active = data.active
    audit("update_schedule", ("schedule", schedule.id), patient.id)
    db().commit()
    return jsonify(serialize.schedule(schedule, runtime().now(), patient.timezone))


@bp.delete("/patients/<int:patient_id>/schedules/<int:schedule_id>")
@requires(StaffRole.ADMIN)
def delete_schedule(patient_id: int, schedule_id: int) -> ResponseReturnValue:
    patient, schedule = _schedule_of(patient_id, schedule_id)
    db().delete(schedule)
    audit("delete_schedule", ("schedule", schedule_id), patient.id)
    db().commit()
    return "", 204
