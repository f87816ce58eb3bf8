"""Reconciliation of missed inbound webhooks; metrics, request ids and PHI-free logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pro_service.models import Message
from pro_service.services.reconcile import reconcile_inbound
from tests.conftest import FROM_NUMBER, METRICS_TOKEN
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.mark.commits("reconciliation stores through the inbound webhook's own pool")
def test_reconciliation_ingests_messages_whose_webhook_never_arrived(
    rt: Any, twilio_server: Any, sms: Any
) -> None:
    make_patient(rt, make_team(rt))
    delivered = twilio_server.state.add_inbound("+15551230001", FROM_NUMBER, "yes")
    assert sms("+15551230001", "yes", sid=delivered).status_code == 200  # this one reached us
    missed = twilio_server.state.add_inbound("+15551230001", FROM_NUMBER, "my legs feel weak")
    assert reconcile_inbound(rt, datetime.now(UTC)) == 1
    assert reconcile_inbound(rt, datetime.now(UTC)) == 0  # idempotent
    with rt.sessions() as session:
        rows = session.execute(
            select(Message.twilio_sid, Message.body, Message.patient_id)
            .where(Message.direction == "inbound")
            .order_by(Message.id)
        ).all()
    assert [(sid, body) for sid, body, _ in rows] == [(delivered, "yes"), (missed, "my legs feel weak")]
    assert all(patient is not None for *_, patient in rows)


def scrape(client: Any) -> Any:
    """Prometheus' scrape: /metrics answers only its bearer token (METRICS_TOKEN)."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return response


def _group_inserts(text: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith("pro_inbound_group_rows_count")]
    return float(line.split()[-1])


def test_metrics_expose_queue_depths_and_request_latency(client: Any, rt: Any, sms: Any) -> None:
    make_patient(rt, make_team(rt))
    inserts_before = _group_inserts(scrape(client).get_data(as_text=True))
    sms("+15551230001", "hello", sid="SM" + "e" * 32)
    sms("+15551230001", "hello", sid="SM" + "e" * 32)  # Twilio's retry of the same message
    text = scrape(client).get_data(as_text=True)
    webhook = 'pro_http_request_seconds_count{endpoint="/twilio/sms",method="POST",status="200"}'
    assert webhook in text
    assert 'pro_inbound_messages_total{outcome="stored"}' in text
    assert 'pro_inbound_messages_total{outcome="duplicate"}' in text
    assert _group_inserts(text) == inserts_before + 2  # rows per insert (ingest/store.py), one each
    assert 'pro_queue_depth{kind="inbound_unprocessed"}' in text
    assert "pro_alerts_open" in text or "pro_queue_depth" in text


def test_request_id_is_echoed_and_logs_are_json_without_phi(
    client: Any, rt: Any, sms: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from pro_service.observability import JsonFormatter

    make_patient(rt, make_team(rt))
    caplog.set_level(logging.DEBUG)
    response = client.get("/healthz", headers={"X-Request-Id": "req-123"})
    assert response.headers["X-Request-Id"] == "req-123"
    sms("+15551230001", "I can't feel my legs")
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert lines, "something was logged"
    for line in lines:
        payload = json.loads(line)
        assert "message" in payload
        assert "+15551230001" not in line and "legs" not in line and "Lopez" not in line


def test_readyz_reports_schema_at_head(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready"


def test_inbound_count_unchanged_by_metrics_scrape(client: Any, rt: Any) -> None:
    scrape(client)
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_made_up_http_methods_do_not_grow_the_metrics(client: Any) -> None:
    """Any token is a valid method name; each used to become a new label value (issue 15)."""
    for i in range(5):
        client.open("/healthz", method=f"BOGUS{i}")
    text = scrape(client).get_data(as_text=True)
    assert "BOGUS" not in text
    assert 'method="OTHER"' in text


def test_the_access_log_leaves_query_strings_out() -> None:
    """Searches put names, phone digits and MRNs in query strings; gunicorn must not log them (issue 15)."""
    import runpy
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"))
    config = Config()
    config.set("access_log_format", settings["access_log_format"])
    request = SimpleNamespace(
        method="GET",
        path="/patients",
        query="q=Lopez&phone=5551230001",
        uri="/patients?q=Lopez&phone=5551230001",
        version=(1, 1),
        headers=[],
        peer_addr=("10.0.0.1", 5000),
        remote_addr=("10.0.0.1", 5000),
    )
    response = SimpleNamespace(status="200 OK", response_length=10, sent=10, headers=[])
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": request.uri,
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    from datetime import timedelta

    atoms = Logger(config).atoms(response, request, environ, timedelta(milliseconds=3))
    line = settings["access_log_format"] % atoms
    assert "/patients" in line and "Lopez" not in line and "5551230001" not in line
