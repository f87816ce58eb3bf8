"""The Twilio-compatible server answering 429 and 500 in bursts (nothing accepted: safe to retry), and the
ambiguous case: a 500 for a message the provider DID accept.

Every outbound row must reach the provider exactly once. The server records the status-callback URL each
message was sent with (…/twilio/status?mid=<our row id>), so each accepted message is traced to its row."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import select

from pro_service.models import Direction, Message

from .harness import SCRIPT, SENT_STATES, Stack

pytestmark = pytest.mark.faults


def _attempts(stack: Stack) -> Counter[int]:
    with stack.rt.sessions() as session:
        return Counter(
            session.scalars(select(Message.attempts).where(Message.direction == Direction.OUTBOUND)).all()
        )


def test_429_and_500_bursts_are_retried_with_backoff_and_nothing_is_sent_twice(stack: Stack) -> None:
    started = time.monotonic()
    state = stack.twilio.state
    stack.start_worker("a")
    injected = 0

    state.fail_next(6, 429, 20429)  # the first questions hit a rate-limit burst
    injected += 6
    patients = stack.enrol(20)
    stack.settle(stack.all_sent, timeout=60, what="the first questions, through the 429 burst")

    sids: list[str] = []
    bursts = [(8, 500, 20500), (6, 429, 20429)]
    for round_ in range(len(SCRIPT)):
        if round_ < len(bursts):
            n, status, code = bursts[round_]
            state.fail_next(n, status, code)
            injected += n
        for p in patients:
            params = stack.reply_params(p.phone, SCRIPT[round_])
            assert stack.post_reply(params)[0] == 200
            sids.append(params["MessageSid"])
    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="every question out, through the 429/500 bursts",
        sids=sids,
    )

    accepted = len(state.messages())
    attempts = _attempts(stack)
    figures = stack.figures(sids)
    figures.detail.update(
        {
            "provider errors injected": injected,
            "provider POSTs": state.post_attempts,
            "rows sent on attempt 1/2/3+": (
                f"{attempts[1]}/{attempts[2]}/{sum(n for a, n in attempts.items() if a >= 3)}"
            ),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    stack.report("Twilio 429/500 bursts", figures)
    # Every injected error was met (and retried), and no POST happened outside a claim of its row.
    assert state.post_attempts == accepted + injected
    assert sum(a * n for a, n in attempts.items()) == state.post_attempts
    assert stack.conversation_problems(patients, len(SCRIPT)) == []
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail


@pytest.mark.parametrize("callback_delay", [0.0, 2.0], ids=["callbacks-at-once", "callbacks-after-2s"])
def test_ambiguous_500_after_the_provider_accepted_is_not_sent_twice(
    stack: Stack, callback_delay: float
) -> None:
    """Twilio has no idempotency key: after a 5xx the only way to know is to look (list the messages,
    or wait for the status callback of the copy that went out). With callbacks at once the callback
    for the accepted copy reaches the row before the retry; with a realistic delay the retry wins."""
    started = time.monotonic()
    state = stack.twilio.state
    state.callback_delay = callback_delay
    stack.start_worker("a")
    state.fail_next(3, 500, 20500, after_accept=True)
    patients = stack.enrol(6)
    sids: list[str] = []
    stack.settle(stack.all_sent, timeout=60, what="the first questions, through the ambiguous 500s")
    for p in patients:
        params = stack.reply_params(p.phone, SCRIPT[0])
        assert stack.post_reply(params)[0] == 200
        sids.append(params["MessageSid"])
    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="the second questions",
        sids=sids,
    )
    figures = stack.figures(sids)
    figures.detail["seconds"] = round(time.monotonic() - started, 1)
    stack.report(f"Twilio ambiguous 500, callback delay {callback_delay}s", figures)
    copies = stack.provider_copies()
    twice = sorted(mid for mid, n in copies.items() if mid is not None and n > 1)
    assert twice == [], f"outbound rows the patient received twice: {twice}"
    assert figures.duplicates == 0, figures.detail
    # The row must name the copy the patient got (its provider SID), or nothing can be traced or reconciled.
    unnamed = [m.id for m in stack.outbound() if m.status in SENT_STATES and m.twilio_sid is None]
    assert unnamed == [], f"sent rows that do not record the provider's MessageSid: {unnamed}"
