"""Rows → the API's response models (`schemas`). One function per resource, so each shape is defined once."""

from __future__ import annotations

from datetime import datetime

from alerts.rules import Rule
from alerts.ruleset import Ruleset
from pro_service.call_scripts import CallScript
from pro_service.instruments import Instrument
from pro_service.models import (
    Alert,
    ApiToken,
    CareTeam,
    CheckIn,
    LabResult,
    LabStatus,
    Message,
    OnCallShift,
    Patient,
    PatientProfile,
    Schedule,
    StaffUser,
)
from pro_service.scheduling import ScheduleError, next_occurrence
from pro_service.services import tokens
from pro_service.services.clinical_profile import PROFILE_FIELDS, CallInfo
from pro_service.web import schemas as s


def care_team(team: CareTeam) -> s.CareTeamOut:
    return s.CareTeamOut.model_validate(team)


def profile(row: PatientProfile | None) -> s.ProfileOut:
    """Every field, null where not recorded (no row: nothing recorded)."""
    values = {name: getattr(row, name) if row else None for name in PROFILE_FIELDS}
    return s.ProfileOut(**values, updated_at=row.updated_at if row else None)


def patient(p: Patient, profile_row: PatientProfile | None) -> s.PatientOut:
    return s.PatientOut(
        id=p.id,
        mrn=p.mrn,
        given_name=p.given_name,
        family_name=p.family_name,
        phone=p.phone,
        timezone=p.timezone,
        language=p.language,
        care_team_id=p.care_team_id,
        status=p.status.value,
        sms_consent=p.sms_consent,
        opted_out_at=p.opted_out_at,
        phone_problem=p.phone_problem,
        created_at=p.created_at,
        profile=profile(profile_row),
    )


def check_in(c: CheckIn) -> s.CheckInOut:
    return s.CheckInOut(
        id=c.id,
        patient_id=c.patient_id,
        schedule_id=c.schedule_id,
        instrument=c.instrument_code,
        instrument_version=c.instrument_version,
        status=c.status.value,
        current_item=c.current_item,
        scheduled_for=c.scheduled_for,
        started_at=c.started_at,
        expires_at=c.expires_at,
        closed_at=c.closed_at,
        answers={
            a.item_code: s.AnswerOut(
                status=a.status.value,
                value=a.value,
                raw_text=a.raw_text,
                question=a.question,
                answered_at=a.answered_at,
            )
            for a in c.answers
        },
    )


def instrument(i: Instrument, active: Instrument | None) -> s.InstrumentOut:
    return s.InstrumentOut(
        code=i.code,
        version=i.version,
        title=i.title,
        active=active is not None and (active.code, active.version) == (i.code, i.version),
        items=[s.ItemOut(code=item.code, kind=item.kind, text=item.text) for item in i.items],
    )


def call(info: CallInfo, script: CallScript | None) -> s.CallOut:
    flags = info.unanswered_red_flags
    return s.CallOut(
        profile=profile(info.profile),
        acute_oncology_phone=info.acute_oncology_phone,
        unanswered_red_flags=None
        if flags is None
        else [
            s.UnansweredFlagOut(item_code=f.item_code, red_flag=f.red_flag, reason=f.reason) for f in flags
        ],
        safety_text=s.SafetyTextOut(
            state=info.safety_text.state, at=info.safety_text.at, error_code=info.safety_text.error_code
        ),
        call_script=None if script is None else s.CallScriptOut(title=script.title, steps=list(script.steps)),
    )


def alert(a: Alert, *, with_events: bool = False, call_out: s.CallOut | None = None) -> s.AlertOut:
    events = None
    if with_events:
        events = [s.EventOut(kind=e.kind, actor=e.actor, at=e.created_at, detail=e.detail) for e in a.events]
    return s.AlertOut(
        id=a.id,
        ref=a.ref,
        patient_id=a.patient_id,
        check_in_id=a.check_in_id,
        category=a.category,
        urgency=a.urgency,
        status=a.status.value,
        ruleset=a.ruleset,
        ruleset_version=a.ruleset_version,
        rule_ids=list(a.rule_ids),
        evidence=list(a.evidence),
        opened_at=a.opened_at,
        acknowledged_at=a.acknowledged_at,
        resolved_at=a.resolved_at,
        outcome=a.outcome,
        outcome_rag=a.outcome_rag,
        outcome_note=a.outcome_note,
        escalation_level=a.escalation_level,
        assigned_to=a.assigned_to_id,
        assigned_at=a.assigned_at,
        events=events,
        call=call_out,
    )


def message(m: Message) -> s.MessageOut:
    return s.MessageOut(
        id=m.id,
        direction=m.direction.value,
        kind=m.kind.value,
        status=m.status.value,
        patient_id=m.patient_id,
        check_in_id=m.check_in_id,
        item_code=m.item_code,
        body=m.body,
        num_media=m.num_media,
        twilio_sid=m.twilio_sid,
        error_code=m.error_code,
        created_at=m.created_at,
        sent_at=m.sent_at,
    )


def schedule(x: Schedule, now: datetime, tz: str) -> s.ScheduleOut:
    try:
        upcoming = next_occurrence(x.rrule, tz, x.start_date, x.end_date, now) if x.active else None
    except ScheduleError:
        upcoming = None
    return s.ScheduleOut(
        id=x.id,
        patient_id=x.patient_id,
        instrument=x.instrument_code,
        rrule=x.rrule,
        start_date=x.start_date,
        end_date=x.end_date,
        active=x.active,
        next_due=upcoming,
    )


def staff(m: StaffUser) -> s.StaffOut:
    return s.StaffOut(id=m.id, email=m.email, name=m.name, role=m.role.value, phone=m.phone, active=m.active)


def shift(x: OnCallShift) -> s.ShiftOut:
    return s.ShiftOut.model_validate(x)


def token(t: ApiToken) -> s.TokenOut:
    return s.TokenOut(
        id=t.id,
        name=t.name,
        owner="staff" if t.staff_id is not None else "client",
        staff_id=t.staff_id,
        client=t.client_name,
        role=t.staff.role.value if t.staff is not None else None,
        scopes=sorted(tokens.scopes_of(t), key=tokens.SCOPES.index),
        prefix=t.prefix,
        created_at=t.created_at,
        revoked_at=t.revoked_at,
    )


def lab(r: LabResult) -> s.LabOut:
    withdrawn = r.status == LabStatus.ENTERED_IN_ERROR or r.withdrawn_at is not None
    inputs = r.raw.get("derived_from", []) if r.derived else []
    return s.LabOut(
        id=r.id,
        patient_id=r.patient_id,
        code=r.code,
        display=r.display,
        status=r.status.value,
        value=None if withdrawn else r.canonical_value,
        unit=r.canonical_unit,
        reported_value=r.value,
        reported_unit=r.unit,
        reference_range=r.reference_range,
        interpretation=r.interpretation,
        taken_at=r.effective_at,
        issued_at=r.issued_at,
        received_at=r.received_at,
        source=r.source.value,
        derived=r.derived,
        derived_from=[i for i in inputs if isinstance(i, int)],
        current=r.replaced_by_id is None,
        replaced_by=r.replaced_by_id,
        withdrawn=withdrawn,
        withdrawn_at=r.withdrawn_at,
    )


def ruleset(r: Ruleset, active: bool) -> s.RulesetOut:
    rules = []
    for rule in r.rules:
        # A message rule's urgency depends on the text: routine, or the warning urgency on a warning phrase.
        urgency = rule.urgency if isinstance(rule, Rule) else r.message_urgency
        rules.append(
            s.RuleOut(
                id=rule.id,
                category=rule.category,
                urgency=urgency.value,
                early=rule.early,
                rationale=rule.rationale,
            )
        )
    combinations = [
        {
            "id": c.id,
            "enabled": c.enabled,
            "min_categories": c.min_categories,
            "of_urgency": c.of_urgency.value,
            "raise_to": c.raise_to.value,
            "rationale": c.rationale,
        }
        for c in r.combinations
    ]
    return s.RulesetOut(
        name=r.name,
        version=r.version,
        instrument=r.instrument,
        instrument_version=r.instrument_version,
        active=active,
        rules=rules,
        combinations=combinations,
    )
