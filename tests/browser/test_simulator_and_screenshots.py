"""The embedded demo in a browser: the patient-phone simulator round trip (outbox app on its own port,
the real worker), and the screenshots in docs/screenshots taken on the demo seed's data."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server

from pro_service.models import Alert, Direction, Message, StaffRole
from tests.browser.conftest import new_page, sign_in
from tests.browser.support import PASSWORD, make_staff
from tests.conftest import free_port
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
# The committed pictures are refreshed with UPDATE_SCREENSHOTS=1; an ordinary run writes to a temporary
# folder, so the test suite never dirties the work tree.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def outbox_server(settings: Any) -> Iterator[str]:
    """The app with SMS_BACKEND=outbox on its own port; PUBLIC_BASE_URL is that server's URL."""
    from pro_service import create_app, runtime_of

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    outbox_app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox", "PUBLIC_BASE_URL": url}))
    server = make_server("127.0.0.1", port, outbox_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join(5)
    runtime_of(outbox_app).dispose()


def test_simulator_reply_goes_through_the_signed_webhook_and_the_worker(
    browser: Any, outbox_server: str, rt: Any, worker: Any, live_server: str, twilio_server: Any
) -> None:
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    # The simulator speaks as any patient: administrators only on this deployment (PostgreSQL, Redis).
    make_staff(rt, email="kim@example.org", role=StaffRole.ADMIN, team_id=team)
    context, page = new_page(browser, outbox_server)
    try:
        sign_in(page, "kim@example.org", PASSWORD)
        page.get_by_role("link", name="Phone simulator").click()
        expect(page.get_by_role("heading", name="Ana's phone")).to_be_visible()
        page.get_by_role("link", name="Patient record").click()
        page.get_by_role("button", name="Send the weekly check-in now").click()
        expect(page.get_by_text("Check-in sent")).to_be_visible()

        page.goto(f"/simulator/?patient={patient_id}")
        thread = page.locator("#phone-thread")
        expect(thread).to_contain_text("1/9 Any NEW pain")
        page.get_by_label("Reply as Ana").fill("no")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(thread.locator(".bubble-in p")).to_have_text(["no"])
        # The worker reads the reply and asks the next question; the thread updates by itself.
        expect(thread).to_contain_text("2/9 Past 7 days", timeout=15_000)
        page.locator(".quick").get_by_role("button", name="NURSE").click()
        expect(thread.locator(".bubble-in").last).to_contain_text("NURSE")
    finally:
        context.close()

    with rt.sessions() as session:
        inbound = session.scalars(
            select(Message).where(Message.patient_id == patient_id, Message.direction == Direction.INBOUND)
        ).all()
    # Stored by the webhook (a MessageSid like Twilio's), not inserted by the simulator.
    assert [m.body for m in inbound][:2] == ["no", "NURSE"]
    assert all(m.twilio_sid and m.twilio_sid.startswith("SM") and len(m.twilio_sid) == 34 for m in inbound)


def test_a_refused_simulator_reply_stays_in_view_through_polls_and_a_reload(
    browser: Any, outbox_server: str, rt: Any
) -> None:
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    # The simulator speaks as any patient: administrators only on this deployment (PostgreSQL, Redis).
    make_staff(rt, email="kim@example.org", role=StaffRole.ADMIN, team_id=team)
    # Stands in for any refusal: the database rejects this one row, so the webhook answers 503.
    with rt.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse_sim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.body = 'refused' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; "
            "END IF; "
            "RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_sim BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_sim()"
        )
    context, page = new_page(browser, outbox_server)
    try:
        sign_in(page, "kim@example.org", PASSWORD)
        page.goto(f"/simulator/?patient={patient_id}")
        page.get_by_label("Reply as Ana").fill("refused")
        page.get_by_role("button", name="Send", exact=True).click()
        error = page.get_by_role("alert").filter(has_text="HTTP 503")
        expect(error).to_be_visible()
        expect(page.get_by_label("Reply as Ana")).to_have_attribute("aria-describedby", "sim-error")
        # The thread's poll (every 3 s) leaves it alone, and so does a reload.
        with page.expect_response(lambda r: r.url.endswith(f"/simulator/{patient_id}/thread")):
            pass
        expect(error).to_be_visible()
        page.reload()
        expect(error).to_be_visible()
        page.get_by_role("button", name="Dismiss").click()
        expect(error).to_have_count(0)
    finally:
        context.close()
        with rt.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS refuse_sim ON messages")
            connection.exec_driver_sql("DROP FUNCTION IF EXISTS refuse_sim()")


def test_screenshots_of_the_queue_and_an_alert_on_demo_data(page: Any, rt: Any, tmp_path: Path) -> None:
    from pro_service.demo import seed

    screenshots = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    list(seed(rt))
    sign_in(page, "nurse@demo.local", "demo-password-123")
    expect(page.locator("tr.qrow-urgent").first).to_be_visible()
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "queue.png"))
    with rt.sessions() as session:
        alert_id = session.scalar(select(Alert.id).where(Alert.category == "spinal_cord_compression"))
    page.goto(f"/alerts/{alert_id}")
    expect(page.get_by_role("heading", name="Possible spinal cord compression")).to_be_visible()
    page.screenshot(path=str(screenshots / "alert.png"))
    for name in ("queue.png", "alert.png"):
        assert (screenshots / name).stat().st_size > 10_000
