"""Rows → JSON for the API. One function per resource so the shapes are defined in one place."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pro_service.instruments import Instrument
from pro_service.models import Alert, CareTeam, CheckIn, Message, Patient, Schedule
from pro_service.scheduling import ScheduleError, next_occurrence


def _ts(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def care_team(team: CareTeam) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "timezone": team.timezone, "phone": team.phone}


def patient(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "mrn": p.mrn,
        "given_name": p.given_name,
        "family_name": p.family_name,
        "phone": p.phone,
        "timezone": p.timezone,
        "language": p.language,
        "care_team_id": p.care_team_id,
        "status": p.status.value,
        "sms_consent": p.sms_consent,
        "opted_out_at": _ts(p.opted_out_at),
        "phone_problem": p.phone_problem,
        "created_at": _ts(p.created_at),
    }


def check_in(c: CheckIn) -> dict[str, Any]:
    return {
        "id": c.id,
        "patient_id": c.patient_id,
        "schedule_id": c.schedule_id,
        "instrument": c.instrument_code,
        "instrument_version": c.instrument_version,
        "status": c.status.value,
        "current_item": c.current_item,
        "scheduled_for": _ts(c.scheduled_for),
        "started_at": _ts(c.started_at),
        "expires_at": _ts(c.expires_at),
        "closed_at": _ts(c.closed_at),
        "answers": {
            a.item_code: {
                "status": a.status.value,
                "value": a.value,
                "raw_text": a.raw_text,
                "question": a.question,
                "answered_at": _ts(a.answered_at),
            }
            for a in c.answers
        },
    }


def instrument(i: Instrument) -> dict[str, Any]:
    return {
        "code": i.code,
        "version": i.version,
        "title": i.title,
        "items": [{"code": item.code, "kind": item.kind, "text": item.text} for item in i.items],
    }


def alert(a: Alert, *, with_events: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "ref": a.ref,
        "patient_id": a.patient_id,
        "check_in_id": a.check_in_id,
        "category": a.category,
        "urgency": a.urgency,
        "status": a.status.value,
        "ruleset": a.ruleset,
        "ruleset_version": a.ruleset_version,
        "rule_ids": a.rule_ids,
        "evidence": a.evidence,
        "opened_at": _ts(a.opened_at),
        "acknowledged_at": _ts(a.acknowledged_at),
        "resolved_at": _ts(a.resolved_at),
        "outcome": a.outcome,
        "outcome_note": a.outcome_note,
        "escalation_level": a.escalation_level,
    }
    if with_events:
        out["events"] = [
            {"kind": e.kind, "actor": e.actor, "at": _ts(e.created_at), "detail": e.detail} for e in a.events
        ]
    return out


def message(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction.value,
        "kind": m.kind.value,
        "status": m.status.value,
        "patient_id": m.patient_id,
        "check_in_id": m.check_in_id,
        "item_code": m.item_code,
        "body": m.body,
        "num_media": m.num_media,
        "twilio_sid": m.twilio_sid,
        "error_code": m.error_code,
        "created_at": _ts(m.created_at),
        "sent_at": _ts(m.sent_at),
    }


def schedule(s: Schedule, now: datetime, tz: str) -> dict[str, Any]:
    try:
        upcoming = next_occurrence(s.rrule, tz, s.start_date, s.end_date, now) if s.active else None
    except ScheduleError:
        upcoming = None
    return {
        "id": s.id,
        "patient_id": s.patient_id,
        "instrument": s.instrument_code,
        "rrule": s.rrule,
        "start_date": _ts(s.start_date),
        "end_date": _ts(s.end_date),
        "active": s.active,
        "next_due": _ts(upcoming),
    }
