"""Schedules, quiet hours, DST, reminders and expiry — driven by beat ticks at chosen instants."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from pro_service.models import CheckIn, Message, Schedule
from pro_service.services import dispatch, sweeps
from tests.conftest import wait_for
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
MONDAY_10 = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0;BYSECOND=0"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _schedule(rt: Any, patient_id: int, rule: str = MONDAY_10, start: date = date(2026, 1, 1)) -> int:
    with rt.sessions() as session, session.begin():
        schedule = Schedule(patient_id=patient_id, instrument_code="sre-weekly", rrule=rule, start_date=start)
        session.add(schedule)
        session.flush()
        return schedule.id


def _check_ins(rt: Any, patient_id: int) -> list[CheckIn]:
    with rt.sessions() as session:
        return list(
            session.scalars(select(CheckIn).where(CheckIn.patient_id == patient_id).order_by(CheckIn.id))
        )


def _outbound(rt: Any, patient_id: int) -> list[Message]:
    with rt.sessions() as session:
        return list(
            session.scalars(
                select(Message)
                .where(Message.patient_id == patient_id, Message.direction == "outbound")
                .order_by(Message.id)
            )
        )


@pytest.mark.parametrize(
    ("zone", "before_change", "after_change", "offsets"),
    [
        # New York: spring forward 2026-03-08, fall back 2026-11-01 (10:00 local is 15:00 then 14:00 UTC)
        ("America/New_York", _utc(2026, 3, 2, 15), _utc(2026, 3, 9, 14), (15, 14)),
        ("America/New_York", _utc(2026, 10, 26, 14), _utc(2026, 11, 2, 15), (14, 15)),
        # Madrid: 2026-03-29 and 2026-10-25 (10:00 local is 09:00 UTC in winter, 08:00 in summer)
        ("Europe/Madrid", _utc(2026, 3, 23, 9), _utc(2026, 3, 30, 8), (9, 8)),
        ("Europe/Madrid", _utc(2026, 10, 19, 8), _utc(2026, 10, 26, 9), (8, 9)),
    ],
)
def test_a_monday_10_schedule_stays_10_local_across_dst(
    rt: Any, zone: str, before_change: datetime, after_change: datetime, offsets: tuple[int, int]
) -> None:
    patient = make_patient(rt, make_team(rt), timezone=zone)
    _schedule(rt, patient)
    for at in (before_change, after_change):
        sweeps.tick(rt, at + timedelta(minutes=1))
        # close it so the next week's can open (one open check-in per patient)
        with rt.sessions() as session, session.begin():
            for check_in in session.scalars(select(CheckIn).where(CheckIn.status == "in_progress")):
                check_in.status = "expired"
    due = [c.scheduled_for for c in _check_ins(rt, patient)]
    assert due == [before_change, after_change]
    assert [d.hour for d in due if d is not None] == list(offsets)


def test_quiet_hours_hold_the_first_question_until_they_end(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="America/New_York")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=22;BYMINUTE=0;BYSECOND=0")
    due = _utc(2026, 6, 2, 2)  # 22:00 New York (EDT)
    sweeps.tick(rt, due + timedelta(minutes=1))
    (check_in,) = _check_ins(rt, patient)
    assert check_in.status == "pending"
    assert check_in.send_after == _utc(2026, 6, 2, 12)  # 08:00 local
    assert _outbound(rt, patient) == []
    sweeps.tick(rt, _utc(2026, 6, 2, 11, 59))
    assert _outbound(rt, patient) == []
    rt.clock = lambda: _utc(2026, 6, 2, 12, 0, 30)
    sweeps.tick(rt, _utc(2026, 6, 2, 12, 0, 30))
    (question,) = _outbound(rt, patient)
    assert question.body.startswith("1/9 ")


def test_missed_occurrences_are_skipped_not_caught_up(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    # Beat was down for three days; at 10:30 only today's 09:00 is inside the 6 h window.
    sweeps.tick(rt, _utc(2026, 6, 5, 10, 30))
    assert [c.scheduled_for for c in _check_ins(rt, patient)] == [_utc(2026, 6, 5, 9)]
    # Outside the window nothing is sent at all.
    patient2 = make_patient(rt, make_team(rt, name="Other"), phone="+15551230002", mrn="MRN2", timezone="UTC")
    _schedule(rt, patient2, rule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    sweeps.tick(rt, _utc(2026, 6, 5, 16))
    assert _check_ins(rt, patient2) == []


def test_two_concurrent_dispatch_runs_create_one_check_in(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    at = _utc(2026, 6, 5, 9, 1)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(5)
            with rt.sessions() as session, session.begin():
                dispatch.materialise_due(session, rt, at)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CheckIn)) == 1
    # And again, later, as a restarted beat would: still one.
    sweeps.tick(rt, at + timedelta(minutes=5))
    assert len(_check_ins(rt, patient)) == 1


def test_reminder_then_expiry_through_beat(rt: Any, twilio_server: Any, worker: Any, api: Any) -> None:
    """The real beat task (pro.tick) on the real worker, told what time it is."""
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    started = api("POST", f"/api/v1/patients/{patient}/check-ins", {"instrument": "sre-weekly"}).json
    twilio_server.state.wait_for_messages(1, timeout=20, to="+15551230001")
    t0 = datetime.fromisoformat(started["started_at"])

    def tick(at: datetime) -> None:
        rt.celery.send_task("pro.tick", kwargs={"now": at.isoformat()})

    tick(t0 + timedelta(hours=3))  # too early
    tick(t0 + timedelta(hours=4, minutes=1))
    reminder = twilio_server.state.wait_for_messages(2, timeout=20, to="+15551230001")[1]["body"]
    assert reminder.startswith("Reminder: 1/9 ")
    tick(t0 + timedelta(hours=5))  # no second reminder
    last_tick = [0.0]

    def expired() -> dict[str, Any] | None:
        check_in = api("GET", f"/api/v1/check-ins/{started['id']}").json
        if check_in["status"] == "expired":
            return dict(check_in)
        # Beat keeps ticking: a tick that ran while another held the row (SKIP LOCKED) is followed by
        # the next one, as in production every BEAT_TICK_SECONDS.
        if time.monotonic() - last_tick[0] > 2:
            tick(t0 + timedelta(hours=24, minutes=1))
            last_tick[0] = time.monotonic()
        return None

    check_in = wait_for(expired, message="the check-in to expire")
    assert {a["status"] for a in check_in["answers"].values()} == {"missing"}
    assert len(check_in["answers"]) == 9
    assert len(twilio_server.state.messages("+15551230001")) == 2  # question + one reminder, nothing else


def test_reminder_waits_out_quiet_hours(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    t0 = _utc(2026, 6, 2, 18)
    rt.clock = lambda: t0
    with rt.sessions() as session, session.begin():
        from pro_service.models import Patient
        from pro_service.services.check_ins import start_now

        start_now(session, rt, session.get(Patient, patient), "sre-weekly")
    sweeps.tick(rt, _utc(2026, 6, 2, 22, 1))  # reminder due, but it's 22:01 local
    assert [m.kind for m in _outbound(rt, patient)] == ["question"]
    sweeps.tick(rt, _utc(2026, 6, 3, 8, 0, 1))
    assert [m.kind for m in _outbound(rt, patient)] == ["question", "reminder"]


def test_a_daily_check_in_still_open_at_the_next_occurrence_does_not_lose_it(rt: Any) -> None:
    """Yesterday's check-in expires at the moment today's is due: today's is still sent."""
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    day1 = _utc(2026, 6, 5, 9, 0, 30)
    rt.clock = lambda: day1
    sweeps.tick(rt, day1)
    day2 = day1 + timedelta(days=1)
    rt.clock = lambda: day2
    sweeps.tick(rt, day2)
    statuses = [(c.scheduled_for, c.status) for c in _check_ins(rt, patient)]
    assert statuses == [(_utc(2026, 6, 5, 9), "expired"), (_utc(2026, 6, 6, 9), "in_progress")]


def test_an_occurrence_blocked_by_an_open_check_in_is_tried_again(rt: Any, api: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    at = _utc(2026, 6, 5, 9, 1)
    rt.clock = lambda: at - timedelta(minutes=30)
    with rt.sessions() as session, session.begin():
        from pro_service.models import Patient
        from pro_service.services.check_ins import start_now

        manual = start_now(session, rt, session.get(Patient, patient), "sre-weekly")
    rt.clock = lambda: at
    sweeps.tick(rt, at)
    assert [c.schedule_id for c in _check_ins(rt, patient)] == [None]  # blocked by the open manual one
    with rt.sessions() as session, session.begin():
        session.get(CheckIn, manual.id).status = "completed"  # type: ignore[union-attr]
    later = at + timedelta(hours=1)
    rt.clock = lambda: later
    sweeps.tick(rt, later)
    assert [c.scheduled_for for c in _check_ins(rt, patient)] == [None, _utc(2026, 6, 5, 9)]


def test_a_pending_check_in_is_cancelled_if_its_send_time_is_long_past(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    _schedule(rt, patient, rule="FREQ=DAILY;BYHOUR=22;BYMINUTE=0;BYSECOND=0")
    sweeps.tick(rt, _utc(2026, 6, 2, 22, 1))  # pending until 08:00 (quiet hours)
    # Beat was down from 08:00 until 15:00: more than the 6 h window after it was meant to go out.
    sweeps.tick(rt, _utc(2026, 6, 3, 15, 0))
    (check_in,) = _check_ins(rt, patient)
    assert check_in.status == "cancelled"
    assert _outbound(rt, patient) == []
