"""Texts from a registered staff phone: `ACK <ref>` acknowledges an alert. Other senders never get here
(the webhook marks a message as a staff reply only when From is a registered staff phone)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pro_service.models import Direction, Message, MessageKind, MessageStatus, StaffUser
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
