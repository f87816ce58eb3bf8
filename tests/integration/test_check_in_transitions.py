"""Cancelling a check-in is one transition (services/check_ins.cancel): opting out, pausing, discharging and
a pending check-in no longer due all leave the same fields, and keep what was answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import Answer, AnswerStatus, CheckIn, CheckInStatus, Patient, PatientStatus, utcnow
from pro_service.services import check_ins, consent, patients
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration

# What a cancelled check-in must look like, whichever path cancelled it.
ENDED = ("status", "closed_at", "current_item", "next_deadline_at")
# What cancelling must leave as it was (the record of what was asked and when).
KEPT = ("started_at", "expires_at", "last_question_at", "reminder_sent_at", "misses_on_current", "scored_at")


@pytest.fixture
def rt(unheard_rt: Any) -> Any:
    """No worker: the test drives each transition itself."""
    return unheard_rt


@pytest.fixture(autouse=True)
def _frozen(rt: Any) -> Iterator[None]:
    """A fixed instant (set after conftest's per-test clean-up, which resets the clock)."""
    now = utcnow().replace(microsecond=0)
    rt.clock = lambda: now
    yield
    rt.clock = utcnow


def _opt_out(session: Any, rt: Any, patient: Patient) -> None:
    consent.opt_out(session, rt, patient, source="test", confirm=False)


def _pause(session: Any, rt: Any, patient: Patient) -> None:
    assert patients.set_patient_status(session, patient, PatientStatus.PAUSED, rt.now()) == 1


def _discharge(session: Any, rt: Any, patient: Patient) -> None:
    assert patients.set_patient_status(session, patient, PatientStatus.DISCHARGED, rt.now()) == 1


PATHS: dict[str, Callable[[Any, Any, Patient], None]] = {
    "opt-out": _opt_out,
    "pause": _pause,
    "discharge": _discharge,
}


def _fields(check_in: CheckIn, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(check_in, name) for name in names}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_path_that_cancels_a_started_check_in_leaves_the_same_fields(rt: Any, path: str) -> None:
    patient_id = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        started = check_ins.start_now(session, rt, session.get_one(Patient, patient_id), "sre-weekly")
        check_in_id = started.id
        assert started.current_item is not None and started.next_deadline_at is not None
        before = _fields(started, KEPT)
    with rt.unit_of_work() as session:
        PATHS[path](session, rt, session.get_one(Patient, patient_id))
    with rt.sessions() as session:
        check_in = session.get_one(CheckIn, check_in_id)
        assert _fields(check_in, ENDED) == {
            "status": CheckInStatus.CANCELLED,
            "closed_at": rt.now(),
            "current_item": None,
            "next_deadline_at": None,
        }
        kept = _fields(check_in, KEPT)
    if path == "opt-out":  # opting out scores what was answered before letting the check-in go
        assert kept.pop("scored_at") is not None
        before.pop("scored_at")
    assert kept == before


def test_a_pending_check_in_no_longer_due_is_cancelled_the_same_way(rt: Any) -> None:
    patient_id = make_patient(rt, make_team(rt))
    now: datetime = rt.now()
    with rt.unit_of_work() as session:
        patient = session.get_one(Patient, patient_id)
        patient.status = PatientStatus.PAUSED  # paused behind the check-in's back: not due any more
        check_in = CheckIn(
            patient_id=patient_id,
            instrument_code="sre-weekly",
            instrument_version=1,
            status=CheckInStatus.PENDING,
            send_after=now - timedelta(minutes=1),
            next_deadline_at=now - timedelta(minutes=1),
        )
        session.add(check_in)
        session.flush()
        check_in_id = check_in.id
    with rt.unit_of_work() as session:
        assert check_ins.run_deadlines(session, rt, now) == 1
    with rt.sessions() as session:
        cancelled = session.get_one(CheckIn, check_in_id)
        assert _fields(cancelled, ENDED) == {
            "status": CheckInStatus.CANCELLED,
            "closed_at": now,
            "current_item": None,
            "next_deadline_at": None,
        }
        assert cancelled.started_at is None


def test_cancelling_keeps_the_answers_given(rt: Any) -> None:
    patient_id = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        check_in_id = check_ins.start_now(session, rt, session.get_one(Patient, patient_id), "sre-weekly").id
    with rt.unit_of_work() as session:
        check_in = session.get_one(CheckIn, check_in_id)
        session.add(
            Answer(
                check_in_id=check_in_id,
                item_code="pain_worst",
                status=AnswerStatus.ANSWERED,
                value=3,
                answered_at=rt.now(),
            )
        )
        session.flush()
        check_ins.cancel(check_in, rt.now(), "paused")
    with rt.sessions() as session:
        answers = session.scalars(select(Answer.item_code).where(Answer.check_in_id == check_in_id)).all()
    assert answers == ["pain_worst"]
