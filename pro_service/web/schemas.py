"""The REST API's contract: request and response models (pydantic). Requests are validated with these,
responses are built through them, and /api/v1/openapi.json is generated from them: they cannot drift apart."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.rules import CONTINENCE_STATES
from pro_service.services.admin import MAX_ON_CALL_LEVEL
from pro_service.services.alert_lifecycle import OUTCOMES, RAG_OUTCOMES

MAX_ID = 2**31 - 1
Id = int
OutcomeCode = Literal[
    "advised_emergency_care",
    "same_day_visit",
    "imaging_or_labs_ordered",
    "symptom_management_advice",
    "no_action_needed",
    "could_not_reach_patient",
]
assert set(OutcomeCode.__args__) == set(OUTCOMES)  # type: ignore[attr-defined]  # one list of outcomes
RagCode = Literal["red", "amber", "green"]
assert set(RagCode.__args__) == set(RAG_OUTCOMES)  # type: ignore[attr-defined]
Continence = Literal["continent", "bladder_problem", "bowel_problem", "bladder_and_bowel_problem", "catheter"]
assert Continence.__args__ == CONTINENCE_STATES  # type: ignore[attr-defined]


# At least one character that is not ASCII whitespace. Spelled out (not \\S) because Python's and
# ECMAScript's regex engines disagree on what \\s covers, and the same pattern runs in both (clients, tests).
NONBLANK = r"[^\t\n\v\f\r ]"


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; say so plainly instead of failing at the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain the NUL character")
        return value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- requests ---------------------------------------------------------------------------------------------


class CareTeamIn(In):
    name: str = Field(min_length=1, max_length=120, pattern=NONBLANK, examples=["Breast oncology"])
    timezone: str = Field(default="UTC", max_length=64, examples=["America/New_York"])
    phone: str | None = Field(default=None, max_length=32, examples=["+15550100000"])
    acute_oncology_phone: str | None = Field(
        default=None,
        max_length=32,
        description="the team's MSCC coordinator / acute oncology number (E.164), shown to nurses on alerts",
        examples=["+15550100099"],
    )


class ProfileIn(In):
    """The patient's baseline and call information. Send only the fields to change; null clears one
    ("not recorded": the rules treat it as unknown, never as normal)."""

    chronic_neuropathy: bool | None = Field(
        default=None,
        strict=True,
        description="known long-standing numbness or tingling (e.g. after chemotherapy)",
    )
    continence: Continence | None = Field(default=None, description="the patient's usual continence")
    usual_pain: int | None = Field(
        default=None, strict=True, ge=0, le=10, description="usual worst pain, 0-10"
    )
    spinal_levels: str | None = Field(default=None, max_length=120, examples=["T8, L2"])
    current_treatment: str | None = Field(default=None, max_length=500, examples=["Capecitabine"])
    bone_agent: str | None = Field(
        default=None, max_length=120, description="bone-targeted agent", examples=["denosumab"]
    )
    steroids: str | None = Field(default=None, max_length=200, examples=["dexamethasone 2 mg daily"])
    metastatic_sites: str | None = Field(
        default=None, max_length=500, examples=["bone (spine, pelvis), liver"]
    )
    analgesia: str | None = Field(default=None, max_length=500)
    ceiling_of_care: str | None = Field(default=None, max_length=500)
    carer_name: str | None = Field(default=None, max_length=120)
    carer_relation: str | None = Field(default=None, max_length=60, examples=["daughter"])
    carer_phone: str | None = Field(
        default=None, max_length=32, description="E.164", examples=["+15551230099"]
    )


class PatientIn(In):
    mrn: str = Field(min_length=1, max_length=64, pattern=NONBLANK, examples=["MRN-0042"])
    given_name: str = Field(min_length=1, max_length=120, pattern=NONBLANK, examples=["Ana"])
    family_name: str = Field(min_length=1, max_length=120, pattern=NONBLANK, examples=["Lopez"])
    phone: str = Field(min_length=3, max_length=32, description="E.164", examples=["+15551230001"])
    timezone: str = Field(max_length=64, description="IANA time zone", examples=["America/New_York"])
    language: Literal["en", "es"] = "en"
    care_team_id: int = Field(ge=1, le=MAX_ID)
    sms_consent: bool = True
    profile: ProfileIn | None = Field(default=None, description="baseline and call information")


class PatientPatch(In):
    given_name: str | None = Field(default=None, min_length=1, max_length=120, pattern=NONBLANK)
    family_name: str | None = Field(default=None, min_length=1, max_length=120, pattern=NONBLANK)
    phone: str | None = Field(default=None, min_length=3, max_length=32)
    timezone: str | None = Field(default=None, max_length=64)
    language: Literal["en", "es"] | None = None
    care_team_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: Literal["active", "paused", "discharged"] | None = None
    profile: ProfileIn | None = Field(default=None, description="the profile fields to change")


class CheckInIn(In):
    instrument: str = Field(min_length=1, max_length=64, pattern=NONBLANK, examples=["sre-weekly"])


class ScheduleIn(In):
    instrument: str = Field(min_length=1, max_length=64, pattern=NONBLANK, examples=["sre-weekly"])
    rrule: str = Field(
        min_length=1, max_length=500, pattern=NONBLANK, examples=["FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0"]
    )
    start_date: date
    end_date: date | None = None
    active: bool = True


class SchedulePatch(In):
    rrule: str | None = Field(default=None, min_length=1, max_length=500, pattern=NONBLANK)
    start_date: date | None = None
    end_date: date | None = None
    active: bool | None = None


class ResolveIn(In):
    outcome: OutcomeCode
    rag: RagCode = Field(description="the UKONS triage grade after the call: red, amber or green")
    note: str | None = Field(default=None, max_length=4000)


class AssignIn(In):
    staff_id: int = Field(
        ge=1, le=MAX_ID, description="an active nurse of the patient's care team, on call for it, or an admin"
    )


class NoteIn(In):
    note: str = Field(
        min_length=1, max_length=4000, pattern=NONBLANK, examples=["Called, advised ED attendance"]
    )


class StaffIn(In):
    email: str = Field(min_length=3, max_length=254, examples=["nurse@hospital.org"])
    name: str = Field(min_length=1, max_length=120, pattern=NONBLANK)
    role: Literal["nurse", "admin"]
    phone: str | None = Field(default=None, max_length=32, description="E.164, receives pages")
    password: str | None = Field(default=None, min_length=12, max_length=200)


class StaffPatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=120, pattern=NONBLANK)
    phone: str | None = Field(default=None, max_length=32)
    active: bool | None = None


class MemberIn(In):
    staff_id: int = Field(ge=1, le=MAX_ID)


class ShiftIn(In):
    staff_id: int = Field(ge=1, le=MAX_ID)
    level: int = Field(default=1, ge=1, le=MAX_ON_CALL_LEVEL)  # the form's rule too (services/admin.py)
    starts_at: datetime = Field(description="with a UTC offset")
    ends_at: datetime


TokenRole = Literal["nurse", "admin", "integration"]
# What an integration client's token may do (services/tokens.py): read: every read of the API and FHIR;
# labs:write: lab results in (FHIR, HL7); enrolment: patients, their schedules and profiles, check-ins;
# admin: staff, care teams, rotas, tokens, audit, and acting on alerts.
TokenScope = Literal["read", "labs:write", "enrolment", "admin"]


class TokenIn(In):
    """Exactly one owner: a staff member (`staff_id` or `staff_email`; the token acts with their current
    role and care teams) or an integration client (`client` and `scopes`)."""

    name: str = Field(min_length=1, max_length=120, pattern=NONBLANK, examples=["ward laptop"])
    staff_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    staff_email: str | None = Field(default=None, min_length=3, max_length=254, examples=["kim@example.org"])
    client: str | None = Field(default=None, min_length=1, max_length=60, examples=["EHR-interface"])
    scopes: list[TokenScope] | None = Field(
        default=None, max_length=4, description="a client's scopes (not for a staff member's token)"
    )


# ---- query strings ----------------------------------------------------------------------------------------


class Page(In):
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=50, ge=1, le=200)


class MemberRemovalQuery(In):
    end_shifts: bool = Field(
        default=False,
        description="Also end the person's current and future shifts on this team's rota (needed when "
        "they are on it: otherwise 409)",
    )


class AlertQuery(Page):
    patient_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: Literal["open", "acknowledged", "resolved"] | None = None
    urgency: Literal["urgent", "same_day", "routine"] | None = None
    category: str | None = Field(default=None, max_length=64)


class MessageQuery(Page):
    patient_id: int = Field(ge=1, le=MAX_ID)


class PatientQuery(Page):
    mrn: str | None = Field(default=None, max_length=64)
    care_team_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: Literal["active", "paused", "discharged"] | None = None


class CheckInQuery(Page):
    patient_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: Literal["pending", "in_progress", "completed", "expired", "cancelled"] | None = None


class LabQuery(Page):
    code: str | None = Field(
        default=None, max_length=16, pattern=r"^[0-9]{1,7}-[0-9]$", description="LOINC", examples=["17861-6"]
    )
    since: datetime | None = Field(default=None, description="samples taken at or after, with a UTC offset")
    history: bool = Field(default=False, description="every version (amended, withdrawn), not only current")

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time with a UTC offset, e.g. 2026-03-01T00:00:00Z")
        return value


class AuditQuery(Page):
    patient_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    actor: str | None = Field(default=None, max_length=160)
    action: str | None = Field(default=None, max_length=64)


# ---- responses --------------------------------------------------------------------------------------------


class ErrorOut(Out):
    error: str = Field(examples=["validation_failed"])
    detail: Any = Field(
        default=None, examples=[[{"field": "phone", "message": "is not a possible phone number"}]]
    )


class CareTeamOut(Out):
    id: int
    name: str
    timezone: str
    phone: str | None
    acute_oncology_phone: str | None


class ProfileOut(Out):
    """null: not recorded."""

    chronic_neuropathy: bool | None
    continence: Continence | None
    usual_pain: int | None
    spinal_levels: str | None
    current_treatment: str | None
    bone_agent: str | None
    steroids: str | None
    metastatic_sites: str | None
    analgesia: str | None
    ceiling_of_care: str | None
    carer_name: str | None
    carer_relation: str | None
    carer_phone: str | None
    updated_at: datetime | None


class PatientOut(Out):
    id: int
    mrn: str
    given_name: str
    family_name: str
    phone: str
    timezone: str
    language: str
    care_team_id: int
    status: str
    sms_consent: bool
    opted_out_at: datetime | None
    phone_problem: str | None
    created_at: datetime
    profile: ProfileOut


class AnswerOut(Out):
    status: Literal["answered", "unreadable", "missing", "skipped"]
    value: bool | int | list[int] | str | None
    raw_text: str | None
    question: str | None
    answered_at: datetime


class CheckInOut(Out):
    id: int
    patient_id: int
    schedule_id: int | None
    instrument: str
    instrument_version: int
    status: Literal["pending", "in_progress", "completed", "expired", "cancelled"]
    current_item: str | None
    scheduled_for: datetime | None
    started_at: datetime | None
    expires_at: datetime | None
    closed_at: datetime | None
    answers: dict[str, AnswerOut]


class ItemOut(Out):
    code: str
    kind: str
    text: dict[str, str]


class InstrumentOut(Out):
    code: str
    version: int
    title: dict[str, str]
    active: bool = Field(description="the version new patients are asked (their enrolment ruleset's)")
    items: list[ItemOut]


class RuleOut(Out):
    id: str
    category: str
    urgency: Literal["urgent", "same_day", "routine"]
    early: bool
    rationale: str


class RulesetOut(Out):
    name: str
    version: int
    instrument: str
    instrument_version: int = Field(description="the questionnaire version these rules are written for")
    active: bool = Field(
        description="new patients are enrolled on it (ENROL_RULESET_VERSION); enrolled patients keep "
        "their own version (Patient.ruleset_version) until an administrator moves them"
    )
    rules: list[RuleOut]
    combinations: list[dict[str, Any]]


class RulesetList(Out):
    rulesets: list[RulesetOut]


class UnansweredFlagOut(Out):
    item_code: str
    red_flag: str = Field(description="the category the question screens for")
    reason: Literal["no reply", "unreadable reply", "not asked yet"]


class SafetyTextOut(Out):
    state: Literal["delivered", "sent", "failed", "queued", "not sent"]
    at: datetime | None
    error_code: int | None


class CallScriptOut(Out):
    title: str
    steps: list[str]


class CallOut(Out):
    """What the nurse needs on the call. Never sent to staff phones: pages carry no PHI."""

    profile: ProfileOut
    acute_oncology_phone: str | None
    unanswered_red_flags: list[UnansweredFlagOut] | None = Field(
        description="red-flag questions of the alert's check-in with no usable answer; null: no check-in"
    )
    safety_text: SafetyTextOut = Field(description="the safety text to the patient for this alert")
    call_script: CallScriptOut | None


class EventOut(Out):
    kind: str
    actor: str
    at: datetime
    detail: dict[str, Any]


class AlertOut(Out):
    id: int
    ref: str
    patient_id: int
    check_in_id: int | None
    category: str
    urgency: Literal["urgent", "same_day", "routine"]
    status: Literal["open", "acknowledged", "resolved"]
    ruleset: str
    ruleset_version: int
    rule_ids: list[str]
    evidence: list[dict[str, Any]]
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    outcome_rag: RagCode | None
    outcome_note: str | None
    escalation_level: int
    assigned_to: int | None = Field(default=None, description="the staff id who owns the alert now")
    assigned_at: datetime | None = None
    events: list[EventOut] | None = None
    call: CallOut | None = Field(default=None, description="for the nurse's call (single-alert reads only)")


class MessageOut(Out):
    id: int
    direction: Literal["inbound", "outbound"]
    kind: str
    status: str
    patient_id: int | None
    check_in_id: int | None
    item_code: str | None
    body: str
    num_media: int
    twilio_sid: str | None
    error_code: int | None
    created_at: datetime
    sent_at: datetime | None


class ScheduleOut(Out):
    id: int
    patient_id: int
    instrument: str
    rrule: str
    start_date: date
    end_date: date | None
    active: bool
    next_due: datetime | None


class StaffOut(Out):
    id: int
    email: str
    name: str
    role: Literal["nurse", "admin"]
    phone: str | None
    active: bool


class ShiftOut(Out):
    id: int
    care_team_id: int
    staff_id: int
    level: int
    starts_at: datetime
    ends_at: datetime


class TokenOut(Out):
    id: int
    name: str
    owner: Literal["staff", "client"]
    staff_id: int | None = Field(description="the person the token acts for")
    client: str | None = Field(description="the integration client the token acts for")
    role: TokenRole | None = Field(description="a person's token: the person's current role")
    scopes: list[TokenScope] = Field(description="a client's token: what it may do")
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="shown once; store it now")


class LabOut(Out):
    id: int
    patient_id: int
    code: str = Field(description="LOINC", examples=["17861-6"])
    display: str
    status: Literal["preliminary", "final", "amended", "corrected", "entered-in-error"]
    value: float | None = Field(description="in the canonical unit; null when withdrawn")
    unit: str = Field(description="the canonical unit (UCUM)", examples=["mmol/L"])
    reported_value: float | None
    reported_unit: str | None
    reference_range: str | None
    interpretation: str | None
    taken_at: datetime = Field(description="when the sample was taken")
    issued_at: datetime | None
    received_at: datetime
    source: Literal["fhir", "hl7"]
    derived: bool = Field(
        description="computed by the service (adjusted calcium from total calcium and albumin)"
    )
    derived_from: list[int] = Field(description="the results it was computed from")
    current: bool = Field(description="false: a later version replaced this one (see replaced_by)")
    replaced_by: int | None
    withdrawn: bool
    withdrawn_at: datetime | None


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str | None
    patient_id: int | None
    detail: dict[str, Any]


class Paged(Out):
    page: int
    page_size: int
    has_more: bool


class PatientList(Paged):
    patients: list[PatientOut]


class AlertList(Paged):
    alerts: list[AlertOut]


class MessageList(Paged):
    messages: list[MessageOut]


class CheckInList(Paged):
    check_ins: list[CheckInOut]


class AuditList(Paged):
    entries: list[AuditOut]


class LabList(Paged):
    patient_id: int
    labs: list[LabOut]


class InstrumentList(Out):
    instruments: list[InstrumentOut]


class ScheduleList(Out):
    schedules: list[ScheduleOut]


class StaffList(Out):
    staff: list[StaffOut]


class CareTeamList(Out):
    care_teams: list[CareTeamOut]


class ShiftList(Out):
    shifts: list[ShiftOut]


class TokenList(Out):
    tokens: list[TokenOut]
