"""One line of an alert's timeline (AlertEvent): who did what, when, with what detail. Every writer goes
through `record_event`, so a kind is always an AlertEventKind and the shape of a line is one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pro_service.models import Alert, AlertEvent, AlertEventKind


def record_event(
    session: Session,
    alert: Alert,
    kind: AlertEventKind,
    now: datetime,
    detail: dict[str, Any] | None = None,
    *,
    staff_id: int | None = None,
    actor: str = "system",
) -> AlertEvent:
    event = AlertEvent(
        alert_id=alert.id,
        kind=kind,
        actor_staff_id=staff_id,
        actor=actor,
        created_at=now,
        detail=detail or {},
    )
    session.add(event)
    return event
