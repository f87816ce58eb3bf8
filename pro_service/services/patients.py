"""Enrolment: care teams and patients, validated (E.164 phone, IANA zone, supported language)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pro_service.db import ROW_LOCK
from pro_service.instruments import LANGUAGES
from pro_service.models import CareTeam, Patient, PatientStatus, Schedule, utcnow
from pro_service.scheduling import ScheduleError, validate_timezone
from pro_service.services.errors import Conflict, Invalid

__all__ = ["Conflict", "EnrolmentError"]


class EnrolmentError(Invalid):
    """A patient or care-team value that cannot be accepted."""


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
    ruleset_version: int | None = None,
) -> Patient:
    """Enrol a patient: validated as the patient form is (patient_problems), refused at the first problem:
    EnrolmentError for a bad value, Conflict for a clash with another patient (the MRN, the phone)."""
    problems = patient_problems(
        session,
        mrn=mrn,
        given_name=given_name,
        family_name=family_name,
        phone=phone,
        timezone=timezone,
        language=language,
        care_team_id=care_team_id,
    )
    if problems:
        # A bad value before a clash: a request that cannot be accepted is a 400 whatever else it matches.
        raise next((p for p in problems if not p.conflict), problems[0]).error()
    mrn, phone = mrn.strip(), normalise_phone(phone)
    patient = Patient(
        mrn=mrn,
        given_name=given_name,
        family_name=family_name,
        phone=phone,
        timezone=timezone,
        language=language,
        care_team_id=care_team_id,
        sms_consent=sms_consent,
        consent_at=utcnow() if sms_consent else None,
        # Pinned at enrolment: a later change of ENROL_RULESET_VERSION moves nobody already enrolled.
        ruleset_version=ruleset_version,
    )
    session.add(patient)
    session.flush()
    return patient


@dataclass(frozen=True)
class FieldProblem:
    field: str  # the form field / API property
    message: str  # what is wrong, to follow the field's label
    conflict: bool = False  # a clash with another patient, not a bad value

    def error(self) -> EnrolmentError | Conflict:
        """The problem raised by a use case that stops at the first: a clash is a Conflict whose message
        stands alone (an API answer), a bad value an EnrolmentError at its field."""
        if self.conflict:
            return Conflict(f"{FIELD_NAMES.get(self.field, self.field)} {self.message}", field=self.field)
        return EnrolmentError(self.field, self.message)


# How a clash names its field when it stands alone ("MRN is already enrolled (DEMO-001)").
FIELD_NAMES = {"mrn": "MRN", "phone": "phone"}


def patient_problems(
    session: Session,
    *,
    mrn: str | None,
    given_name: str,
    family_name: str,
    phone: str,
    timezone: str,
    language: str,
    care_team_id: int,
    patient_id: int | None = None,
) -> list[FieldProblem]:
    """Every problem with a patient form at once (a form shows them together, each at its field); the one
    validation of an enrolment, which stops at the first (enrol_patient). mrn None: an edit (the MRN does not
    change)."""
    found: list[FieldProblem] = []
    if mrn is not None:
        if not mrn.strip():
            found.append(FieldProblem("mrn", "is required"))
        else:
            same = session.scalar(select(Patient.mrn).where(func.lower(Patient.mrn) == mrn.strip().lower()))
            if same is not None:
                found.append(FieldProblem("mrn", f"is already enrolled ({same})", conflict=True))
    for name, text in (("given_name", given_name), ("family_name", family_name)):
        if not text.strip():
            found.append(FieldProblem(name, "is required"))
    try:
        normalised = normalise_phone(phone)
    except EnrolmentError as exc:
        found.append(FieldProblem("phone", exc.message))
    else:
        other = session.scalar(
            select(Patient.id).where(Patient.phone == normalised, Patient.id != (patient_id or 0))
        )
        if other is not None:
            found.append(FieldProblem("phone", "belongs to another patient", conflict=True))
    try:
        check_timezone(timezone)
    except EnrolmentError as exc:
        found.append(FieldProblem("timezone", exc.message))
    if language not in LANGUAGES:
        found.append(FieldProblem("language", f"must be one of {', '.join(LANGUAGES)}"))
    if session.get(CareTeam, care_team_id) is None:
        found.append(FieldProblem("care_team_id", "choose a care team"))
    return found


def update_patient(
    session: Session,
    patient: Patient,
    *,
    given_name: str | None = None,
    family_name: str | None = None,
    phone: str | None = None,
    timezone: str | None = None,
    language: str | None = None,
    care_team_id: int | None = None,
    clear_phone_problem: bool = False,
) -> list[str]:
    """Edit a patient's record (None: leave as is). Returns the names of the fields that changed, for the
    audit row (never the values). The API's PATCH and the admin form both come here."""
    values: dict[str, object] = {}
    for name, text in (("given_name", given_name), ("family_name", family_name)):
        if text is not None:
            if not text.strip():
                raise EnrolmentError(name, "is required")
            values[name] = text.strip()
    if phone is not None:
        values["phone"] = normalise_phone(phone)
        other = session.scalar(
            select(Patient.id).where(Patient.phone == values["phone"], Patient.id != patient.id)
        )
        if other is not None:
            raise Conflict("another patient has this phone number")
    if timezone is not None:
        values["timezone"] = check_timezone(timezone)
    if language is not None:
        if language not in LANGUAGES:
            raise EnrolmentError("language", f"must be one of {', '.join(LANGUAGES)}")
        values["language"] = language
    if care_team_id is not None:
        if session.get(CareTeam, care_team_id) is None:
            raise EnrolmentError("care_team_id", f"no care team {care_team_id}")
        values["care_team_id"] = care_team_id
    changed = [name for name, value in values.items() if getattr(patient, name) != value]
    for name in changed:
        setattr(patient, name, values[name])
    if "timezone" in changed:
        # Their schedules now fall at other instants: the next tick looks at each of them again.
        session.execute(update(Schedule).where(Schedule.patient_id == patient.id).values(next_due_at=None))
    # A corrected number (or an administrator's say-so) gets a fresh start.
    if ("phone" in changed or clear_phone_problem) and patient.phone_problem is not None:
        patient.phone_problem = None
        changed.append("phone_problem")
    return changed


def set_patient_status(session: Session, patient: Patient, status: PatientStatus, now: datetime) -> int:
    """Pause, resume or discharge. Pausing or discharging cancels the open check-in; returns how many."""
    from pro_service.services import check_ins

    # Under the patient's row lock, as the worker handles their replies: a discharge never interleaves
    # with a reply that is starting or answering a check-in. (A locking read, not a refresh: a refresh
    # would drop the caller's unsaved edits of the same request.)
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update(**ROW_LOCK))
    patient.status = status
    patient.updated_at = now
    if status == PatientStatus.ACTIVE:
        return 0
    reason: check_ins.CancelReason = "paused" if status == PatientStatus.PAUSED else "discharged"
    return len(check_ins.cancel_open(session, patient.id, now, reason))
