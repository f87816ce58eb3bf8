"""The patient-phone simulator's use case beside the post itself (web/simulator.py signs and posts the reply
to the app's own webhook, which stores it in a transaction of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from pro_service.services.audit import record


def record_reply_outcome(
    session: Session, *, actor: str, patient_id: int, webhook_status: int, ip: str | None, now: datetime
) -> None:
    """Audit what the webhook answered to a reply spoken as the patient, in a short transaction of its own:
    the reply is already committed (or refused) by the webhook, whatever the page answers next."""
    record(
        session,
        actor=actor,
        action="simulate_patient_reply",
        subject=("patient", patient_id),
        patient_id=patient_id,
        detail={"webhook_status": webhook_status},
        ip=ip,
        at=now,
    )
    session.commit()
