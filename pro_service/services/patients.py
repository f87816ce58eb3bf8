"""Enrolment: care teams and patients, validated (E.164 phone, IANA zone, supported language)."""

from __future__ import annotations

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.instruments import LANGUAGES
from pro_service.models import CareTeam, Patient
from pro_service.runtime import Runtime
from pro_service.scheduling import ScheduleError, validate_timezone


class EnrolmentError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(ValueError):
    pass


def normalise_phone(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise EnrolmentError("phone", "must be an E.164 number such as +15551234567") from None
    # "Possible" (right length for the country), not "valid": numbering metadata lags reality, and the
    # provider tells us about a dead number (the patient record is then flagged for an administrator).
    if not phonenumbers.is_possible_number(number):
        raise EnrolmentError("phone", "is not a possible phone number for its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_timezone(name: str, field: str = "timezone") -> str:
    try:
        validate_timezone(name)
    except ScheduleError as exc:
        raise EnrolmentError(field, str(exc)) from None
    return name


def create_care_team(session: Session, *, name: str, timezone: str, phone: str | None) -> CareTeam:
    if session.scalar(select(CareTeam.id).where(CareTeam.name == name)) is not None:
        raise Conflict(f"a care team named {name!r} exists")
    team = CareTeam(name=name, timezone=check_timezone(timezone), phone=phone)
    session.add(team)
    session.flush()
    return team


def enrol_patient(
    session: Session,
    *,
    mrn: str,
    given_name: str,
    family_name: str,
    phone: str,
    timezone: str,
    language: str,
    care_team_id: int,
    sms_consent: bool = True,
) -> Patient:
    phone = normalise_phone(phone)
    check_timezone(timezone)
    if language not in LANGUAGES:
        raise EnrolmentError("language", f"must be one of {', '.join(LANGUAGES)}")
    if session.get(CareTeam, care_team_id) is None:
        raise EnrolmentError("care_team_id", f"no care team {care_team_id}")
    if session.scalar(select(Patient.id).where(Patient.mrn == mrn)) is not None:
        raise Conflict("a patient with this MRN is already enrolled")
    if session.scalar(select(Patient.id).where(Patient.phone == phone)) is not None:
        raise Conflict("another patient has this phone number")
    patient = Patient(
        mrn=mrn,
        given_name=given_name,
        family_name=family_name,
        phone=phone,
        timezone=timezone,
        language=language,
        care_team_id=care_team_id,
        sms_consent=sms_consent,
    )
    session.add(patient)
    session.flush()
    return patient


def update_patient(session: Session, rt: Runtime, patient: Patient, **changes: object) -> None:
    """Edit a patient's record; pausing stops schedules, discharging also cancels what is open."""
    from pro_service.models import PatientStatus
    from pro_service.services.consent import cancel_open_check_ins

    if "phone" in changes and changes["phone"] is not None:
        phone = normalise_phone(str(changes["phone"]))
        other = session.scalar(select(Patient.id).where(Patient.phone == phone, Patient.id != patient.id))
        if other is not None:
            raise Conflict("another patient has this phone number")
        patient.phone = phone
        patient.phone_problem = None  # a corrected number gets a fresh start
    if changes.get("timezone") is not None:
        patient.timezone = check_timezone(str(changes["timezone"]))
    if changes.get("care_team_id") is not None:
        team_id = int(str(changes["care_team_id"]))
        if session.get(CareTeam, team_id) is None:
            raise EnrolmentError("care_team_id", f"no care team {team_id}")
        patient.care_team_id = team_id
    for name in ("given_name", "family_name", "language"):
        if changes.get(name) is not None:
            setattr(patient, name, changes[name])
    if changes.get("status") is not None:
        patient.status = PatientStatus(str(changes["status"]))
        if patient.status != PatientStatus.ACTIVE:
            cancel_open_check_ins(session, patient, rt.now())
    patient.updated_at = rt.now()
