"""Alert life cycle: open → acknowledged → resolved (with an outcome). Every change is an event.

A resolved alert may be reopened with a reason (→ acknowledged: the nurse reopening it is on it, so nothing
is paged again), unless another active alert of its category exists for the patient (one open alert per
patient and category). Assignment is orthogonal to the status: who owns the alert, whatever its state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pro_service.db import ROW_LOCK
from pro_service.metrics import TIME_TO_ACK
from pro_service.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertStatus,
    CareTeamMember,
    OnCallShift,
    Patient,
    StaffRole,
    StaffUser,
)
from pro_service.runtime import Runtime
from pro_service.services.alert_events import record_event
from pro_service.services.notify import page_next_level

OUTCOMES = {
    "advised_emergency_care": "Advised emergency care",
    "same_day_visit": "Same-day visit",
    "imaging_or_labs_ordered": "Imaging or labs ordered",
    "symptom_management_advice": "Symptom management advice",
    "no_action_needed": "No action needed",
    "could_not_reach_patient": "Could not reach patient",
}
# The nurse's grade after the call, in the UKONS 24-hour triage tool's terms. The dashboard and the API
# require one to resolve; the outcome above says what was done, the grade how serious it proved.
RAG_OUTCOMES = {
    "red": "Red: needs assessment now",
    "amber": "Amber: review within 24 hours",
    "green": "Green: advice and routine follow-up",
}
ACK_PATTERN = re.compile(r"^\s*ack\s+([a-z0-9]{4,12})\s*$", re.IGNORECASE)


class AlertActionError(ValueError):
    pass


def acknowledge(
    session: Session, alert: Alert, *, staff_id: int | None, actor: str, now: datetime, via: str
) -> bool:
    """Acknowledge; False when it already was (idempotent). Stops escalation."""
    if alert.status != AlertStatus.OPEN:
        return False
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    TIME_TO_ACK.labels(alert.urgency).observe(max(0.0, (now - alert.opened_at).total_seconds()))
    alert.acknowledged_by_id = staff_id
    alert.next_escalation_at = None
    alert.updated_at = now
    record_event(
        session, alert, AlertEventKind.ACKNOWLEDGED, now, {"via": via}, staff_id=staff_id, actor=actor
    )
    return True


def resolve(
    session: Session,
    alert: Alert,
    *,
    staff_id: int | None,
    actor: str,
    now: datetime,
    outcome: str,
    note: str | None,
    rag: str | None = None,
) -> None:
    """Resolve with what was done (`outcome`) and the RAG grade (`rag`: red, amber or green; None is left
    for callers that are not a nurse's decision)."""
    if outcome not in OUTCOMES:
        raise AlertActionError(f"unknown outcome {outcome!r}; one of: {', '.join(OUTCOMES)}")
    if rag is not None and rag not in RAG_OUTCOMES:
        raise AlertActionError(f"unknown RAG outcome {rag!r}; one of: {', '.join(RAG_OUTCOMES)}")
    if alert.status == AlertStatus.RESOLVED:
        raise AlertActionError("the alert is already resolved")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
        alert.acknowledged_by_id = staff_id
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = now
    alert.resolved_by_id = staff_id
    alert.outcome = outcome
    alert.outcome_note = note
    alert.outcome_rag = rag
    alert.next_escalation_at = None
    alert.updated_at = now
    record_event(
        session,
        alert,
        AlertEventKind.RESOLVED,
        now,
        {"outcome": outcome, "rag": rag, "note": note},
        staff_id=staff_id,
        actor=actor,
    )


def add_note(
    session: Session, alert: Alert, *, staff_id: int | None, actor: str, now: datetime, note: str
) -> None:
    if not note.strip():
        raise AlertActionError("a note needs some text")
    record_event(session, alert, AlertEventKind.NOTE, now, {"note": note}, staff_id=staff_id, actor=actor)


def find_by_ref(session: Session, ref: str) -> Alert | None:
    return session.scalar(select(Alert).where(Alert.ref == ref.upper()).with_for_update(**ROW_LOCK))


MANUAL_ESCALATION_GAP = timedelta(seconds=60)


def manual_escalation_wait(session: Session, alert: Alert, now: datetime) -> timedelta | None:
    """How long until the alert may be escalated by hand again (None: now). A manual escalation that paged
    someone holds the next one for a minute, so repeated clicks cannot flood the rota with pages (issue 15);
    one that paged nobody does not, so the nurse can go straight on to the next level."""
    last = session.scalar(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert.id, AlertEvent.kind == AlertEventKind.ESCALATED)
        .order_by(AlertEvent.created_at.desc(), AlertEvent.id.desc())
        .limit(1)
    )
    if last is None or not (last.detail or {}).get("staff_ids"):
        return None
    wait = last.created_at + MANUAL_ESCALATION_GAP - now
    return wait if wait > timedelta(0) else None


def escalate_now(
    session: Session, rt: Runtime, alert: Alert, *, staff_id: int, actor: str, now: datetime
) -> list[int]:
    """A nurse pages the next level of the rota by hand (the automatic escalation's paging) and the alert
    records it; the staff ids paged (empty: nobody on call had a phone). The pages go out on commit."""
    paged = page_next_level(session, rt, alert, now)
    record_event(
        session,
        alert,
        AlertEventKind.ESCALATED,
        now,
        {"step": alert.escalation_level, "staff_ids": paged},
        staff_id=staff_id,
        actor=actor,
    )
    return paged


REOPEN_MIN_REASON = 5


def eligible_assignees(session: Session, alert: Alert, now: datetime) -> list[StaffUser]:
    """Who may own `alert`: active administrators, active members of the patient's care team and whoever is
    on call for that team now (the same people the dashboard lets act on it), by name."""
    team = select(Patient.care_team_id).where(Patient.id == alert.patient_id).scalar_subquery()
    members = select(CareTeamMember.staff_id).where(CareTeamMember.care_team_id == team)
    on_call = select(OnCallShift.staff_id).where(
        OnCallShift.care_team_id == team, OnCallShift.starts_at <= now, OnCallShift.ends_at > now
    )
    return list(
        session.scalars(
            select(StaffUser)
            .where(
                StaffUser.active.is_(True),
                StaffUser.role.in_((StaffRole.NURSE, StaffRole.ADMIN)),
                or_(StaffUser.role == StaffRole.ADMIN, StaffUser.id.in_(members), StaffUser.id.in_(on_call)),
            )
            .order_by(StaffUser.name, StaffUser.id)
        )
    )


def may_own(session: Session, staff: StaffUser, alert: Alert, now: datetime) -> bool:
    return any(s.id == staff.id for s in eligible_assignees(session, alert, now))


def assign(
    session: Session, alert: Alert, to_staff: StaffUser, *, by_staff_id: int | None, actor: str, now: datetime
) -> bool:
    """Make `to_staff` the alert's owner; False when they already were. Refused (AlertActionError) for a
    resolved alert or someone who may not act on the patient (an owner who cannot open the record is no
    owner). The caller checks that `actor` may act on the alert and writes the audit row."""
    if alert.status == AlertStatus.RESOLVED:
        raise AlertActionError("a resolved alert cannot be assigned; reopen it first")
    if not may_own(session, to_staff, alert, now):
        raise AlertActionError(
            f"{to_staff.name} is not on this patient's care team, on call for it, or an administrator"
        )
    if alert.assigned_to_id == to_staff.id:
        return False
    previous = alert.assigned_to_id
    alert.assigned_to_id = to_staff.id
    alert.assigned_at = now
    alert.updated_at = now  # the watch screen's version changes, so the queue shows the new owner
    record_event(
        session,
        alert,
        AlertEventKind.ASSIGNED,
        now,
        {"to_staff_id": to_staff.id, "from_staff_id": previous},
        staff_id=by_staff_id,
        actor=actor,
    )
    return True


def reopen(
    session: Session, alert: Alert, *, staff_id: int | None, actor: str, now: datetime, reason: str
) -> None:
    """Reopen a resolved alert (→ acknowledged) with a reason. The outcome is cleared from the alert (its
    `resolved` event keeps it). Refused while another active alert of the same category exists for the
    patient: new evidence belongs there, and the partial unique index would refuse it anyway."""
    reason = " ".join(reason.split())
    if alert.status != AlertStatus.RESOLVED:
        raise AlertActionError("only a resolved alert can be reopened")
    if len(reason) < REOPEN_MIN_REASON:
        raise AlertActionError(f"give a reason of at least {REOPEN_MIN_REASON} characters to reopen")
    other = session.scalar(
        select(Alert.ref).where(
            Alert.patient_id == alert.patient_id,
            Alert.category == alert.category,
            Alert.id != alert.id,
            Alert.status.in_((AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)),
        )
    )
    if other is not None:
        raise AlertActionError(
            f"alert {other} of the same kind is already open for this patient; add to that one instead"
        )
    previous = {"outcome": alert.outcome, "rag": alert.outcome_rag, "resolved_by_id": alert.resolved_by_id}
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by_id = staff_id
    alert.resolved_at = None
    alert.resolved_by_id = None
    alert.outcome = None
    alert.outcome_rag = None
    alert.outcome_note = None
    alert.updated_at = now
    try:
        with session.begin_nested():  # a triage committed meanwhile: the index says no, not a 500
            session.flush()
    except IntegrityError:
        raise AlertActionError(
            "another alert of the same kind was just opened for this patient; add to that one instead"
        ) from None
    record_event(
        session,
        alert,
        AlertEventKind.REOPENED,
        now,
        {"reason": reason, "previous": previous},
        staff_id=staff_id,
        actor=actor,
    )
