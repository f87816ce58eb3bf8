"""Thin, named, idempotent tasks: each opens a session, calls one service function, commits.

All tasks are acks_late with reject_on_worker_lost (set on the app); each one can run twice without a second
question, a second alert or a second page — the services check status and unique keys before any effect.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import Celery, Task

from pro_service.runtime import Runtime
from pro_service.services import event_webhook, inbound, outbound, reconcile, staff_inbound, sweeps, triage

log = logging.getLogger(__name__)


def register(app: Celery, rt: Runtime) -> None:
    @app.task(name="pro.process_inbound", acks_late=True)
    def process_inbound(patient_id: int) -> int:
        with rt.unit_of_work() as session:
            return inbound.process_patient(session, rt, patient_id)

    @app.task(name="pro.process_staff_inbound", acks_late=True)
    def process_staff_inbound(message_id: int) -> str:
        with rt.unit_of_work() as session:
            return staff_inbound.process_staff_message(session, rt, message_id)

    @app.task(name="pro.send_message", bind=True, acks_late=True)
    def send_message(self: Task, message_id: int) -> str:
        outcome = outbound.send_message(rt, message_id)
        if outcome.status == "retry" and outcome.retry_in is not None:
            # Fast path for a 429/5xx; the row (status queued, next_attempt_at) is the real timer.
            queue = (self.request.delivery_info or {}).get("routing_key")  # a page retries on its own queue
            self.apply_async(args=[message_id], countdown=outcome.retry_in, queue=queue)
        if outcome.status != "sent":
            log.info(
                "message not sent",
                extra={"message_id": message_id, "outcome": outcome.status, "reason": outcome.reason},
            )
        return outcome.status

    @app.task(name="pro.score_check_in", acks_late=True)
    def score_check_in(check_in_id: int) -> int:
        with rt.unit_of_work() as session:
            return len(triage.score_check_in(session, rt, check_in_id))

    @app.task(name="pro.tick", acks_late=True)
    def tick(now: str | None = None) -> dict[str, Any]:
        """`now` (ISO 8601) lets tests and operators run a tick at a chosen instant."""
        at = datetime.fromisoformat(now) if now else rt.now()
        report = sweeps.tick(rt, at)
        return {
            "materialised": report.materialised,
            "deadlines": report.deadlines,
            "escalated": report.escalated,
            **report.republished,
        }

    @app.task(name="pro.reconcile_inbound", acks_late=True)
    def reconcile_inbound() -> int:
        return reconcile.reconcile_inbound(rt, rt.now())

    @app.task(name="pro.deliver_event", bind=True, acks_late=True)
    def deliver_event(self: Task, event_id: int) -> str:
        outcome = event_webhook.deliver(rt, event_id)
        if outcome == "retry":
            self.apply_async(args=[event_id], countdown=5)  # fast path; the row's next_attempt_at decides
        return outcome
