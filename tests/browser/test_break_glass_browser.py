"""Break-glass in a real browser: another team's patient is explained, not shown; a reason opens it, with
a visible banner, and is audited (services/access.py; the rules: tests/integration/test_scoping.py)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from pro_service.models import AuditLog
from tests.browser.conftest import sign_in
from tests.browser.support import PASSWORD, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration


def test_a_nurse_breaks_the_glass_with_a_reason_and_sees_the_banner(site: tuple[Any, Any]) -> None:
    page, rt = site  # on PostgreSQL and on the embedded SQLite default
    own_team = make_team(rt)
    other_team = make_team(rt, name="Palliative care", timezone="America/Chicago")
    patient = make_patient(rt, other_team, mrn="MRN-B1")
    make_staff(rt, email="kim@example.org", team_id=own_team)
    sign_in(page, "kim@example.org", PASSWORD)

    page.goto(f"/patients/{patient}")
    expect(page.get_by_role("heading", name="This patient is outside your care teams")).to_be_visible()
    expect(page.get_by_text("MRN-B1")).to_have_count(0)
    reason = page.get_by_label("Reason (at least 10 characters)")
    reason.fill("because")
    page.evaluate("document.querySelector('form.stack').noValidate = true")  # let the server refuse it
    page.get_by_role("button", name="Break the glass and open the record").click()
    expect(page.get_by_text("Give a reason of at least 10 characters.")).to_be_visible()

    page.get_by_label("Reason (at least 10 characters)").fill(
        "Patient rang the nurse line; covering Palliative"
    )
    page.get_by_role("button", name="Break the glass and open the record").click()
    expect(page.locator("#break-glass-banner")).to_be_visible()
    expect(page.locator("#break-glass-banner")).to_contain_text("Break-glass access.")
    expect(page.get_by_text("MRN-B1")).to_be_visible()
    with rt.sessions() as session:
        actions = [
            (row.action, row.detail.get("break_glass"))
            for row in session.scalars(
                select(AuditLog).where(AuditLog.patient_id == patient).order_by(AuditLog.id)
            )
        ]
    assert ("break_glass", None) in actions and ("view_patient", True) in actions
