"""Patients and their clinical profile."""

from __future__ import annotations

from sqlalchemy import select

from pro_service.models import Patient, PatientProfile, PatientStatus
from pro_service.services import access, clinical_profile, patients, tokens
from pro_service.web import schemas as s
from pro_service.web import serialize
from pro_service.web.api.context import (
    actor,
    audit,
    get_or_404,
    load_patient,
    page_of,
    patient_out,
    patient_scope,
    save_profile,
)
from pro_service.web.api.routing import ADMIN, route
from pro_service.web.common import db, runtime
from pro_service.web.disclosure import disclosed


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
    patient = patients.enrol_patient(
        db(), **data.model_dump(exclude={"profile"}), ruleset_version=runtime().enrolment_ruleset.version
    )
    save_profile(patient.id, data.profile)
    audit("create_patient", ("patient", patient.id), patient.id)
    return patient_out(patient)


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
    rows, more = page_of(stmt, query)
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
    patient = load_patient(patient_id)
    audit("view_patient", ("patient", patient.id), patient.id)
    return patient_out(patient)


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
    patient: Patient = get_or_404(Patient, patient_id, "patient", lock=True)
    changes = data.model_dump(exclude_unset=True, exclude={"status", "profile"})
    patients.update_patient(db(), patient, **changes)
    save_profile(patient.id, data.profile)
    if data.status is not None:
        patients.set_patient_status(db(), patient, PatientStatus(data.status), runtime().now())
    audit("update_patient", ("patient", patient.id), patient.id, fields=sorted(data.model_fields_set))
    return patient_out(patient)


@route(
    "GET",
    "/patients/<int:patient_id>/profile",
    summary="A patient's baseline and call information",
    tag="patients",
    response=s.ProfileOut,
)
def get_profile(patient_id: int) -> s.ProfileOut:
    patient = load_patient(patient_id)
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
    patient = load_patient(patient_id)
    save_profile(patient.id, data)
    return serialize.profile(clinical_profile.get_profile(db(), patient.id))
