"""The audit log: who saw or changed what, when. Every view of a patient's record writes a row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from pro_service.models import AuditLog


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: tuple[str, object],
    patient_id: int | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    at: datetime | None = None,
) -> None:
    kind, ident = subject
    session.add(
        AuditLog(
            at=at or datetime.now(UTC),
            actor=actor,
            action=action,
            subject_type=kind,
            subject_id=None if ident is None else str(ident),
            patient_id=patient_id,
            detail=detail or {},
            ip=ip,
        )
    )


def record_kept(session: Session, **row: Any) -> None:
    """An audit row that must stay whatever the request answers next (a refusal answered with a 4xx, which
    rolls the request's unit of work back): written and committed now, as a transaction of its own. The
    caller has nothing else pending. Same fields as `record`."""
    record(session, **row)
    session.commit()
