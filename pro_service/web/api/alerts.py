"""Alerts: the list, the record, and the actions on it."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import Alert, AlertStatus, StaffUser
from pro_service.services import access, clinical_profile
from pro_service.services.alert_lifecycle import AlertActionError, acknowledge, add_note, assign, resolve
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import (
    acting_staff_id,
    actor,
    audit,
    invalid,
    load_alert,
    page_of,
    patient_scope,
)
from pro_service.web.api.routing import ApiError, route
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed


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
    rows, more = page_of(stmt, query)
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
    alert = load_alert(alert_id)
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
    alert = load_alert(alert_id, lock=True)
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
    alert = load_alert(alert_id, lock=True)
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
    alert = load_alert(alert_id, lock=True)
    to_staff = db().get(StaffUser, data.staff_id)
    if to_staff is None:
        raise invalid("staff_id", f"no staff member {data.staff_id}")
    try:
        changed = assign(
            db(), alert, to_staff, by_staff_id=acting_staff_id(), actor=actor(), now=runtime().now()
        )
    except AlertActionError as exc:
        if alert.status == AlertStatus.RESOLVED:
            raise ApiError(409, "conflict", str(exc)) from None
        raise invalid("staff_id", str(exc)) from None
    if changed:
        audit("assign_alert", ("alert", alert.id), alert.patient_id, to_staff_id=to_staff.id)
    db().expire(alert, ["events"])  # reloaded (after an autoflush) with the event just recorded
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
    alert = load_alert(alert_id, lock=True)
    try:
        add_note(db(), alert, staff_id=acting_staff_id(), actor=actor(), now=runtime().now(), note=data.note)
    except AlertActionError as exc:
        raise invalid("note", str(exc)) from None
    audit("note_alert", ("alert", alert.id), alert.patient_id)
    db().expire(alert, ["events"])  # reloaded (after an autoflush) with the event just recorded
    return serialize.alert(alert, with_events=True)
