"""Two beats at once: two real `celery beat` processes ticking every second (their pro.tick tasks run
side by side on the worker's two children) while four threads run beat's tick in-process at the very same
instant, three times over — against due schedules, due reminders and due escalations, with patients
replying meanwhile. Nothing may happen twice: no second check-in, first question, reminder or page."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import (
    AlertEvent,
    Answer,
    CareTeamMember,
    CheckIn,
    Direction,
    Message,
    MessageKind,
    OnCallShift,
    Patient,
    Schedule,
    StaffRole,
    utcnow,
)
from pro_service.services import check_ins, sweeps, triage
from pro_service.services.admin import save_care_team
from pro_service.services.patients import enrol_patient
from pro_service.services.staff import create_staff

from .harness import INSTRUMENT, Stack, now_utc, wait_for

pytestmark = pytest.mark.faults
TZ = "America/New_York"
NURSE_1, NURSE_2 = "+15557770101", "+15557770102"
SCHEDULED, REMINDED, REPLYING, ALERTED = 8, 8, 4, 4
THREADS, ROUNDS = 4, 3


def _finding() -> Finding:
    return Finding(
        category="spinal_cord_compression",
        urgency=Urgency.URGENT,
        rule_id="scc-neuro-or-bladder",
        rationale="fault test",
        ruleset="sre",
        ruleset_version=1,
        evidence=(Evidence(item_code="neuro", question="6/9 Any NEW weakness…", raw_text="yes", value=True),),
    )


def test_two_beats_and_concurrent_ticks_create_send_remind_and_page_once(stack: Stack) -> None:
    started = time.monotonic()
    rt = stack.rt
    t0 = now_utc()
    local = (t0 - timedelta(minutes=2)).astimezone(ZoneInfo(TZ))
    daily = f"FREQ=DAILY;BYHOUR={local.hour};BYMINUTE={local.minute};BYSECOND=0"

    scheduled: list[int] = []
    reminded: list[tuple[int, str, int]] = []  # patient, phone, check-in
    alerts: list[int] = []
    with rt.unit_of_work() as session:
        team = save_care_team(session, None, name="Two beats", timezone=TZ, phone="+15550100")
        for level, phone in ((1, NURSE_1), (2, NURSE_2)):
            nurse = create_staff(
                session,
                email=f"nurse{level}@example.org",
                name=f"Nurse {level}",
                role=StaffRole.NURSE,
                phone=phone,
                password="correct horse battery",
            )
            session.add(CareTeamMember(care_team_id=team.id, staff_id=nurse.id))
            session.add(
                OnCallShift(
                    care_team_id=team.id,
                    staff_id=nurse.id,
                    level=level,
                    starts_at=t0 - timedelta(hours=1),
                    ends_at=t0 + timedelta(hours=12),
                )
            )
        for i in range(SCHEDULED + REMINDED + ALERTED):
            patient = enrol_patient(
                session,
                mrn=f"MRN-beats-{i}",
                given_name="Test",
                family_name=f"Beats{i}",
                phone=f"+1555300{i:04d}",
                timezone=TZ,
                language="en",
                care_team_id=team.id,
            )
            if i < SCHEDULED:  # due two minutes ago, every day
                session.add(
                    Schedule(
                        patient_id=patient.id,
                        instrument_code=INSTRUMENT,
                        rrule=daily,
                        start_date=local.date() - timedelta(days=1),
                    )
                )
                scheduled.append(patient.id)
    # Check-ins whose question went out five hours ago, unanswered: their reminder is due.
    rt.clock = lambda: t0 - timedelta(hours=5)
    try:
        with rt.unit_of_work() as session:
            for patient in session.scalars(
                select(Patient).where(Patient.mrn.like("MRN-beats-%")).order_by(Patient.id)
            ).all()[SCHEDULED : SCHEDULED + REMINDED]:
                ci = check_ins.start_now(session, rt, patient, INSTRUMENT)
                reminded.append((patient.id, patient.phone, ci.id))
        # Urgent alerts opened twenty minutes ago, paged, unacknowledged: their escalation is due.
        rt.clock = lambda: t0 - timedelta(minutes=20)
        with rt.unit_of_work() as session:
            for patient_id in range(reminded[-1][0] + 1, reminded[-1][0] + 1 + ALERTED):
                alerts.append(triage.upsert_alert(session, rt, patient_id, _finding()).id)
    finally:
        rt.clock = utcnow

    worker = stack.start_worker("a")
    beats = [stack.start_beat("one", 1.0), stack.start_beat("two", 1.0)]

    errors: list[str] = []
    barrier = threading.Barrier(THREADS)
    instant = now_utc()

    def beat_thread() -> None:
        for _ in range(ROUNDS):
            try:
                barrier.wait(30)
                sweeps.tick(rt, instant)
            except Exception as exc:  # recorded and reported: a tick that fails must not pass silently
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")

    threads = [threading.Thread(target=beat_thread, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    # Meanwhile half the reminded patients answer the question they were asked five hours ago.
    sids = []
    for _, phone, _ in reminded[:REPLYING]:
        params = stack.reply_params(phone, "no")
        assert stack.post_reply(params)[0] == 200
        sids.append(params["MessageSid"])
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)

    tick_done = b"Task pro.tick["
    wait_for(
        lambda: (
            all(b.log_count(b"Sending due task tick") >= 3 for b in beats)
            and worker.log_count(tick_done) >= 6
        ),
        timeout=30,
        interval=0.2,
        message="both beats to tick three times and the worker to run their ticks",
    )
    ticks_by_beats = sum(b.log_count(b"Sending due task tick") for b in beats)
    for b in beats:
        b.stop()
    stack.processes = [p for p in stack.processes if p not in beats]

    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="everything the ticks queued to be sent",
        sids=sids,
    )

    with rt.sessions() as session:
        made = session.scalars(select(CheckIn).where(CheckIn.patient_id.in_(scheduled))).all()
        per_schedule = Counter(c.schedule_id for c in made)
        outbound = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).all()
        paged = session.scalars(select(AlertEvent).where(AlertEvent.kind == "paged")).all()
        answers = session.scalars(
            select(Answer).where(
                Answer.check_in_id.in_([ci for _, _, ci in reminded]), Answer.item_code == "pain_new"
            )
        ).all()
    first_questions = Counter(
        m.check_in_id for m in outbound if m.kind == MessageKind.QUESTION and m.item_code == "pain_new"
    )
    reminders = Counter(m.check_in_id for m in outbound if m.kind == MessageKind.REMINDER)
    pages = Counter((m.alert_id, m.to_number) for m in outbound if m.kind == MessageKind.PAGE)
    pagings = Counter(e.alert_id for e in paged)
    # A reminder queued by a tick just before the reply was processed still goes out afterwards: the
    # patient is reminded of a question they have already answered (reported, not a duplicate).
    answered_at = {a.check_in_id: a.answered_at for a in answers}
    stale = [
        m.id
        for m in outbound
        if m.kind == MessageKind.REMINDER
        and m.sent_at is not None
        and m.check_in_id in answered_at
        and m.sent_at > answered_at[m.check_in_id]
    ]
    copies = stack.provider_copies()

    figures = stack.figures(sids)
    figures.detail.update(
        {
            "check-ins made": len(made),
            "first questions": sum(first_questions[c.id] for c in made),
            "reminders": sum(reminders.values()),
            "pages": sum(pages.values()),
            "reminders sent after the answer": len(stale),
            "ticks by the beats": ticks_by_beats,
            "in-process ticks": THREADS * ROUNDS,
            "ticks that failed": len(errors),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    stack.report("two beats", figures)
    for error in errors:
        print("  tick failed:", error)

    assert sorted(per_schedule.values()) == [1] * SCHEDULED, per_schedule
    assert [first_questions[c.id] for c in made] == [1] * SCHEDULED
    assert all(n == 1 for n in reminders.values()), reminders
    silent = [ci for _, _, ci in reminded[REPLYING:]]
    assert [reminders[ci] for ci in silent] == [1] * len(silent)
    for alert_id in alerts:
        assert pages[(alert_id, NURSE_1)] == 1 and pages[(alert_id, NURSE_2)] == 1, pages
        assert pagings[alert_id] == 2, pagings
    assert all(copies[m.id] <= 1 for m in outbound)
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail
    assert errors == [], errors
