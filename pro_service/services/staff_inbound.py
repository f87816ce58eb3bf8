"""Texts from a registered staff phone: `ACK <ref>` acknowledges an alert. Other senders never get here
(the webhook marks a message as a staff reply only when From is a registered staff phone).

An acknowledgement stops escalation, so only someone who may act on the alert can send it: an active
account that is an administrator, on the patient's care team, or was paged for this alert (issue 15: a
deactivated account's phone must never silence an urgent alert)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from pro_service.models import (
    Alert,
    CareTeamMember,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    OnCallShift,
    Patient,
    StaffRole,
    StaffUser,
)
from pro_service.runtime import Runtime
from pro_service.services.alert_lifecycle import ACK_PATTERN, acknowledge, find_by_ref
from pro_service.services.outbound import queue_to_staff


def process_staff_message(session: Session, rt: Runtime, message_id: int) -> str:
    message = session.get(Message, message_id, with_for_update=True)
    if (
        message is None
        or message.direction != Direction.INBOUND
        or message.kind != MessageKind.STAFF_REPLY
        or message.status != MessageStatus.RECEIVED
        or message.staff_id is None
    ):
        return "skipped"
    staff = session.get(StaffUser, message.staff_id)
    assert staff is not None
    message.status = MessageStatus.PROCESSED
    message.processed_at = rt.now()
    match = ACK_PATTERN.match(message.body or "")
    if match is None:
        return "not_a_command"
    alert = find_by_ref(session, match.group(1))
    if alert is None:
        reply = f"pro-service: no alert {match.group(1).upper()}."
        outcome = "unknown_ref"
    elif not may_acknowledge(session, staff, alert):
        reply = f"pro-service: this phone cannot acknowledge alert {alert.ref}; it stays open."
        outcome = "not_allowed"
    else:
        changed = acknowledge(
            session, alert, staff_id=staff.id, actor=f"staff:{staff.id}", now=rt.now(), via="sms"
        )
        outcome = "acknowledged" if changed else "already"
        reply = (
            f"pro-service: alert {alert.ref} acknowledged."
            if changed
            else (f"pro-service: alert {alert.ref} was already {alert.status.value}.")
        )
    queue_to_staff(
        session,
        rt,
        staff,
        reply,
        alert_id=alert.id if alert else None,
        dedup_key=f"ackreply:{message.id}",
        kind=MessageKind.STAFF_REPLY,
    )
    return outcome


def may_acknowledge(session: Session, staff: StaffUser, alert: Alert) -> bool:
    """Active, and an administrator, on the patient's care team, on call for it, or paged for this alert."""
    if not staff.active:
        return False
    if staff.role == StaffRole.ADMIN:
        return True
    team = select(Patient.care_team_id).where(Patient.id == alert.patient_id).scalar_subquery()
    on_team = select(CareTeamMember).where(
        CareTeamMember.staff_id == staff.id, CareTeamMember.care_team_id == team
    )

    paged = select(Message.id).where(
        Message.alert_id == alert.id, Message.kind == MessageKind.PAGE, Message.staff_id == staff.id
    )
    now = datetime.now(UTC)
    on_call = select(OnCallShift.id).where(
        OnCallShift.staff_id == staff.id,
        OnCallShift.care_team_id == team,
        OnCallShift.starts_at <= now,
        OnCallShift.ends_at > min(now, alert.opened_at),
    )
    return bool(session.scalar(select(exists(on_team) | exists(paged) | exists(on_call))))
