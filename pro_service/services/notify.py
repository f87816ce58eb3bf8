"""What happens when an alert opens or becomes more urgent: the patient's safety message and the page.

Escalation deadlines are columns (`alerts.next_escalation_at`) swept by beat; every page is an outbound row
with a dedup key per (alert, escalation step, person), so a redelivered task never pages twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation import decide, page_text
from alerts.reading import patient_text_for
from pro_service.models import (
    Alert,
    AlertEventKind,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    MessageKind,
    OnCallShift,
    Patient,
    StaffUser,
)
from pro_service.runtime import Runtime
from pro_service.services.alert_events import record_event
from pro_service.services.outbound import queue_to_patient, queue_to_staff

log = logging.getLogger(__name__)


def alert_raised(
    session: Session,
    rt: Runtime,
    alert: Alert,
    *,
    previous_rank: int,
    renotify: bool = False,
    message_id: int | None = None,
    tell_patient: bool = True,
) -> None:
    """An alert opened, became more urgent, or (renotify) has new urgent evidence: tell the patient and page.

    Each notice (`alert.notice`) has its own safety text and pages, keyed so a repeated task sends none twice.
    """
    patient = session.get(Patient, alert.patient_id)
    assert patient is not None
    now = rt.now()
    # A lab result raises its alert without texting the patient ("your answers need attention" would be
    # wrong, and the team phones them); the patient's own urgent answers or words always get the text.
    if tell_patient and alert.urgency == "urgent" and (renotify or not alert.safety_message_sent):
        phone = patient.care_team.phone or rt.settings.CLINIC_PHONE
        text_key = patient_text_for(rt.lexicon, alert.category)
        queued = queue_to_patient(
            session,
            rt,
            patient,
            MessageKind.SAFETY,
            rt.texts.get(text_key, patient.language, clinic_phone=phone),
            alert_id=alert.id,
            # One safety text per patient message, however many categories it raised ("I fell and can't
            # walk" is a fracture and a cord compression); otherwise one per alert notice.
            dedup_key=f"safety:message:{message_id}" if message_id else f"safety:{alert.id}:{alert.notice}",
        )
        alert.safety_message_sent = True
        # "sent with the message": the message's one safety text went with an earlier alert, or the
        # patient cannot receive texts.
        record_event(
            session,
            alert,
            AlertEventKind.SAFETY_MESSAGE,
            now,
            {"notice": alert.notice, "text": text_key if queued is not None else "sent with the message"},
        )
    if alert.status != AlertStatus.OPEN:
        return  # acknowledged already: someone is on it; the raise is visible on the dashboard
    decision = decide(rt.policy, alert.urgency, now, patient.care_team.timezone)
    if decision.page_now:
        page_next_level(session, rt, alert, now)
    alert.next_escalation_at = decision.next_escalation_at


def _on_shift(session: Session, team_id: int, now: datetime) -> dict[int, list[StaffUser]]:
    rows = session.execute(
        select(OnCallShift.level, StaffUser)
        .join(StaffUser, StaffUser.id == OnCallShift.staff_id)
        .where(
            OnCallShift.care_team_id == team_id,
            OnCallShift.starts_at <= now,
            OnCallShift.ends_at > now,
            StaffUser.active.is_(True),
        )
        .order_by(OnCallShift.level, StaffUser.id)
    ).all()
    levels: dict[int, list[StaffUser]] = {}
    for level, staff in rows:
        levels.setdefault(level, []).append(staff)
    return levels


def page_next_level(session: Session, rt: Runtime, alert: Alert, now: datetime) -> list[int]:
    """Page the next escalation level; at the top of the rota, page the top level again. Never silent:
    with nobody on call, every active member of the care team with a phone is paged."""
    patient = session.get(Patient, alert.patient_id)
    assert patient is not None
    team: CareTeam = patient.care_team
    step = alert.escalation_level + 1
    levels = _on_shift(session, team.id, now)
    if levels:
        ordered = sorted(levels)
        recipients = levels[ordered[min(step, len(ordered)) - 1]]
        level = ordered[min(step, len(ordered)) - 1]
    else:
        recipients = list(
            session.scalars(
                select(StaffUser)
                .join(CareTeamMember, CareTeamMember.staff_id == StaffUser.id)
                .where(CareTeamMember.care_team_id == team.id, StaffUser.active.is_(True))
            )
        )
        level = 0
        record_event(
            session, alert, AlertEventKind.NO_ON_CALL, now, {"paged_team_members": [s.id for s in recipients]}
        )
    url = f"{rt.settings.PUBLIC_BASE_URL}/a/{alert.ref}"
    text = page_text(alert.urgency, alert.ref, url)
    paged: list[int] = []
    for staff in recipients:
        queued = queue_to_staff(
            session,
            rt,
            staff,
            text,
            alert_id=alert.id,
            dedup_key=f"page:{alert.id}:{alert.notice}:{step}:{alert.urgency}:{staff.id}",
        )
        if queued is not None:
            paged.append(staff.id)
    if not paged:
        # Nobody with a phone to page: say so loudly (log and event); the dashboard shows it and the
        # escalation deadline stays set, so the next tick tries again once a rota or phone exists.
        log.error("alert could not page anyone", extra={"alert_id": alert.id})
        record_event(session, alert, AlertEventKind.NOBODY_PAGED, now, {"step": step})
    alert.escalation_level = step
    record_event(
        session, alert, AlertEventKind.PAGED, now, {"step": step, "level": level, "staff_ids": paged}
    )
    return paged


def escalate_due(session: Session, rt: Runtime, now: datetime, limit: int = 500) -> int:
    """Beat's sweep: alerts nobody acknowledged by their deadline page the next level."""
    due = session.scalars(
        select(Alert)
        .where(Alert.status == AlertStatus.OPEN, Alert.next_escalation_at <= now)
        .order_by(Alert.next_escalation_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for alert in due:
        patient = session.get(Patient, alert.patient_id)
        assert patient is not None
        decision = decide(rt.policy, alert.urgency, now, patient.care_team.timezone)
        if decision.page_now:
            page_next_level(session, rt, alert, now)
        after = rt.policy.for_urgency(alert.urgency).escalate_after_minutes
        alert.next_escalation_at = (
            decision.next_escalation_at
            if not decision.page_now
            else (now + timedelta(minutes=after) if after else None)
        )
    return len(due)
