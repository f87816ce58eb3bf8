"""Redis (the broker) stopped, and frozen, during a stream of replies.

The webhook must still store and acknowledge every reply (200), fast: it never calls the broker (workers
poll for stored replies and publish their tasks). Each fault lasts until a worker has met it. Redis
restarts empty (no persistence), so whatever was queued is gone too: the database is the source of truth
and beat's sweep re-publishes it. The workers must come back to work by themselves once Redis does."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for

from .harness import SCRIPT, Enrolled, Stack

pytestmark = pytest.mark.faults
# How long each fault lasts: a restart that takes a few seconds, a freeze of five broker timeouts (a
# failover, a stalled host, a fork for a snapshot on a big dataset).


def _stream(stack: Stack, patients: list[Enrolled], round_: int, sids: list[str]) -> list[float]:
    """One reply from each patient; every one must be acknowledged. Returns the webhook times."""
    took: list[float] = []
    for p in patients:
        params = stack.reply_params(p.phone, SCRIPT[round_])
        status, seconds = stack.post_reply(params)
        assert status == 200, f"webhook answered {status} after {seconds:.2f}s"
        sids.append(params["MessageSid"])
        took.append(seconds)
    return took


def test_redis_stopped_mid_stream_every_reply_stored_then_processed_once(stack: Stack) -> None:
    started = time.monotonic()
    bound = stack.settings.BROKER_TIMEOUT_SECONDS + 1
    stack.start_worker("a")
    patients = stack.enrol(15)
    stack.twilio.state.wait_for_messages(15, timeout=30)
    sids: list[str] = []

    _stream(stack, patients, 0, sids)
    stack.redis.stop()  # SIGTERM; nothing saved: what was queued and unacknowledged is lost with it
    during = _stream(stack, patients, 1, sids)
    stored_while_down = len(stack.inbound_by_sid(sids[-len(patients) :]))
    # Down until the worker has run into it (its poll cannot publish round 1, or its consumer lost Redis).
    wait_for(stack.worker_noticed_the_broker_is_gone, timeout=30, message="the worker to meet the outage")
    stack.redis.start()  # same port, empty
    assert max(during) <= bound, during
    assert stored_while_down == len(patients)
    _stream(stack, patients, 2, sids)

    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="every reply processed once Redis is back and the sweep runs",
        sids=sids,
    )
    figures = stack.figures(sids)
    figures.detail.update(
        {
            "stored while Redis was down": stored_while_down,
            "slowest webhook while down (ms)": round(max(during) * 1000),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    stack.report("Redis stopped", figures)
    assert stack.conversation_problems(patients, len(SCRIPT)) == []
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail


def test_redis_frozen_webhook_answers_within_the_broker_timeout(stack: Stack) -> None:
    started = time.monotonic()
    bound = stack.settings.BROKER_TIMEOUT_SECONDS + 1
    stack.start_worker("a")
    patients = stack.enrol(8)
    stack.twilio.state.wait_for_messages(8, timeout=30)
    sids: list[str] = []

    _stream(stack, patients, 0, sids)
    # Frozen at once, while the worker is busy with round one (acks, publishes of the next questions).
    stack.redis.freeze()  # SIGSTOP: connections open, nothing answers
    try:
        frozen = _stream(stack, patients, 1, sids)
        # Frozen until the worker's acks or publishes (round 1's wake-ups) are waiting on the frozen broker.
        wait_for(stack.frozen_broker_has_unread_requests, timeout=30, message="the worker to meet the freeze")
    finally:
        stack.redis.thaw()
    print(f"[Redis frozen] slowest webhook while frozen: {max(frozen) * 1000:.0f} ms (bound {bound:.0f} s)")
    assert max(frozen) <= bound, frozen
    _stream(stack, patients, 2, sids)

    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="every reply processed after Redis thawed",
        sids=sids,
    )
    figures = stack.figures(sids)
    figures.detail.update(
        {
            "slowest webhook while frozen (ms)": round(max(frozen) * 1000),
            "bound (ms)": round(bound * 1000),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    stack.report("Redis frozen", figures)
    assert stack.conversation_problems(patients, len(SCRIPT)) == []
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail
