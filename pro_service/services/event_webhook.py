"""Outbound event webhook: alert opened / acknowledged / resolved → a signed JSON POST to EVENT_WEBHOOK_URL.

Transactional outbox: a `before_flush` hook turns those alert events into `outbound_events` rows in the same
transaction, so an event exists exactly when the change committed; `pro.deliver_event` posts it after
commit, retrying 5xx and network errors with backoff; the beat sweep re-publishes what is due. The body
is signed with HMAC-SHA256 (header `X-Pro-Signature: sha256=<hex>`), and carries ids only (minimum
necessary: the receiver reads details through the API or FHIR with its own token).

It goes to EVENT_WEBHOOK_URL and nowhere else: a redirect is not followed (a 307 or 308 would re-post the
signed body to whatever origin it names) and fails the event, to be fixed in the setting; and outside
development it goes over https, or over http only to this machine (config/settings.py checks the setting at
start-up, and `deliver` again before each post, so settings built any other way cannot send it in clear).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import event_webhook_url_problem
from pro_service.models import Alert, AlertEvent, OutboundEvent
from pro_service.runtime import Runtime

log = logging.getLogger(__name__)
EVENT_TYPES = {"opened": "alert.opened", "acknowledged": "alert.acknowledged", "resolved": "alert.resolved"}
MAX_ATTEMPTS = 10


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def install(rt: Runtime, factory: sessionmaker[Session]) -> None:
    if not rt.settings.EVENT_WEBHOOK_URL:
        return

    @event.listens_for(factory, "before_flush")
    def _outbox(session: Session, _context: Any, _instances: Any) -> None:
        for obj in list(session.new):
            if isinstance(obj, AlertEvent) and obj.kind in EVENT_TYPES:
                alert = obj.alert if obj.alert is not None else session.get(Alert, obj.alert_id)
                if alert is None:
                    continue
                now = rt.now()
                row = OutboundEvent(
                    event_type=EVENT_TYPES[obj.kind],
                    alert_id=alert.id,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    payload={
                        "type": EVENT_TYPES[obj.kind],
                        "occurred_at": now.isoformat(),
                        "alert": {
                            "id": alert.id,
                            "ref": alert.ref,
                            "patient_id": alert.patient_id,
                            "category": alert.category,
                            "urgency": alert.urgency,
                            "status": alert.status.value,
                            "outcome": alert.outcome,
                            # The nurse's UKONS grade on resolving (red / amber / green), else null.
                            "outcome_rag": alert.outcome_rag,
                        },
                    },
                )
                session.add(row)
                session.info.setdefault("pro_new_events", []).append(row)

    @event.listens_for(factory, "after_flush")
    def _publish(session: Session, _context: Any) -> None:
        for row in session.info.pop("pro_new_events", []):
            rt.tasks.after_commit(session, "pro.deliver_event", row.id)


def deliver(rt: Runtime, event_id: int) -> str:
    """Post one event; the row says whether it is still due, so a duplicate task does nothing."""
    url, secret = rt.settings.EVENT_WEBHOOK_URL, rt.settings.EVENT_WEBHOOK_SECRET
    with rt.unit_of_work() as session:
        row = session.get(OutboundEvent, event_id, with_for_update=True)
        if row is None or row.status != "pending" or not url or not secret:
            return "skipped"
        if row.next_attempt_at is not None and row.next_attempt_at > rt.now():
            return "not_due"
        body = json.dumps({"id": row.id, **row.payload}, separators=(",", ":")).encode()
        row.attempts += 1
        refused = event_webhook_url_problem(url, development=rt.settings.development)
        if refused:
            ok, problem, retry = False, f"not sent: EVENT_WEBHOOK_URL {refused}", False
        else:
            try:
                response = requests.post(
                    url,
                    data=body,
                    timeout=5,
                    allow_redirects=False,
                    headers={
                        "Content-Type": "application/json",
                        "X-Pro-Event-Id": str(row.id),
                        "X-Pro-Signature": signature(secret, body),
                    },
                )
                ok, problem = response.status_code < 300, f"HTTP {response.status_code}"
                retry = response.status_code >= 500 or response.status_code == 429
                if response.is_redirect or response.is_permanent_redirect:
                    problem += " (a redirect: not followed; set EVENT_WEBHOOK_URL to the final address)"
            except requests.RequestException as exc:
                ok, problem, retry = False, type(exc).__name__, True
        if ok:
            row.status, row.delivered_at, row.last_error = "delivered", rt.now(), None
            return "delivered"
        row.last_error = problem
        if retry and row.attempts < MAX_ATTEMPTS:
            row.next_attempt_at = rt.now() + timedelta(seconds=min(2**row.attempts, 3600))
            return "retry"
        row.status = "failed"
        log.error("event webhook gave up", extra={"event_id": row.id, "problem": problem})
        return "failed"


def due(session: Session, now: datetime, limit: int = 500) -> list[int]:
    return list(
        session.scalars(
            select(OutboundEvent.id)
            .where(OutboundEvent.status == "pending", OutboundEvent.next_attempt_at <= now)
            .limit(limit)
        )
    )
