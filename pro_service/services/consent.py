"""Opt-out and opt-in: recorded with time; an opted-out patient gets nothing more (but the confirmation)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pro_service.models import MessageKind, Patient
from pro_service.runtime import Runtime
from pro_service.services import check_ins
from pro_service.services.audit import record


def clinic_phone(rt: Runtime, patient: Patient) -> str:
    return patient.care_team.phone or rt.settings.CLINIC_PHONE


def opt_out(session: Session, rt: Runtime, patient: Patient, *, source: str, confirm: bool = True) -> None:
    now = rt.now()
    if patient.opted_out_at is None:
        patient.opted_out_at = now
        record(
            session,
            actor="patient",
            action="opt_out",
            subject=("patient", patient.id),
            patient_id=patient.id,
            detail={"source": source},
            at=now,
        )
    from pro_service.services import triage

    for check_in in check_ins.cancel_open(session, patient.id, now, "opted_out"):
        if check_in.started_at is not None:
            # Opting out is not silence: what was answered is scored before the check-in is let go.
            session.flush()
            triage.score_check_in(session, rt, check_in.id)
    if confirm:
        from pro_service.services.outbound import queue_to_patient

        text = rt.texts.get("opt_out", patient.language, clinic_phone=clinic_phone(rt, patient))
        queue_to_patient(session, rt, patient, MessageKind.OPT_OUT, text)


def opt_in(session: Session, rt: Runtime, patient: Patient, *, source: str) -> None:
    from pro_service.services.outbound import queue_to_patient

    now = rt.now()
    if patient.opted_out_at is not None:
        patient.opted_out_at = None
        patient.sms_consent = True
        patient.consent_at = now
        record(
            session,
            actor="patient",
            action="opt_in",
            subject=("patient", patient.id),
            patient_id=patient.id,
            detail={"source": source},
            at=now,
        )
    queue_to_patient(session, rt, patient, MessageKind.OPT_IN, rt.texts.get("opt_in", patient.language))
