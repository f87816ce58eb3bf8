"""Outbound SMS: once per row, retries with backoff on 429/5xx, provider errors that mean something,
the validity period, and the shared messages-per-second cap."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from pro_service.models import Message, MessageKind, Patient, utcnow
from pro_service.services import outbound, sweeps
from pro_service.sms.ratelimit import KEY, LocalRateLimiter, RedisRateLimiter, make_rate_limiter
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
PHONE = "+15551230001"


@pytest.fixture
def rt(unheard_rt: Any) -> Any:
    """These tests call the send step themselves: no worker may send first."""
    unheard_rt.clock = utcnow
    return unheard_rt


def _queue(
    rt: Any, patient_id: int, body: str = "1/9 Any NEW pain?", valid_for: timedelta | None = None
) -> int:
    with rt.unit_of_work() as session:
        patient = session.get(Patient, patient_id)
        message = outbound.queue_to_patient(
            session, rt, patient, MessageKind.QUESTION, body, valid_for=valid_for
        )
        assert message is not None
        return message.id


def _message(rt: Any, message_id: int) -> Message:
    with rt.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def test_a_row_is_sent_once_even_when_the_task_runs_twice(rt: Any, twilio_server: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    mid = _queue(rt, patient, valid_for=timedelta(hours=4))
    assert outbound.send_message(rt, mid).status == "sent"
    assert outbound.send_message(rt, mid).status == "skipped"
    (sent,) = twilio_server.state.messages(PHONE)
    assert sent["status_callback"].endswith(f"/twilio/status?mid={mid}")
    assert 14000 <= int(sent["validity_period"]) <= 14400  # a question stuck in a queue is not delivered late
    assert _message(rt, mid).twilio_sid == sent["sid"]


def test_429_and_500_are_retried_with_backoff_and_sent_once(rt: Any, twilio_server: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    mid = _queue(rt, patient)
    twilio_server.state.fail_next(1, 429)
    twilio_server.state.fail_next(1, 500)
    first = outbound.send_message(rt, mid)
    assert (first.status, first.retry_in) == ("retry", 1.0)
    assert outbound.send_message(rt, mid).status == "skipped"  # not due yet: backoff holds
    base = rt.now()
    rt.clock = lambda: base + timedelta(seconds=1.5)
    second = outbound.send_message(rt, mid)
    assert (second.status, second.retry_in) == ("retry", 2.0)
    rt.clock = lambda: base + timedelta(seconds=4)
    assert outbound.send_message(rt, mid).status == "sent"
    assert len(twilio_server.state.messages(PHONE)) == 1
    assert _message(rt, mid).attempts == 3


def test_21610_opts_the_patient_out_and_invalid_numbers_flag_the_record(rt: Any, twilio_server: Any) -> None:
    team = make_team(rt)
    unsubscribed = make_patient(rt, team)
    invalid = make_patient(rt, team, phone="+15551230002", mrn="MRN2")
    twilio_server.state.reject_numbers.update({PHONE: 21610, "+15551230002": 21211})
    assert outbound.send_message(rt, _queue(rt, unsubscribed)).status == "failed"
    assert outbound.send_message(rt, _queue(rt, invalid)).status == "failed"
    with rt.sessions() as session:
        assert session.get(Patient, unsubscribed).opted_out_at is not None  # type: ignore[union-attr]
        flagged = session.get(Patient, invalid)
        assert flagged is not None and "21211" in (flagged.phone_problem or "")
        assert flagged.opted_out_at is None
    # Nothing more is queued for either of them.
    with rt.unit_of_work() as session:
        for patient_id in (unsubscribed, invalid):
            patient = session.get(Patient, patient_id)
            assert outbound.queue_to_patient(session, rt, patient, MessageKind.QUESTION, "x") is None


def test_an_expired_question_is_not_sent_late(rt: Any, twilio_server: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    mid = _queue(rt, patient, valid_for=timedelta(minutes=5))
    later = rt.now() + timedelta(minutes=6)
    rt.clock = lambda: later
    assert outbound.send_message(rt, mid).status == "skipped"
    assert _message(rt, mid).status == "cancelled"
    assert twilio_server.state.messages(PHONE) == []


def test_the_send_rate_cap_hands_out_slots_one_interval_apart(rt: Any) -> None:
    """The Redis slot reservation, called back to back (as several workers would): caller n is given the
    slot n intervals after the first, so the cap holds however many workers send."""
    one_per_second = RedisRateLimiter(rt.settings.REDIS_URL, 1.0)
    one_per_second.client.delete(KEY)
    waits = [one_per_second.reserve() for _ in range(10)]
    # The calls take milliseconds; the slots they get are a whole second apart.
    assert waits[0] == pytest.approx(0.0, abs=0.05)
    for n, wait in enumerate(waits):
        assert wait == pytest.approx(float(n), abs=0.1)
    one_per_second.client.delete(KEY)


def test_an_urgent_send_never_waits_for_a_slot_but_the_bulk_pays_for_it(rt: Any) -> None:
    """A page or safety text goes at once, however many bulk sends hold slots ahead of it; its slot is
    still taken, so the bulk behind it waits one interval more and the average rate stays at the cap."""
    one_per_second = RedisRateLimiter(rt.settings.REDIS_URL, 1.0)
    one_per_second.client.delete(KEY)
    bulk = [one_per_second.reserve() for _ in range(5)]  # slots 0..4 s from now
    assert bulk[-1] == pytest.approx(4.0, abs=0.1)
    assert one_per_second.reserve(urgent=True) == 0.0  # not 5 s
    assert one_per_second.reserve() == pytest.approx(6.0, abs=0.1)  # the next bulk send pays
    one_per_second.client.delete(KEY)


def test_the_in_process_limiter_keeps_the_same_rule() -> None:
    """SEND_RATE_LIMITER=local: slots one interval apart, and an urgent send goes at once but takes one."""
    one_per_second = LocalRateLimiter(1.0)
    bulk = [one_per_second.reserve() for _ in range(3)]
    for n, wait in enumerate(bulk):
        assert wait == pytest.approx(float(n), abs=0.1)
    assert one_per_second.reserve(urgent=True) == 0.0
    assert one_per_second.reserve() == pytest.approx(4.0, abs=0.1)


def test_redis_unreachable_falls_back_to_the_in_process_cap() -> None:
    """A Redis outage must not stop sending: this process keeps the cap alone meanwhile."""
    unreachable = RedisRateLimiter("redis://127.0.0.1:1/0", 1.0)
    assert [round(unreachable.reserve()) for _ in range(3)] == [0, 1, 2]


def test_the_setting_chooses_the_limiter(rt: Any) -> None:
    """SEND_RATE_LIMITER, defaulting to redis when REDIS_URL is set; the runtime holds the one chosen."""
    assert isinstance(rt.rate_limiter, RedisRateLimiter)
    assert isinstance(make_rate_limiter(rt.settings), RedisRateLimiter)
    local = rt.settings.model_copy(update={"SEND_RATE_LIMITER": "local"})
    assert isinstance(make_rate_limiter(local), LocalRateLimiter)
    no_redis = rt.settings.model_copy(update={"REDIS_URL": None})
    assert isinstance(make_rate_limiter(no_redis), LocalRateLimiter)


def test_reconciling_a_send_interrupted_by_a_crash_adopts_the_provider_copy(
    rt: Any, twilio_server: Any
) -> None:
    patient = make_patient(rt, make_team(rt))
    mid = _queue(rt, patient, body="1/9 Any NEW pain in your bones?")
    with rt.unit_of_work() as session:
        claimed = outbound.claim(session, rt, mid)  # the worker claimed it, called Twilio, and died
        assert claimed is not None
    rt.gateway.send(
        to=PHONE, body="1/9 Any NEW pain in your bones?", status_callback=None, validity_period=None
    )
    later = rt.now() + timedelta(minutes=10)
    with rt.unit_of_work() as session:
        message = session.scalar(select(Message).where(Message.id == mid))
        assert message is not None
        outbound.reconcile_stuck_sending(session, rt, message, later)
    assert _message(rt, mid).status == "sent"
    assert len(twilio_server.state.messages(PHONE)) == 1  # adopted, not sent again


def test_a_tick_at_a_later_instant_leaves_a_send_in_flight_alone(rt: Any, twilio_server: Any) -> None:
    """A tick told a later instant (a test, an operator) moves timers, not the clock that says a send is
    stuck: a row claimed a moment ago is in flight, not a dead worker's, and is neither requeued for that
    later instant nor sent twice."""
    patient = make_patient(rt, make_team(rt))
    mid = _queue(rt, patient)
    with rt.unit_of_work() as session:
        assert outbound.claim(session, rt, mid) is not None  # the worker now waits for its send slot
    report = sweeps.tick(rt, rt.now() + timedelta(hours=3))
    assert report.republished["sending_reconciled"] == 0
    assert _message(rt, mid).status == "sending"
    # Stuck for real (no progress for longer than SENDING_STUCK_AFTER): the same tick requeues it, due now.
    with rt.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == mid)
            .values(updated_at=rt.now() - sweeps.SENDING_STUCK_AFTER - timedelta(seconds=1))
        )
    report = sweeps.tick(rt, rt.now() + timedelta(hours=3))
    assert report.republished["sending_reconciled"] == 1
    requeued = _message(rt, mid)
    assert requeued.status == "queued"
    assert requeued.next_attempt_at is not None and requeued.next_attempt_at <= rt.now()
    assert twilio_server.state.messages(PHONE) == []
