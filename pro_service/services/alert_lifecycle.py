"""Alert life cycle: open → acknowledged → resolved (with an outcome). Every change is an event."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.db import ROW_LOCK
from pro_service.metrics import TIME_TO_ACK
from pro_service.models import Alert, AlertEvent, AlertStatus

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
    session.add(
        AlertEvent(
            alert_id=alert.id,
            kind="acknowledged",
            actor_staff_id=staff_id,
            actor=actor,
            created_at=now,
            detail={"via": via},
        )
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
    session.add(
        AlertEvent(
            alert_id=alert.id,
            kind="resolved",
            actor_staff_id=staff_id,
            actor=actor,
            created_at=now,
            detail={"outcome": outcome, "rag": rag, "note": note},
        )
    )


def add_note(
    session: Session, alert: Alert, *, staff_id: int | None, actor: str, now: datetime, note: str
) -> None:
    if not note.strip():
        raise AlertActionError("a note needs some text")
    session.add(
        AlertEvent(
            alert_id=alert.id,
            kind="note",
            actor_staff_id=staff_id,
            actor=actor,
            created_at=now,
            detail={"note": note},
        )
    )


def find_by_ref(session: Session, ref: str) -> Alert | None:
    return session.scalar(select(Alert).where(Alert.ref == ref.upper()).with_for_update(**ROW_LOCK))


MANUAL_ESCALATION_GAP = timedelta(seconds=60)


def manual_escalation_wait(session: Session, alert: Alert, now: datetime) -> timedelta | None:
    """How long until the alert may be escalated by hand again (None: now). A manual escalation that paged
    someone holds the next one for a minute, so repeated clicks cannot flood the rota with pages (issue 15);
    one that paged nobody does not, so the nurse can go straight on to the next level."""
    last = session.scalar(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert.id, AlertEvent.kind == "escalated")
        .order_by(AlertEvent.created_at.desc(), AlertEvent.id.desc())
        .limit(1)
    )
    if last is None or not (last.detail or {}).get("staff_ids"):
        return None
    wait = last.created_at + MANUAL_ESCALATION_GAP - now
    return wait if wait > timedelta(0) else None
