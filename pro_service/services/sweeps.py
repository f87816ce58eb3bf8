"""Beat's tick: everything time-driven, from rows. Run twice at once and nothing happens twice
(unique keys, row locks with SKIP LOCKED, status checks); a lost broker message is found here again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from pro_service.models import Direction, Message, MessageKind, MessageStatus
from pro_service.runtime import Runtime
from pro_service.services import check_ins, dispatch, event_webhook, notify, triage
from pro_service.services.outbound import reconcile_stuck_sending, send_queue

log = logging.getLogger(__name__)
T = TypeVar("T")
SENDING_STUCK_AFTER = timedelta(minutes=5)


@dataclass
class TickReport:
    materialised: int = 0
    deadlines: int = 0
    escalated: int = 0
    republished: dict[str, int] = field(default_factory=dict)


def republish_stuck(session: Session, rt: Runtime, now: datetime) -> dict[str, int]:
    """Rows whose task the broker may have lost: publish again (the tasks are idempotent).

    Stuck means "no progress for a while", which only the real clock can say: a tick run at a chosen later
    instant (tests, an operator) moves the timers, but must not take a send that is in flight for one
    whose worker died, nor requeue it for that later instant."""
    now = min(now, rt.now())
    older = now - timedelta(seconds=rt.settings.SWEEP_STUCK_AFTER_SECONDS)
    counts: dict[str, int] = {}
    patients = session.scalars(
        select(Message.patient_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.status == MessageStatus.RECEIVED,
            Message.patient_id.is_not(None),
            Message.created_at < older,
        )
        .distinct()
        .limit(1000)
    ).all()
    for patient_id in patients:
        rt.tasks.after_commit(session, "pro.process_inbound", patient_id)
    counts["inbound_patients"] = len(patients)
    staff_msgs = session.scalars(
        select(Message.id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.kind == MessageKind.STAFF_REPLY,
            Message.status == MessageStatus.RECEIVED,
            Message.created_at < older,
        )
        .limit(1000)
    ).all()
    for message_id in staff_msgs:
        rt.tasks.after_commit(session, "pro.process_staff_inbound", message_id)
    counts["staff_inbound"] = len(staff_msgs)
    outbound = session.scalars(
        select(Message)
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.status.in_((MessageStatus.QUEUED, MessageStatus.UNCERTAIN)),
            Message.next_attempt_at <= now,
            Message.updated_at < older,
        )
        .order_by(Message.id)
        .limit(5000)
    ).all()
    for message in outbound:
        rt.tasks.after_commit(session, "pro.send_message", message.id, queue_name=send_queue(message))
    counts["outbound"] = len(outbound)
    sending = session.scalars(
        select(Message)
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.status == MessageStatus.SENDING,
            Message.updated_at < now - SENDING_STUCK_AFTER,
        )
        .limit(100)
        .with_for_update(skip_locked=True)
    ).all()
    for message in sending:
        reconcile_stuck_sending(session, rt, message, now)
    counts["sending_reconciled"] = len(sending)
    unscored = triage.closed_unscored(session, older)
    for check_in_id in unscored:
        rt.tasks.after_commit(session, "pro.score_check_in", check_in_id)
    counts["unscored"] = len(unscored)
    events = event_webhook.due(session, now)
    for event_id in events:
        rt.tasks.after_commit(session, "pro.deliver_event", event_id)
    counts["events"] = len(events)
    return counts


BATCH = 500
# The share of the beat interval a tick may use; the rest is slack so that ticks do not pile up.
TICK_BUDGET_SHARE = 0.8


@dataclass(frozen=True)
class Budget:
    """When a tick's time is up, on a monotonic clock: a wall-clock step (NTP, DST) neither ends nor extends
    it, and `now` (the instant the tick works at, set by tests and operators) plays no part."""

    deadline: float
    clock: Callable[[], float]

    @classmethod
    def start(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        return self.deadline - self.clock()

    def spent(self) -> bool:
        return self.left() < 0


def _in_batches(rt: Runtime, now: datetime, step: Callable[..., int], budget: Budget) -> int:
    """Run a sweep step in batches, one transaction each, until a batch comes back short or the tick's
    time is spent (a fan-out of thousands is queued in one tick, and a long one yields to the next).
    The first batch always runs, so escalation, first in every tick, is never skipped."""
    total = 0
    while True:
        with rt.unit_of_work() as session:
            handled = step(session, rt, now, limit=BATCH)
        total += handled
        if handled < BATCH or budget.spent():
            return total


def _materialise(rt: Runtime, now: datetime, budget: Budget, report: TickReport) -> int:
    """Materialise due check-ins, unless the tick's time is already spent: then they wait for the next tick
    (their schedules keep next_due_at, so nothing is lost) rather than push this tick past the interval."""
    if budget.spent():
        log.info(
            "materialise skipped: the tick's time budget is spent; due schedules wait for the next tick",
            extra={
                "escalated": report.escalated,
                "deadlines": report.deadlines,
                "over_budget_seconds": round(-budget.left(), 3),
            },
        )
        return 0
    with rt.unit_of_work() as session:
        return dispatch.materialise_due(session, rt, now)


def tick(rt: Runtime, now: datetime, *, clock: Callable[[], float] = time.monotonic) -> TickReport:
    """One beat: escalate, run check-in timers, materialise due check-ins, re-publish what is stuck.
    Each part is its own transaction, and a part that fails is logged and the next one still runs: a bad
    schedule must not stop escalations, nor a failing escalation the re-publishing of lost tasks.
    `clock` times the tick's budget (tests pass their own)."""
    report = TickReport()
    budget = Budget.start(TICK_BUDGET_SHARE * rt.settings.BEAT_TICK_SECONDS, clock)

    def republish() -> dict[str, int]:
        with rt.unit_of_work() as session:
            return republish_stuck(session, rt, now)

    # Escalations first: an unacknowledged urgent alert never waits behind a fan-out's bulk work.
    report.escalated = _part("escalate", lambda: _in_batches(rt, now, notify.escalate_due, budget), 0)
    # Then timers: a check-in that expires now frees its patient for the occurrence due now.
    report.deadlines = _part("deadlines", lambda: _in_batches(rt, now, check_ins.run_deadlines, budget), 0)
    report.materialised = _part("materialise", lambda: _materialise(rt, now, budget, report), 0)
    report.deadlines += _part("deadlines", lambda: _in_batches(rt, now, check_ins.run_deadlines, budget), 0)
    report.republished = _part("republish", republish, {})
    return report


def _part(name: str, run: Callable[[], T], failed: T) -> T:
    try:
        return run()
    except Exception:
        log.exception("tick part failed; the rest of the tick goes on", extra={"part": name})
        return failed
