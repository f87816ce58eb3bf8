"""The patient's clinical profile: the baseline the red-flag rules compare with, and what the nurse needs on
the call (treatment, carer, ceiling of care, the team's acute oncology number, unanswered red flags, whether
the safety text reached the patient).

One writer (`update_profile`) for the admin pages, the nurse's page and the API: it validates every value,
holds the patient's row lock, writes the audit row naming each field changed, and leaves the commit to the
caller's unit of work (as services/patients.py does). `baseline_for` is what scoring reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.rules import CONTINENCE_STATES, Baseline
from pro_service.db import ROW_LOCK
from pro_service.instruments import InstrumentRegistry
from pro_service.models import (
    Alert,
    AnswerStatus,
    CareTeam,
    CheckIn,
    Message,
    MessageKind,
    MessageStatus,
    Patient,
    PatientProfile,
)
from pro_service.services.audit import record
from pro_service.services.errors import Invalid
from pro_service.services.patients import EnrolmentError, normalise_phone

BASELINE_FIELDS = ("chronic_neuropathy", "continence", "usual_pain", "spinal_levels")
# Free text the nurse reads on the call, with the column's width.
TEXT_FIELDS: Mapping[str, int] = {
    "spinal_levels": 120,
    "current_treatment": 500,
    "bone_agent": 120,
    "steroids": 200,
    "metastatic_sites": 500,
    "analgesia": 500,
    "ceiling_of_care": 500,
    "carer_name": 120,
    "carer_relation": 60,
}
PROFILE_FIELDS = (
    "chronic_neuropathy",
    "continence",
    "usual_pain",
    *(name for name in TEXT_FIELDS),
    "carer_phone",
)
# Baseline facts change what pages (chronic neuropathy silences "numbness as usual"): their audit row keeps
# the old and new value, so a silenced page can be traced to who recorded the fact. Free text and the
# carer's details are named, never copied into the log.
_AUDITED_VALUES = frozenset({"chronic_neuropathy", "continence", "usual_pain"})
CONTINENCE_LABELS: Mapping[str, str] = {
    "continent": "Continent",
    "bladder_problem": "Known bladder problem",
    "bowel_problem": "Known bowel problem",
    "bladder_and_bowel_problem": "Known bladder and bowel problem",
    "catheter": "Catheter",
}
assert set(CONTINENCE_LABELS) == set(CONTINENCE_STATES)
FIELD_LABELS: Mapping[str, str] = {
    "chronic_neuropathy": "Known chronic neuropathy",
    "continence": "Usual continence",
    "usual_pain": "Usual worst pain",
    "spinal_levels": "Known spinal metastases",
    "current_treatment": "Current treatment",
    "bone_agent": "Bone-targeted agent",
    "steroids": "Steroids",
    "metastatic_sites": "Known metastatic sites",
    "analgesia": "Analgesia",
    "ceiling_of_care": "Ceiling of care",
    "carer_name": "Carer's name",
    "carer_relation": "Carer's relation",
    "carer_phone": "Carer's phone",
}


class ProfileError(Invalid):
    """A value that cannot be recorded; `field` names it (the API answers 400, a form shows it there)."""

    @property
    def sentence(self) -> str:
        """For a form: the field's label and what is wrong with it."""
        return f"{FIELD_LABELS.get(self.field, self.field)} {self.message}"


def get_profile(session: Session, patient_id: int) -> PatientProfile | None:
    return session.get(PatientProfile, patient_id)


def to_baseline(profile: PatientProfile | None) -> Baseline | None:
    """The rules' view of a profile row; None when nothing of the baseline is recorded (unknown, never
    normal). A stored continence the rules do not know is unknown too."""
    if profile is None:
        return None
    continence = profile.continence if profile.continence in CONTINENCE_STATES else None
    baseline = Baseline(
        chronic_neuropathy=profile.chronic_neuropathy,
        continence=continence,
        usual_pain=profile.usual_pain,
        spinal_levels=profile.spinal_levels,
    )
    return None if baseline == Baseline() else baseline


def baseline_for(session: Session, patient_id: int) -> Baseline | None:
    """The patient's recorded baseline for scoring (None: none recorded)."""
    return to_baseline(get_profile(session, patient_id))


def _clean(name: str, value: object) -> object:
    """One validated value for `name` (None clears it)."""
    if name not in PROFILE_FIELDS:
        raise ProfileError(name, "is not a profile field")
    if value is None:
        return None
    if name == "chronic_neuropathy":
        if not isinstance(value, bool):
            raise ProfileError(name, "must be yes, no or not recorded")
        return value
    if name == "usual_pain":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise ProfileError(name, "must be a whole number from 0 to 10, or not recorded")
        return value
    if not isinstance(value, str):
        raise ProfileError(name, "must be text")
    text = value.strip()
    if "\x00" in text:
        raise ProfileError(name, "must not contain the NUL character")
    if not text:
        return None
    if name == "continence":
        if text not in CONTINENCE_STATES:
            raise ProfileError(name, f"must be one of {', '.join(CONTINENCE_STATES)}, or not recorded")
        return text
    if name == "carer_phone":
        try:
            return normalise_phone(text)
        except EnrolmentError as exc:
            raise ProfileError(name, exc.message) from None
    if len(text) > TEXT_FIELDS[name]:
        raise ProfileError(name, f"must be at most {TEXT_FIELDS[name]} characters")
    return text


def form_problems(form: Mapping[str, str]) -> list[ProfileError]:
    """Every problem with a form's profile fields at once (form_changes and update_profile stop at one)."""
    found: list[ProfileError] = []
    for name in PROFILE_FIELDS:
        if name not in form:
            continue
        try:
            _clean(name, form_changes({name: form[name]})[name])
        except ProfileError as exc:
            found.append(exc)
    return found


def form_changes(form: Mapping[str, str]) -> dict[str, object]:
    """An HTML form's strings → typed changes for `update_profile` (every profile field the form carries;
    an empty box clears the field). "yes" / "no" / "" for chronic neuropathy."""
    changes: dict[str, object] = {}
    for name in PROFILE_FIELDS:
        if name not in form:
            continue
        raw = (form.get(name) or "").strip()
        if name == "chronic_neuropathy":
            if raw not in ("", "yes", "no"):
                raise ProfileError(name, "must be yes, no or not recorded")
            changes[name] = None if not raw else raw == "yes"
        elif name == "usual_pain":
            if raw and not (raw.isascii() and raw.isdigit()):
                raise ProfileError(name, "must be a whole number from 0 to 10, or not recorded")
            changes[name] = int(raw) if raw else None
        else:
            changes[name] = raw
    return changes


def update_profile(
    session: Session,
    patient_id: int,
    changes: Mapping[str, object],
    *,
    actor: str,
    staff_id: int | None,
    now: datetime,
    ip: str | None = None,
) -> list[str]:
    """Record the changed fields of a patient's profile (creating the row on first use); returns their
    names. Every value is validated before anything is written; a change writes one audit row."""
    values = {name: _clean(name, value) for name, value in changes.items()}
    # The patient's row lock: two editors at once cannot both create the row (the loser would fail on the
    # primary key) nor interleave their fields.
    locked = session.scalar(select(Patient.id).where(Patient.id == patient_id).with_for_update(**ROW_LOCK))
    if locked is None:
        raise ProfileError("patient_id", f"no patient {patient_id}")
    profile = session.get(PatientProfile, patient_id)
    current = profile or PatientProfile(patient_id=patient_id)
    changed = [name for name, value in values.items() if getattr(current, name) != value]
    if not changed:
        return []
    detail: dict[str, Any] = {"fields": changed}
    baseline_moves = {
        name: {"from": getattr(current, name), "to": values[name]}
        for name in changed
        if name in _AUDITED_VALUES
    }
    if baseline_moves:
        detail["baseline"] = baseline_moves
    if profile is None:
        session.add(current)
    for name in changed:
        setattr(current, name, values[name])
    current.updated_at = now
    current.updated_by_id = staff_id
    session.flush()
    record(
        session,
        actor=actor,
        action="update_patient_profile",
        subject=("patient", patient_id),
        patient_id=patient_id,
        detail=detail,
        ip=ip,
        at=now,
    )
    return changed


# --- what the nurse needs on the call --------------------------------------------------------------


@dataclass(frozen=True)
class UnansweredFlag:
    item_code: str
    red_flag: str  # the category the question screens for
    reason: str  # "no reply" | "unreadable reply" | "not asked yet"


@dataclass(frozen=True)
class SafetyText:
    state: str  # "delivered" | "sent" | "failed" | "queued" | "not sent"
    at: datetime | None  # when it was sent (or last changed)
    error_code: int | None


@dataclass(frozen=True)
class CallInfo:
    profile: PatientProfile | None
    acute_oncology_phone: str | None
    # None: the alert has no check-in (raised by a message or a lab result), so there is nothing to list.
    unanswered_red_flags: list[UnansweredFlag] | None
    safety_text: SafetyText


_SAFETY_STATES: Mapping[MessageStatus, str] = {
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.SENT: "sent",
    MessageStatus.ACCEPTED: "sent",
    MessageStatus.FAILED: "failed",
    MessageStatus.UNDELIVERED: "failed",
    MessageStatus.CANCELLED: "failed",
    MessageStatus.QUEUED: "queued",
    MessageStatus.SENDING: "queued",
    MessageStatus.UNCERTAIN: "queued",
}


def unanswered_red_flags(check_in: CheckIn, instruments: InstrumentRegistry) -> list[UnansweredFlag]:
    """The check-in's red-flag questions with no usable answer: never answered, or answered in a way that
    could not be read. Skipped by the questionnaire's own logic is an answer (the question did not apply)."""
    try:
        instrument = instruments.get(check_in.instrument_code, check_in.instrument_version)
    except KeyError:
        return []
    answers = {a.item_code: a for a in check_in.answers}
    out = []
    for item in instrument.items:
        if item.red_flag is None:
            continue
        answer = answers.get(item.code)
        if answer is None:
            reason = "not asked yet" if check_in.status.is_open else "no reply"
        elif answer.status == AnswerStatus.UNREADABLE:
            reason = "unreadable reply"
        elif answer.status == AnswerStatus.MISSING or (
            answer.status == AnswerStatus.ANSWERED and answer.value is None
        ):
            reason = "no reply"
        else:
            continue
        out.append(UnansweredFlag(item.code, item.red_flag, reason))
    return out


def safety_text_state(session: Session, alert: Alert) -> SafetyText:
    """The patient's safety text for this alert, as the provider last reported it. One text answers a
    patient message however many alerts it raised, so it may be filed under a sibling alert: it is found by
    the message it answered (its dedup key) as well as by this alert."""
    message_ids = [ev.get("message_id") for ev in alert.evidence if isinstance(ev.get("message_id"), int)]
    keys = [f"safety:message:{mid}" for mid in message_ids]
    stmt = select(Message).where(Message.kind == MessageKind.SAFETY)
    stmt = (
        stmt.where(Message.alert_id == alert.id)
        if not keys
        else stmt.where((Message.alert_id == alert.id) | Message.dedup_key.in_(keys))
    )
    message = session.scalar(stmt.order_by(Message.id.desc()).limit(1))
    if message is None:
        return SafetyText("not sent", None, None)
    return SafetyText(
        _SAFETY_STATES.get(message.status, message.status.value),
        message.sent_at or message.updated_at,
        message.error_code,
    )


def call_info(session: Session, alert: Alert, instruments: InstrumentRegistry) -> CallInfo:
    """Everything for the nurse's call about `alert`. The caller audits the view of the record."""
    team_phone = session.scalar(
        select(CareTeam.acute_oncology_phone)
        .join(Patient, Patient.care_team_id == CareTeam.id)
        .where(Patient.id == alert.patient_id)
    )
    check_in = session.get(CheckIn, alert.check_in_id) if alert.check_in_id is not None else None
    return CallInfo(
        profile=get_profile(session, alert.patient_id),
        acute_oncology_phone=team_phone,
        unanswered_red_flags=None if check_in is None else unanswered_red_flags(check_in, instruments),
        safety_text=safety_text_state(session, alert),
    )
