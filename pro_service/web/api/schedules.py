"""A patient's check-in schedules."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import Patient, Schedule
from pro_service.services import admin, admin_removals, tokens
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import audit, get_or_404, load_patient
from pro_service.web.api.routing import ADMIN, route
from pro_service.web.common import db, runtime


@route(
    "GET",
    "/patients/<int:patient_id>/schedules",
    summary="A patient's schedules",
    tag="schedules",
    response=s.ScheduleList,
)
def list_schedules(patient_id: int) -> s.ScheduleList:
    patient = load_patient(patient_id)
    rows = db().scalars(select(Schedule).where(Schedule.patient_id == patient.id).order_by(Schedule.id)).all()
    audit("view_schedules", ("patient", patient.id), patient.id)
    return s.ScheduleList(schedules=[serialize.schedule(x, runtime().now(), patient.timezone) for x in rows])


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
    patient: Patient = get_or_404(Patient, patient_id, "patient")
    schedule = admin.save_schedule(
        db(),
        patient,
        schedule=None,
        instrument_code=data.instrument,
        rrule=data.rrule,
        start_date=data.start_date,
        end_date=data.end_date,
        active=data.active,
        now=runtime().now(),
        instruments=runtime().instruments,
    )
    audit("create_schedule", ("schedule", schedule.id), patient.id)
    return serialize.schedule(schedule, runtime().now(), patient.timezone)


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
    patient, schedule = admin.patient_schedule(db(), patient_id, schedule_id)
    # A PATCH: what is not sent stays as it is (end_date sent as null clears it).
    sent = data.model_fields_set
    admin.save_schedule(
        db(),
        patient,
        schedule=schedule,
        instrument_code=schedule.instrument_code,
        rrule=data.rrule or schedule.rrule,
        start_date=data.start_date or schedule.start_date,
        end_date=data.end_date if "end_date" in sent else schedule.end_date,
        active=schedule.active if data.active is None else data.active,
        now=runtime().now(),
    )
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
    patient, schedule = admin.patient_schedule(db(), patient_id, schedule_id)
    admin_removals.delete_schedule(db(), schedule)
    audit("delete_schedule", ("schedule", schedule_id), patient.id)
