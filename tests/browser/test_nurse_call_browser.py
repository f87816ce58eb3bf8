"""The nurse's call, in a real browser: the alert page's "For the call" section (clinical context, carer,
acute oncology number, unanswered red flags, the safety text, the call script), then resolving with a RAG
grade, which the browser will not submit without."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from pro_service.models import (
    Alert,
    Answer,
    AnswerStatus,
    CareTeam,
    CheckIn,
    CheckInStatus,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
)
from pro_service.services import clinical_profile
from tests.browser.conftest import sign_in
from tests.browser.support import PASSWORD, insert_alert, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration


def _alert_with_context(rt: Any) -> int:
    team = make_team(rt)
    patient = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    alert_id = insert_alert(rt, patient)
    with rt.unit_of_work() as session:
        clinical_profile.update_profile(
            session,
            patient,
            {
                "bone_agent": "Zoledronic acid",
                "spinal_levels": "T10",
                "ceiling_of_care": "Ward-based care",
                "carer_name": "Maria",
                "carer_relation": "wife",
                "carer_phone": "+15551230088",
            },
            actor="system",
            staff_id=None,
            now=rt.now(),
        )
        session.get(CareTeam, team).acute_oncology_phone = "+15550100199"  # type: ignore[union-attr]
        check_in = CheckIn(
            patient_id=patient,
            instrument_code="sre-weekly",
            instrument_version=1,
            status=CheckInStatus.EXPIRED,
        )
        session.add(check_in)
        session.flush()
        session.add(
            Answer(check_in_id=check_in.id, item_code="bladder_bowel", status=AnswerStatus.UNREADABLE)
        )
        alert = session.get(Alert, alert_id)
        assert alert is not None
        alert.check_in_id = check_in.id
        session.add(
            Message(
                direction=Direction.OUTBOUND,
                kind=MessageKind.SAFETY,
                status=MessageStatus.SENT,
                patient_id=patient,
                alert_id=alert_id,
                from_number="+15005550006",
                to_number="+15551230001",
                body="safety",
                dedup_key=f"safety:{alert_id}:0",
            )
        )
    return alert_id


def test_the_call_section_then_resolving_with_a_rag_grade(site: tuple[Any, Any]) -> None:
    page, rt = site  # on PostgreSQL and on the embedded SQLite default
    alert_id = _alert_with_context(rt)
    sign_in(page, "kim@example.org", PASSWORD)
    page.goto(f"/alerts/{alert_id}")

    call = page.locator("#for-the-call")
    expect(call.get_by_role("heading", name="For the call")).to_be_visible()
    expect(call).to_contain_text("Zoledronic acid")
    expect(call).to_contain_text("T10")
    expect(call).to_contain_text("Ward-based care")
    expect(call.locator("#call-carer")).to_contain_text("Maria (wife)")
    expect(call.locator('#call-carer a[href="tel:+15551230088"]')).to_be_visible()
    expect(call.locator('#call-acute-oncology a[href="tel:+15550100199"]')).to_be_visible()
    expect(call.locator("#call-safety-text")).to_contain_text("Sent, delivery not confirmed")
    unanswered = call.locator("#call-unanswered li")
    expect(unanswered).to_have_count(3)  # bladder unreadable; neuro and the fracture question never answered
    expect(unanswered.filter(has_text="unreadable reply")).to_have_count(1)
    expect(call.locator("#call-script li")).to_have_count(5)

    resolve = page.locator("form.action-resolve")
    resolve.get_by_label("Advised emergency care").check()
    resolve.get_by_role("button", name="Resolve alert").click()
    # The RAG grade is required: the browser keeps the form on the page.
    expect(page).to_have_url(f"{page.url.split('/alerts/')[0]}/alerts/{alert_id}")
    with rt.sessions() as session:
        assert session.get(Alert, alert_id).outcome_rag is None  # type: ignore[union-attr]

    resolve.get_by_label("Red: needs assessment now").check()
    resolve.get_by_role("button", name="Resolve alert").click()
    expect(page.get_by_role("heading", name="Triage queue")).to_be_visible()
    expect(page.get_by_text("resolved: Advised emergency care (red)")).to_be_visible()
    page.goto(f"/alerts/{alert_id}")
    expect(page.locator("#alert-rag")).to_have_text("Red: needs assessment now")
