"""A worker killed with SIGKILL while it processes replies: first its pool children (the main process
rejects their tasks back to the queue), then the whole worker (nothing gets to ack or reject: the tasks it
held stay unacknowledged in Redis for the visibility timeout). A new worker and beat's sweep must finish
everything, each reply handled exactly once in effect."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from pro_service.models import Direction, Message, MessageStatus

from .harness import SCRIPT, Stack, wait_for

pytestmark = pytest.mark.faults
PATIENTS = 20


def _count(stack: Stack, direction: Direction, status: MessageStatus) -> int:
    with stack.rt.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(Message.direction == direction, Message.status == status)
            )
            or 0
        )


@pytest.mark.parametrize("callbacks", [True, False], ids=["status-callbacks", "no-status-callbacks"])
def test_sigkill_worker_mid_stream_loses_and_duplicates_nothing(stack: Stack, callbacks: bool) -> None:
    """With status callbacks, the provider's callback for a send cut short by the kill moves its row on;
    without them (lost callbacks, or a web outage) only the sweep's reconciliation against the provider's
    message list can tell whether it went out."""
    started = time.monotonic()
    state = stack.twilio.state
    state.deliver_callbacks = callbacks
    worker = stack.start_worker("doomed")
    patients = stack.enrol(PATIENTS)
    state.wait_for_messages(PATIENTS, timeout=30)
    # Every provider call now takes a while, so at any instant both pool children are likely mid-send
    # (claimed, row in `sending`, request in flight) or mid-transaction when the kill comes.
    state.latency = 0.15

    sids: list[str] = []

    def stream(round_: int) -> None:
        for p in patients:
            params = stack.reply_params(p.phone, SCRIPT[round_])
            status, _ = stack.post_reply(params)
            assert status == 200
            sids.append(params["MessageSid"])

    stream(0)
    wait_for(lambda: stack.processed_count(sids) >= 8, timeout=30, message="some replies processed")
    killed_children = worker.kill_children()
    assert killed_children, "the worker had no pool children to kill"
    in_flight_1 = _count(stack, Direction.OUTBOUND, MessageStatus.SENDING)

    stream(1)
    wait_for(lambda: stack.processed_count(sids) >= 28, timeout=30, message="more replies processed")
    worker.kill()  # main process and children at once
    in_flight_2 = _count(stack, Direction.OUTBOUND, MessageStatus.SENDING)
    unprocessed_at_kill = len(sids) - stack.processed_count(sids)

    stream(2)  # no worker at all: stored, published, waiting in Redis
    assert len(sids) == 3 * PATIENTS

    state.latency = 0.0
    stack.start_worker("replacement")
    stack.settle(
        lambda: stack.processed_count(sids) == len(sids) and stack.all_sent(),
        timeout=60,
        what="every reply processed and every question sent after the kills",
        sids=sids,
    )

    figures = stack.figures(sids)
    figures.detail.update(
        {
            "children killed": len(killed_children),
            "sends in flight at kill 1": in_flight_1,
            "sends in flight at kill 2": in_flight_2,
            "replies unprocessed at kill 2": unprocessed_at_kill,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    stack.report(f"worker SIGKILL, status callbacks {'on' if callbacks else 'off'}", figures)
    assert stack.conversation_problems(patients, len(SCRIPT)) == []
    assert figures.stored == figures.sent
    assert figures.processed == figures.sent
    assert figures.duplicates == 0, figures.detail
