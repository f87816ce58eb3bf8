"""The optional outbound event webhook: alert opened / acknowledged / resolved, signed, retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from sqlalchemy import select
from werkzeug.serving import make_server

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import Alert, OutboundEvent
from pro_service.services import alert_lifecycle, event_webhook, triage
from tests.conftest import free_port
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
SECRET = "event-secret-0123456789"


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.app = Flask("receiver")
        self.app.add_url_rule("/events", "events", self.events, methods=["POST"])

    def events(self) -> tuple[str, int]:
        if self.fail_next:
            self.fail_next -= 1
            return "try later", 503
        self.received.append((dict(request.headers), request.get_data()))
        return "", 204


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    port = free_port()
    server = make_server("127.0.0.1", port, rec.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec, f"http://127.0.0.1:{port}/events"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def hooked_rt(settings: Any, receiver: tuple[Receiver, str]) -> Iterator[Any]:
    from pro_service.runtime import Role, build_runtime

    rt = build_runtime(
        settings.model_copy(update={"EVENT_WEBHOOK_URL": receiver[1], "EVENT_WEBHOOK_SECRET": SECRET}),
        Role.WORKER,
    )
    yield rt
    rt.dispose()


def _finding() -> Finding:
    return Finding(
        category="spinal_cord_compression",
        urgency=Urgency.URGENT,
        rule_id="scc-neuro-or-bladder",
        rationale="r",
        ruleset="sre",
        ruleset_version=1,
        evidence=(Evidence(item_code="neuro", question="q", raw_text="yes", value=True),),
    )


def test_alert_life_cycle_posts_signed_events_and_retries(
    hooked_rt: Any, receiver: tuple[Receiver, str]
) -> None:
    rec, _url = receiver
    rt = hooked_rt
    patient = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        alert_id = triage.upsert_alert(session, rt, patient, _finding()).id
    with rt.unit_of_work() as session:
        alert = session.get(Alert, alert_id)
        alert_lifecycle.acknowledge(session, alert, staff_id=None, actor="test", now=rt.now(), via="api")
    with rt.unit_of_work() as session:
        alert = session.get(Alert, alert_id)
        alert_lifecycle.resolve(
            session,
            alert,
            staff_id=None,
            actor="test",
            now=rt.now(),
            outcome="same_day_visit",
            note=None,
            rag="amber",
        )
    with rt.sessions() as session:
        ids = list(session.scalars(select(OutboundEvent.id).order_by(OutboundEvent.id)))
    assert len(ids) == 3

    rec.fail_next = 1
    assert event_webhook.deliver(rt, ids[0]) == "retry"  # 503: try again later
    with rt.unit_of_work() as session:
        session.get(OutboundEvent, ids[0]).next_attempt_at = rt.now()  # type: ignore[union-attr]
    for event_id in ids:
        assert event_webhook.deliver(rt, event_id) == "delivered"
    assert event_webhook.deliver(rt, ids[0]) == "skipped"  # a duplicate task posts nothing

    types = []
    for headers, body in rec.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Pro-Signature"] == expected
        payload = json.loads(body)
        types.append(payload["type"])
        assert set(payload["alert"]) == {
            "id",
            "ref",
            "patient_id",
            "category",
            "urgency",
            "status",
            "outcome",
            "outcome_rag",
        }
        if payload["type"] == "alert.resolved":
            assert payload["alert"]["outcome_rag"] == "amber"
    assert types == ["alert.opened", "alert.acknowledged", "alert.resolved"]


def test_no_events_without_a_configured_url(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    with rt.unit_of_work() as session:
        triage.upsert_alert(session, rt, patient, _finding())
    with rt.sessions() as session:
        assert session.scalar(select(OutboundEvent)) is None
