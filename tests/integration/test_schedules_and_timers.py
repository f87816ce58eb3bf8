"""Schedules, quiet hours, DST, reminders and expiry — driven by beat ticks at chosen instants."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, insert, select, update

from pro_service.models import CheckIn, CheckInStatus, Message, Schedule, StaffRole
from pro_service.services import dispatch, sweeps
from tests.conftest import run_concurrently, wait_for
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
MONDAY_10 = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0;BYSECOND=0"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _schedule(rt: Any, patient_id: int, rule: str = MONDAY_10, start: date = date(2026, 1, 1)) -> int:
    with rt.unit_of_work() as session:
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
        with rt.unit_of_work() as session:
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
    assert sorted(run_concurrently(lambda: _materialise(rt, at))) == [0, 0, 0, 1]
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CheckIn)) == 1
    # And again, later, as a restarted beat would: still one.
    sweeps.tick(rt, at + timedelta(minutes=5))
    assert len(_check_ins(rt, patient)) == 1


def _zone_where_it_is_morning(at: datetime) -> str:
    """A fixed-offset zone where `at` is 10:xx local: a test on the real clock whose reminder is due four
    hours later stays clear of quiet hours (21:00-08:00) at whatever time of day the suite runs."""
    offset = (10 - at.hour + 12) % 24 - 12  # hours east of UTC, -12..+11
    return f"Etc/GMT{-offset:+d}"  # POSIX signs: Etc/GMT-3 is three hours east


def test_zone_where_it_is_morning() -> None:
    for hour in range(24):
        at = _utc(2026, 11, 25, hour, 59)
        assert at.astimezone(ZoneInfo(_zone_where_it_is_morning(at))).hour == 10


def test_reminder_then_expiry_through_beat(rt: Any, twilio_server: Any, worker: Any, api: Any) -> None:
    """The real beat task (pro.tick) on the real worker, told what time it is."""
    patient = make_patient(rt, make_team(rt), timezone=_zone_where_it_is_morning(datetime.now(UTC)))
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
    with rt.unit_of_work() as session:
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
    with rt.unit_of_work() as session:
        from pro_service.models import Patient
        from pro_service.services.check_ins import start_now

        manual = start_now(session, rt, session.get(Patient, patient), "sre-weekly")
    rt.clock = lambda: at
    sweeps.tick(rt, at)
    assert [c.schedule_id for c in _check_ins(rt, patient)] == [None]  # blocked by the open manual one
    with rt.unit_of_work() as session:
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


# --- next_due_at: a tick looks only at the schedules that are due ---

DAILY_9 = "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0"


def _next_due(rt: Any, schedule_id: int) -> datetime | None:
    with rt.sessions() as session:
        return session.scalar(select(Schedule.next_due_at).where(Schedule.id == schedule_id))


def _close_open_check_ins(rt: Any) -> None:
    with rt.unit_of_work() as session:
        for check_in in session.scalars(
            select(CheckIn).where(CheckIn.status.in_(["pending", "in_progress"]))
        ):
            check_in.status = CheckInStatus.EXPIRED


def _materialise(rt: Any, at: datetime) -> int:
    with rt.unit_of_work() as session:
        return dispatch.materialise_due(session, rt, at)


@contextmanager
def _statements(rt: Any) -> Iterator[list[str]]:
    """The SQL statements run on the engine inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)


def test_a_schedule_is_materialised_once_and_next_due_at_moves_to_the_next_occurrence(
    rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    schedule = _schedule(rt, patient, rule=DAILY_9)
    assert _next_due(rt, schedule) is None  # new: looked at on the next tick
    assert _materialise(rt, _utc(2026, 6, 5, 8, 59)) == 0  # nothing due yet: wait for 09:00
    assert _next_due(rt, schedule) == _utc(2026, 6, 5, 9)
    assert _materialise(rt, _utc(2026, 6, 5, 9, 0, 10)) == 1
    assert _next_due(rt, schedule) == _utc(2026, 6, 6, 9)
    # Later ticks the same day select nothing: no rule is expanded, nothing is written.
    expanded: list[int] = []
    real_latest_due = dispatch.latest_due

    def counting(*args: Any) -> Any:
        expanded.append(1)
        return real_latest_due(*args)

    monkeypatch.setattr(dispatch, "latest_due", counting)
    with _statements(rt) as statements:
        for minutes in (1, 15, 600):
            assert _materialise(rt, _utc(2026, 6, 5, 9) + timedelta(minutes=minutes)) == 0
    assert expanded == []
    assert statements == ["SELECT"] * 3
    assert _next_due(rt, schedule) == _utc(2026, 6, 6, 9)
    assert [c.scheduled_for for c in _check_ins(rt, patient)] == [_utc(2026, 6, 5, 9)]


def test_editing_the_rule_through_the_api_resets_next_due_at(rt: Any, api: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    schedule = _schedule(rt, patient, rule=DAILY_9)
    _materialise(rt, _utc(2026, 6, 5, 9, 1))
    _close_open_check_ins(rt)
    assert _next_due(rt, schedule) == _utc(2026, 6, 6, 9)
    rt.clock = lambda: _utc(2026, 6, 5, 10)
    changed = api(
        "PATCH", f"/api/v1/patients/{patient}/schedules/{schedule}", {"rrule": "FREQ=DAILY;BYHOUR=11"}
    )
    assert changed.status_code == 200, changed.json
    assert _next_due(rt, schedule) is None
    assert _materialise(rt, _utc(2026, 6, 5, 11, 1)) == 1  # today's 11:00, not tomorrow's 09:00
    assert [c.scheduled_for for c in _check_ins(rt, patient)] == [_utc(2026, 6, 5, 9), _utc(2026, 6, 5, 11)]
    assert _next_due(rt, schedule) == _utc(2026, 6, 6, 11)


def test_editing_a_schedule_on_the_admin_page_resets_next_due_at(rt: Any, client: Any) -> None:
    from tests.browser.support import csrf_token, login, make_staff

    team = make_team(rt)
    patient = make_patient(rt, team, timezone="UTC")
    schedule = _schedule(rt, patient, rule="FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    _materialise(rt, _utc(2026, 6, 5, 9, 1))  # a Friday
    _close_open_check_ins(rt)
    assert _next_due(rt, schedule) == _utc(2026, 6, 12, 9)
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    path = f"/admin/patients/{patient}/schedules/{schedule}"
    form = {"instrument": "sre-weekly", "days": ["FR"], "time": "12:00", "start_date": "2026-01-01"}
    saved = client.post(path, data={"csrf_token": csrf_token(client, path), **form, "active": "yes"})
    assert saved.status_code == 302
    assert _next_due(rt, schedule) is None
    assert _materialise(rt, _utc(2026, 6, 5, 12, 1)) == 1
    assert _next_due(rt, schedule) == _utc(2026, 6, 12, 12)


def test_a_time_zone_change_resets_next_due_at_of_every_schedule_of_the_patient(rt: Any, api: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team, timezone="UTC")
    other = make_patient(rt, team, phone="+15551230002", mrn="MRN2", timezone="UTC")
    schedules = [_schedule(rt, patient, rule=DAILY_9), _schedule(rt, patient, rule=MONDAY_10)]
    untouched = _schedule(rt, other, rule=DAILY_9)
    _materialise(rt, _utc(2026, 6, 5, 9, 1))
    _close_open_check_ins(rt)
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 6, 9), _utc(2026, 6, 8, 10)]
    rt.clock = lambda: _utc(2026, 6, 5, 10)
    changed = api("PATCH", f"/api/v1/patients/{patient}", {"timezone": "America/New_York"})
    assert changed.status_code == 200, changed.json
    assert [_next_due(rt, s) for s in schedules] == [None, None]
    assert _next_due(rt, untouched) == _utc(2026, 6, 6, 9)
    # 09:00 in New York (EDT) is 13:00 UTC: today's is picked up, four hours after the UTC one.
    assert _materialise(rt, _utc(2026, 6, 5, 13, 1)) == 1
    assert [c.scheduled_for for c in _check_ins(rt, patient)] == [_utc(2026, 6, 5, 9), _utc(2026, 6, 5, 13)]
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 6, 13), _utc(2026, 6, 8, 14)]


def test_a_blocked_occurrence_is_retried_a_minute_later_until_sent_or_out_of_the_window(rt: Any) -> None:
    from pro_service.models import Patient
    from pro_service.services.check_ins import start_now

    team = make_team(rt)
    patients = [
        make_patient(rt, team, timezone="UTC"),
        make_patient(rt, team, phone="+15551230002", mrn="MRN2", timezone="UTC"),
    ]
    schedules = [_schedule(rt, p, rule=DAILY_9) for p in patients]
    rt.clock = lambda: _utc(2026, 6, 5, 8, 30)
    with rt.unit_of_work() as session:
        manual = [start_now(session, rt, session.get_one(Patient, p), "sre-weekly").id for p in patients]
    assert _materialise(rt, _utc(2026, 6, 5, 9, 1)) == 0  # both blocked by their open manual check-in
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 5, 9, 2)] * 2
    assert _materialise(rt, _utc(2026, 6, 5, 9, 2)) == 0  # still blocked, still retried
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 5, 9, 3)] * 2
    with rt.unit_of_work() as session:
        session.get_one(CheckIn, manual[0]).status = CheckInStatus.COMPLETED
    # The first patient's closes inside the window: the next tick sends today's.
    assert _materialise(rt, _utc(2026, 6, 5, 12)) == 1
    assert [c.scheduled_for for c in _check_ins(rt, patients[0])] == [None, _utc(2026, 6, 5, 9)]
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 6, 9), _utc(2026, 6, 5, 12, 1)]
    # The second's stays open past the 6 h window: today's is skipped and the schedule moves on.
    assert _materialise(rt, _utc(2026, 6, 5, 15, 0, 1)) == 0
    assert [_next_due(rt, s) for s in schedules] == [_utc(2026, 6, 6, 9), _utc(2026, 6, 6, 9)]
    assert [c.schedule_id for c in _check_ins(rt, patients[1])] == [None]


def test_two_schedules_of_one_patient_due_together_make_one_check_in_and_the_other_waits(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    first, second = _schedule(rt, patient, rule=DAILY_9), _schedule(rt, patient, rule=DAILY_9)
    # Both rows go in one INSERT statement; the second conflicts with the first (one open per patient).
    assert _materialise(rt, _utc(2026, 6, 5, 9, 1)) == 1
    assert [c.schedule_id for c in _check_ins(rt, patient)] == [first]
    assert [_next_due(rt, s) for s in (first, second)] == [_utc(2026, 6, 6, 9), _utc(2026, 6, 5, 9, 2)]
    _close_open_check_ins(rt)
    assert _materialise(rt, _utc(2026, 6, 5, 9, 30)) == 1
    assert [c.schedule_id for c in _check_ins(rt, patient)] == [first, second]
    assert [_next_due(rt, s) for s in (first, second)] == [_utc(2026, 6, 6, 9)] * 2


def test_a_paused_patient_is_picked_up_on_resume_only_inside_the_window(rt: Any, api: Any) -> None:
    patient = make_patient(rt, make_team(rt), timezone="UTC")
    schedule = _schedule(rt, patient, rule=DAILY_9)
    _materialise(rt, _utc(2026, 6, 5, 9, 1))
    _close_open_check_ins(rt)

    def set_status(status: str, at: datetime) -> None:
        rt.clock = lambda: at
        assert api("PATCH", f"/api/v1/patients/{patient}", {"status": status}).status_code == 200

    set_status("paused", _utc(2026, 6, 5, 12))
    assert _materialise(rt, _utc(2026, 6, 6, 9, 1)) == 0  # paused: not selected, next_due_at stays
    assert _next_due(rt, schedule) == _utc(2026, 6, 6, 9)
    set_status("active", _utc(2026, 6, 6, 10))  # resumed inside the window of today's 09:00
    assert _materialise(rt, _utc(2026, 6, 6, 10)) == 1
    assert _next_due(rt, schedule) == _utc(2026, 6, 7, 9)
    _close_open_check_ins(rt)
    set_status("paused", _utc(2026, 6, 6, 12))
    set_status("active", _utc(2026, 6, 8, 8))  # resumed after the 7 June window: that one is skipped
    assert _materialise(rt, _utc(2026, 6, 8, 8)) == 0
    assert _next_due(rt, schedule) == _utc(2026, 6, 8, 9)
    assert _materialise(rt, _utc(2026, 6, 8, 9)) == 1
    due = [c.scheduled_for for c in _check_ins(rt, patient)]
    assert due == [_utc(2026, 6, 5, 9), _utc(2026, 6, 6, 9), _utc(2026, 6, 8, 9)]


def test_a_used_up_rule_is_never_looked_at_again(rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team, timezone="UTC")
    counted = _schedule(rt, patient, rule="FREQ=DAILY;COUNT=2;BYHOUR=9", start=date(2026, 6, 1))
    other = make_patient(rt, team, phone="+15551230002", mrn="MRN2", timezone="UTC")
    with rt.unit_of_work() as session:
        ended = Schedule(
            patient_id=other, instrument_code="sre-weekly", rrule=DAILY_9, start_date=date(2026, 6, 1)
        )
        ended.end_date = date(2026, 6, 4)
        session.add(ended)
        session.flush()
        ended_id = ended.id
    assert _materialise(rt, _utc(2026, 6, 1, 9, 1)) == 2
    assert _next_due(rt, counted) == _utc(2026, 6, 2, 9)
    _close_open_check_ins(rt)
    assert _materialise(rt, _utc(2026, 6, 2, 9, 1)) == 2
    assert _next_due(rt, counted) == dispatch.NEVER
    assert _next_due(rt, ended_id) == _utc(2026, 6, 3, 9)
    _close_open_check_ins(rt)
    assert _materialise(rt, _utc(2026, 6, 5, 9, 1)) == 0  # the end date has passed
    assert _next_due(rt, ended_id) == dispatch.NEVER
    assert _materialise(rt, _utc(2030, 1, 1, 9, 1)) == 0
    assert len(_check_ins(rt, patient)) == 2


def test_unknown_instruments_and_rules_that_cannot_expand_are_logged_without_phi(
    rt: Any, caplog: pytest.LogCaptureFixture
) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team, timezone="UTC")
    other = make_patient(rt, team, phone="+15551230002", mrn="MRN2", timezone="UTC")
    with rt.unit_of_work() as session:
        unknown = Schedule(
            patient_id=patient, instrument_code="gone", rrule=DAILY_9, start_date=date(2026, 1, 1)
        )
        broken = Schedule(
            patient_id=other, instrument_code="sre-weekly", rrule="FREQ=HOURLY", start_date=date(2026, 1, 1)
        )
        session.add_all([unknown, broken])
        session.flush()
        unknown_id, broken_id = unknown.id, broken.id
    with caplog.at_level("WARNING", logger="pro_service.services.dispatch"):
        assert _materialise(rt, _utc(2026, 6, 5, 9, 1)) == 0
    # The unknown instrument's occurrence is skipped like a missed one; the broken rule is tried again.
    assert _next_due(rt, unknown_id) == _utc(2026, 6, 6, 9)
    assert _next_due(rt, broken_id) is None
    records = {r.getMessage(): r for r in caplog.records}
    assert records["schedule names an unknown instrument"].schedule_id == unknown_id  # type: ignore[attr-defined]
    assert records["schedule cannot be expanded"].schedule_id == broken_id  # type: ignore[attr-defined]
    assert not any("Ana" in r.getMessage() or "MRN" in str(r.__dict__) for r in caplog.records)


def _many_due_schedules(rt: Any, count: int) -> None:
    """`count` patients in UTC, each with a daily 09:00 schedule (bulk INSERTs: seconds, not minutes)."""
    from pro_service.models import Patient

    team = make_team(rt)
    with rt.unit_of_work() as session:
        session.execute(
            insert(Patient),
            [
                {
                    "mrn": f"BULK{i:05d}",
                    "given_name": "Test",
                    "family_name": f"Bulk{i}",
                    "phone": f"+1555400{i:04d}",
                    "timezone": "UTC",
                    "language": "en",
                    "care_team_id": team,
                }
                for i in range(count)
            ],
        )
        ids = session.scalars(select(Patient.id).where(Patient.mrn.like("BULK%"))).all()
        session.execute(
            insert(Schedule),
            [
                {
                    "patient_id": p,
                    "instrument_code": "sre-weekly",
                    "rrule": DAILY_9,
                    "start_date": date(2026, 1, 1),
                }
                for p in ids
            ],
        )


def _created(rt: Any) -> list[tuple[int | None, datetime | None]]:
    with rt.sessions() as session:
        return list(session.execute(select(CheckIn.schedule_id, CheckIn.scheduled_for)).tuples())


def _next_dues(rt: Any) -> set[datetime | None]:
    with rt.sessions() as session:
        return set(session.scalars(select(Schedule.next_due_at)))


def test_1200_schedules_due_at_once_make_1200_check_ins_exactly_once(rt: Any) -> None:
    count = 1200
    _many_due_schedules(rt, count)
    with _statements(rt) as statements:
        assert _materialise(rt, _utc(2026, 6, 5, 9, 0, 5)) == count
    assert statements.count("INSERT") == 2  # 1,000 + 200 rows
    assert statements.count("UPDATE") == 1  # next_due_at of all of them, one executemany
    rows = _created(rt)
    assert len(rows) == count and len({s for s, _ in rows}) == count
    assert {d for _, d in rows} == {_utc(2026, 6, 5, 9)}
    assert _next_dues(rt) == {_utc(2026, 6, 6, 9)}
    # Run again, as another beat that read the schedules before the first committed would: nothing new,
    # and every schedule still moves on (its occurrence exists) rather than being retried every tick.
    with rt.unit_of_work() as session:
        session.execute(update(Schedule).values(next_due_at=None))
    assert _materialise(rt, _utc(2026, 6, 5, 9, 0, 20)) == 0
    assert len(_created(rt)) == count
    assert _next_dues(rt) == {_utc(2026, 6, 6, 9)}
    assert _materialise(rt, _utc(2026, 6, 5, 9, 0, 35)) == 0
    assert len(_created(rt)) == count


def test_concurrent_runs_over_1200_due_schedules_neither_deadlock_nor_duplicate(rt: Any) -> None:
    """Four beats at the same instant over the same 1,200 rows: each locks the schedules it takes and skips
    those another holds, so they neither deadlock nor create anything twice."""
    count = 1200
    _many_due_schedules(rt, count)
    at = _utc(2026, 6, 5, 9, 0, 5)
    assert sum(run_concurrently(lambda: _materialise(rt, at))) == count  # split between them, or not
    assert len(_created(rt)) == count
    assert _next_dues(rt) == {_utc(2026, 6, 6, 9)}


def test_a_fan_out_larger_than_a_batch_spreads_over_ticks_and_blocked_ones_never_starve_it(rt: Any) -> None:
    from pro_service.models import Patient
    from pro_service.services.check_ins import start_now

    team = make_team(rt)
    patients = [
        make_patient(rt, team, phone=f"+1555123000{i}", mrn=f"F{i}", timezone="UTC") for i in range(4)
    ]
    schedules = [_schedule(rt, p, rule=DAILY_9) for p in patients]
    rt.clock = lambda: _utc(2026, 6, 5, 8, 30)
    with rt.unit_of_work() as session:  # the first two patients have a check-in open
        for p in patients[:2]:
            start_now(session, rt, session.get_one(Patient, p), "sre-weekly")
    at = _utc(2026, 6, 5, 9, 1)

    def batch() -> int:
        with rt.unit_of_work() as session:
            return dispatch.materialise_due(session, rt, at, limit=2)

    assert batch() == 0  # the two blocked ones come first (lowest ids) ...
    assert [_next_due(rt, s) for s in schedules[:2]] == [at + dispatch.BLOCKED_RETRY] * 2
    assert batch() == 2  # ... and then wait behind the others, which the next batch takes
    assert [_next_due(rt, s) for s in schedules[2:]] == [_utc(2026, 6, 6, 9)] * 2
    assert batch() == 0  # nothing left due at this instant


def test_a_tick_escalates_before_it_does_any_fan_out_work(rt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pro_service.services import check_ins, notify

    order: list[str] = []

    def recording(name: str, real: Any) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            order.append(name)
            return real(*args, **kwargs)

        return step

    monkeypatch.setattr(notify, "escalate_due", recording("escalate", notify.escalate_due))
    monkeypatch.setattr(check_ins, "run_deadlines", recording("deadlines", check_ins.run_deadlines))
    monkeypatch.setattr(dispatch, "materialise_due", recording("materialise", dispatch.materialise_due))
    sweeps.tick(rt, _utc(2026, 6, 5, 9))
    assert order[0] == "escalate"
    assert order.index("materialise") > order.index("deadlines")


def test_a_tick_whose_budget_is_spent_leaves_materialising_to_the_next_tick(
    rt: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """First sends took the whole beat interval: materialising now would push the tick past it, so the due
    schedules wait for the next tick, which makes each check-in exactly once. Escalation still ran first."""
    from pro_service.services import check_ins, notify

    count = 3
    _many_due_schedules(rt, count)
    elapsed = [0.0]  # the clock of the tick's budget, in seconds
    order: list[str] = []
    real_escalate, real_deadlines = notify.escalate_due, check_ins.run_deadlines

    def escalate(*args: Any, **kwargs: Any) -> int:
        order.append("escalate")
        return int(real_escalate(*args, **kwargs))

    def slow_first_sends(*args: Any, **kwargs: Any) -> int:
        order.append("deadlines")
        elapsed[0] += rt.settings.BEAT_TICK_SECONDS
        return int(real_deadlines(*args, **kwargs))

    monkeypatch.setattr(notify, "escalate_due", escalate)
    monkeypatch.setattr(check_ins, "run_deadlines", slow_first_sends)
    at = _utc(2026, 6, 5, 9, 0, 5)
    with caplog.at_level("INFO", logger="pro_service.services.sweeps"):
        report = sweeps.tick(rt, at, clock=lambda: elapsed[0])
    assert order == ["escalate", "deadlines", "deadlines"]
    assert report.materialised == 0
    assert _created(rt) == []
    assert _next_dues(rt) == {None}  # untouched: every schedule is still due
    (skipped,) = [r for r in caplog.records if r.getMessage().startswith("materialise skipped")]
    assert skipped.levelname == "INFO"
    assert (skipped.escalated, skipped.deadlines) == (0, 0)  # type: ignore[attr-defined]
    assert skipped.over_budget_seconds > 0  # type: ignore[attr-defined]

    monkeypatch.setattr(check_ins, "run_deadlines", real_deadlines)
    assert sweeps.tick(rt, at + timedelta(seconds=15), clock=lambda: elapsed[0]).materialised == count
    assert sweeps.tick(rt, at + timedelta(seconds=30), clock=lambda: elapsed[0]).materialised == 0
    rows = _created(rt)
    assert len(rows) == count and len({s for s, _ in rows}) == count
    assert {d for _, d in rows} == {_utc(2026, 6, 5, 9)}
    assert _next_dues(rt) == {_utc(2026, 6, 6, 9)}


def test_a_schedule_edited_during_a_tick_is_not_overwritten_by_the_tick(
    rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin saves a schedule while a tick is between reading it and writing next_due_at: the tick holds
    the row, so the edit (new rule, next_due_at reset) waits and wins, instead of being overwritten with a
    next_due_at worked out from the old rule."""
    from sqlalchemy import text

    patient = make_patient(rt, make_team(rt), timezone="UTC")
    schedule = _schedule(rt, patient, rule=MONDAY_10)
    edited = threading.Event()

    def edit() -> None:
        with rt.unit_of_work() as session:
            reset = update(Schedule).where(Schedule.id == schedule).values(rrule=DAILY_9, next_due_at=None)
            session.execute(reset)
        edited.set()

    def editor_done_or_waiting() -> bool:
        if edited.is_set():
            return True
        with rt.engine.connect() as conn:
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            return bool(conn.execute(text(waiting + " AND datname = current_database()")).scalar())

    editor = threading.Thread(target=edit)
    real_latest_due = dispatch.latest_due

    def latest_due_with_an_edit_meanwhile(*args: Any) -> Any:
        if not editor.is_alive() and not edited.is_set():
            editor.start()  # the edit arrives after the tick has read the schedule
            wait_for(editor_done_or_waiting, timeout=10, message="the edit to finish or wait")
        return real_latest_due(*args)

    monkeypatch.setattr(dispatch, "latest_due", latest_due_with_an_edit_meanwhile)
    assert _materialise(rt, _utc(2026, 6, 4, 12)) == 0  # a Thursday: nothing due under the old rule
    editor.join(10)
    assert edited.is_set()
    assert _next_due(rt, schedule) is None  # the edit won: the new rule is looked at on the next tick
    monkeypatch.setattr(dispatch, "latest_due", real_latest_due)
    assert _materialise(rt, _utc(2026, 6, 5, 9, 1)) == 1  # Friday 09:00 under the new daily rule


def test_a_failing_part_of_a_tick_does_not_stop_the_rest(rt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pro_service.services import notify

    ran: list[str] = []

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a schedule the code cannot handle")

    def republish(*_args: Any, **_kwargs: Any) -> dict[str, int]:
        ran.append("republish")
        return {}

    real_escalate = notify.escalate_due

    def escalate(*args: Any, **kwargs: Any) -> int:
        ran.append("escalate")
        return int(real_escalate(*args, **kwargs))

    monkeypatch.setattr(notify, "escalate_due", escalate)
    monkeypatch.setattr(dispatch, "materialise_due", broken)
    monkeypatch.setattr(sweeps, "republish_stuck", republish)
    report = sweeps.tick(rt, _utc(2026, 6, 5, 9))
    assert ran == ["escalate", "republish"]
    assert report.materialised == 0
