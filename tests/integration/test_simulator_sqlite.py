"""The patient-phone simulator on SQLite, the embedded default (issue 14).

The simulator posts a reply to the service's own webhook from inside a staff request. On SQLite every
transaction takes the write lock (BEGIN IMMEDIATE, pro_service/db.py), so a view that still holds its
transaction while it posts makes the webhook wait out the 30 s busy timeout and answer 503. These tests run
on SQLite only (no PostgreSQL, no Redis), so they are not marked `integration`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from config.settings import Settings
from pro_service.models import AuditLog, Direction, Message
from tests.browser.support import csrf_token, login, make_staff
from tests.conftest import wait_for
from tests.integration import test_embedded_run
from tests.integration.helpers import make_patient, make_team

# `pro-service run` in a subprocess on a SQLite file: the same fixture as the `make run` test.
embedded = test_embedded_run.embedded
FAST = 2.0  # seconds: a reply answers in well under one; this leaves room for a loaded machine
REQUEST_TIMEOUT = 10.0  # bounded: before the fix the reply took the full 30 s busy timeout
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ERROR_PANEL = re.compile(r'<[^>]*id="sim-error"[^>]*>', re.S)


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_simulator_reply_on_make_run_is_stored_in_well_under_a_second(
    embedded: test_embedded_run.EmbeddedRun,
) -> None:
    token = re.search(r"demo API token \(admin\): (pro_\S+)", embedded.log())
    assert token, embedded.log()[-4000:]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token.group(1)}"
    patients = api.get(f"{embedded.base_url}/api/v1/patients", params={"page_size": 200}, timeout=10)
    patient = next(p for p in patients.json()["patients"] if p["mrn"] == "DEMO-003")

    # A nurse signs in and opens the patient's phone, as on the page.
    web = requests.Session()
    login_page = web.get(f"{embedded.base_url}/login", timeout=10)
    signed_in = web.post(
        f"{embedded.base_url}/login",
        data={
            "csrf_token": _csrf(login_page.text),
            "email": "nurse@demo.local",
            "password": "demo-password-123",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    phone = web.get(f"{embedded.base_url}/simulator/", params={"patient": patient["id"]}, timeout=10)
    assert phone.status_code == 200
    body = f"sim {secrets.token_hex(4)}"  # unique: the seed's messages cannot match it

    try:
        sent, elapsed = _timed(
            lambda: web.post(
                f"{embedded.base_url}/simulator/{patient['id']}/reply",
                data={"csrf_token": _csrf(phone.text), "body": body},
                allow_redirects=False,
                timeout=REQUEST_TIMEOUT,
            )
        )
    except requests.Timeout:
        pytest.fail(
            f"the simulator's reply took more than {REQUEST_TIMEOUT}s (the webhook waited for a lock)"
        )
    print(f"simulator reply on SQLite (make run): {elapsed * 1000:.0f} ms")
    assert sent.status_code == 302, sent.text[:500]
    assert elapsed < FAST, f"the simulator's reply took {elapsed:.2f}s"
    after = web.get(embedded.base_url + sent.headers["Location"], timeout=10)
    assert "refused" not in after.text and not ERROR_PANEL.search(after.text), after.text

    def stored() -> Any:
        messages = api.get(
            f"{embedded.base_url}/api/v1/messages", params={"patient_id": patient["id"]}, timeout=10
        ).json()["messages"]
        return [m for m in messages if m["direction"] == "inbound" and m["body"] == body]

    # Stored by the webhook before it answered: the first look finds it (the wait is only a bound).
    [message] = wait_for(stored, timeout=5, interval=0.1, message="the simulated reply stored")
    assert message["twilio_sid"].startswith("SM") and len(message["twilio_sid"]) == 34

    # What people try first: an emergency in words the vocabulary does not know, from the simulator, read
    # by the embedded worker on SQLite: an urgent alert for a nurse, and the patient's gentler text.
    phone = web.get(f"{embedded.base_url}/simulator/", params={"patient": patient["id"]}, timeout=10)
    worried = "woke up and my left side just isnt doing what i tell it"
    web.post(
        f"{embedded.base_url}/simulator/{patient['id']}/reply",
        data={"csrf_token": _csrf(phone.text), "body": worried},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT,
    )

    def urgent() -> Any:
        alerts = api.get(
            f"{embedded.base_url}/api/v1/alerts", params={"patient_id": patient["id"]}, timeout=10
        )
        return [a for a in alerts.json()["alerts"] if a["urgency"] == "urgent" and a["status"] != "resolved"]

    alerts = wait_for(urgent, timeout=30, message="an urgent alert from the simulated emergency")
    assert any(worried in str(a["evidence"]) for a in alerts)

    def told() -> Any:
        messages = api.get(
            f"{embedded.base_url}/api/v1/messages", params={"patient_id": patient["id"]}, timeout=10
        ).json()["messages"]
        return [
            m for m in messages if m["direction"] == "outbound" and "nurse will read" in (m["body"] or "")
        ]

    wait_for(told, timeout=30, message="the patient's unsure text through the outbox")


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Any]:
    """The app in this process on a SQLite file with the outbox gateway (the embedded default's web)."""
    from pro_service import create_app, runtime_of
    from pro_service.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'pro.sqlite3'}"
    upgrade(url)
    settings = Settings(
        SECRET_KEY="test-secret-key-" + "s" * 16,
        DATABASE_URL=url,
        REDIS_URL=None,
        SMS_BACKEND="outbox",
        PUBLIC_BASE_URL="http://127.0.0.1:5000",
    )
    flask_app = create_app(settings)
    flask_app.testing = True
    try:
        yield flask_app
    finally:
        runtime_of(flask_app).dispose()


def _inbound(rt: Any, patient_id: int) -> list[str]:
    with rt.sessions() as session:
        rows = session.scalars(
            select(Message.body)
            .where(Message.patient_id == patient_id, Message.direction == Direction.INBOUND)
            .order_by(Message.id)
        )
        return list(rows)


def test_a_refused_reply_stays_in_view_until_a_reply_goes_through(sqlite_app: Any) -> None:
    from pro_service import runtime_of

    rt = runtime_of(sqlite_app)
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    client = sqlite_app.test_client()
    login(client, "kim@example.org")
    page = f"/simulator/?patient={patient_id}"

    def reply(body: str) -> tuple[Any, float]:
        token = csrf_token(client, page)
        return _timed(
            lambda: client.post(f"/simulator/{patient_id}/reply", data={"csrf_token": token, "body": body})
        )

    # A reply goes through at once (the webhook must not wait for the view's own transaction).
    sent, elapsed = reply("yes")
    assert sent.status_code == 302
    assert elapsed < FAST, f"the simulator's reply took {elapsed:.2f}s"
    assert _inbound(rt, patient_id) == ["yes"]

    # A row the database refuses: the webhook answers 503 and the page says so.
    with rt.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.body = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    sent, elapsed = reply("refused")
    assert elapsed < FAST, f"the simulator's refused reply took {elapsed:.2f}s"
    shown = client.get(sent.headers["Location"]).get_data(as_text=True)
    panel = ERROR_PANEL.search(shown)
    assert panel and 'role="alert"' in panel.group(0), shown
    assert "HTTP 503" in shown
    # It stays on a refresh and beside the polled thread (the poll replaces only the thread).
    for _ in range(2):
        again = client.get(page).get_data(as_text=True)
        assert ERROR_PANEL.search(again) and "HTTP 503" in again
    poll = client.get(f"/simulator/{patient_id}/thread").get_json()
    assert "sim-error" not in poll["html"]
    # The outcome of each post is recorded after it, in its own transaction.
    with rt.sessions() as session:
        statuses = session.scalars(
            select(AuditLog.detail).where(AuditLog.action == "simulate_patient_reply").order_by(AuditLog.id)
        ).all()
    assert [d["webhook_status"] for d in statuses] == [200, 503]

    # The next reply that goes through clears it; nothing refused was stored.
    sent, _ = reply("no")
    cleared = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert not ERROR_PANEL.search(cleared) and "HTTP 503" not in cleared
    assert _inbound(rt, patient_id) == ["yes", "no"]
