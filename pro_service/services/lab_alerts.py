"""A lab result raises its alert at once (issue 17), in the same unit of work that records it.

The active ruleset's lab-only rules (alerts.rules.evaluate_labs) read the patient's current results; a
finding already raised (open, or resolved by a nurse) is never raised again, because lab evidence is keyed
by result. The patient is not texted: the team phones them. A withdrawn result tells the alerts raised on
it, for the nurse to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.rules import History, evaluate_labs
from pro_service.models import Alert, AlertEventKind, AlertStatus
from pro_service.runtime import Runtime
from pro_service.services import triage
from pro_service.services.alert_events import record_event
from pro_service.services.labs import IncomingResult, Outcome, RecordOutcome, lab_views, record_results


def record_and_raise(session: Session, rt: Runtime, items: Sequence[IncomingResult]) -> list[RecordOutcome]:
    """The intake use case (FHIR and HL7 alike): record the results, then raise what they mean, in one
    unit of work; the caller commits (or rolls back on a LabError, and nothing was kept)."""
    outcomes = record_results(session, rt, items)
    raise_for_results(session, rt, outcomes)
    return outcomes


def raise_for_results(
    session: Session, rt: Runtime, outcomes: Sequence[RecordOutcome]
) -> list[triage.Raised]:
    """Raise what the recorded results mean; call after `labs.record_results`, before the commit."""
    patients: set[int] = set()  # whose current results this request changed
    for outcome in outcomes:
        if any(done.changed for done in (outcome, *outcome.derived)):
            patients.add(outcome.result.patient_id)
        for done in (outcome, *outcome.derived):
            if done.outcome == Outcome.WITHDRAWN and done.previous is not None:
                _note_withdrawn(session, rt, done.result.patient_id, done.previous.id)
    now = rt.now()
    raised: list[triage.Raised] = []
    for patient_id in sorted(patients):
        ruleset = triage.ruleset_for_patient(session, rt, patient_id)
        views = tuple(lab_views(session, patient_id, since=now - timedelta(days=ruleset.lab_lookback_days)))
        # Every finding true now, not only those naming a result this request changed: a withdrawal can
        # make an older, never-raised high value the current one. Evidence already on an open alert, or
        # resolved by a nurse, is never raised again (triage.raise_finding keys lab evidence by result).
        for finding in evaluate_labs(views, History(labs=views, now=now), ruleset, now=now):
            result = triage.raise_finding(session, rt, patient_id, finding, tell_patient=False)
            if result is not None:
                raised.append(result)
    return raised


def _note_withdrawn(session: Session, rt: Runtime, patient_id: int, result_id: int) -> None:
    """Every alert of the patient's whose evidence names the withdrawn result gets an event saying so."""
    alerts = session.scalars(
        select(Alert).where(Alert.patient_id == patient_id, Alert.status != AlertStatus.RESOLVED)
    )
    for alert in alerts:
        if any(triage.result_id_of(ev.get("value")) == result_id for ev in alert.evidence):
            record_event(
                session,
                alert,
                AlertEventKind.EVIDENCE_WITHDRAWN,
                rt.now(),
                {"result_id": result_id, "note": "the lab withdrew a result this alert rests on"},
            )
