"""Ownership and handover in a real browser: a nurse assigns an alert to herself, finds it under "My alerts",
and prints the handover (print media: no navigation, no buttons, one row per alert, the time printed)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.browser.support import PASSWORD, insert_alert, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration


def test_assign_to_me_then_print_the_handover(site: tuple[Any, Any]) -> None:
    page, rt = site  # on PostgreSQL and on the embedded SQLite default
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    make_staff(rt, email="lee@example.org", name="Nurse Lee", team_id=team)
    alert_id = insert_alert(rt, patient_id, ref="OWN123")
    insert_alert(rt, patient_id, category="hypercalcemia", urgency="same_day")
    sign_in(page, "kim@example.org", PASSWORD)

    page.goto(f"/alerts/{alert_id}")
    expect(page.locator("#alert-assignee")).to_have_text("Nobody yet")
    page.get_by_role("button", name="Assign to me").click()
    expect(page.get_by_text("Alert OWN123 assigned to you.")).to_be_visible()
    expect(page.locator("#alert-assignee")).to_have_text("Nurse Kim (you)")
    page.get_by_label("Add a note").fill("Called, no answer; trying again at 15:00")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Note added.")).to_be_visible()

    page.goto("/")
    page.get_by_label("Whose alerts").select_option("me")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("#queue-rows tr.qrow")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".q-assignee")).to_contain_text("Nurse Kim")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Handover").click()
    expect(page.get_by_role("heading", name="Handover", level=1)).to_be_visible()
    handover = page.locator("tr.handover-row")
    expect(handover).to_have_count(2)
    expect(handover.first).to_contain_text("Called, no answer; trying again at 15:00")
    expect(handover.first).to_contain_text("Nurse Kim")

    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.locator("#handover-stamp")).to_be_visible()
    expect(page.get_by_role("heading", name="Handover", level=1)).to_be_visible()
    expect(handover).to_have_count(2)
    # One row per alert: a row is never split across printed pages.
    assert handover.first.evaluate("r => getComputedStyle(r).breakInside") == "avoid"

    page.goto(f"/alerts/{alert_id}")  # the alert page prints without its forms and buttons
    expect(page.get_by_role("button", name="Acknowledge – I'm on it")).to_be_hidden()
    expect(page.locator("#messages")).to_be_hidden()
    expect(page.get_by_role("heading", name="Why it fired")).to_be_visible()
    page.emulate_media(media="screen")
    expect(page.get_by_role("button", name="Acknowledge – I'm on it")).to_be_visible()


def test_keyboard_shortcuts_on_the_alert_page_not_while_typing(site: tuple[Any, Any]) -> None:
    page, rt = site  # on PostgreSQL and on the embedded SQLite default
    team = make_team(rt)
    patient_id = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    alert_id = insert_alert(rt, patient_id, ref="KEY123")
    sign_in(page, "kim@example.org", PASSWORD)
    page.goto(f"/alerts/{alert_id}")
    expect(page.locator("#shortcuts")).to_contain_text("a acknowledge")

    page.keyboard.press("n")
    note = page.get_by_label("Add a note")
    expect(note).to_be_focused()
    page.keyboard.type("a and r typed here do nothing")  # inside a field: no shortcut fires
    expect(page.locator("#alert-status")).to_have_text("Open")
    expect(note).to_have_value("a and r typed here do nothing")

    page.locator("h1").click()  # out of the field
    page.keyboard.press("r")
    expect(page.locator("form.action-resolve input[name=outcome]").first).to_be_focused()
    page.locator("h1").click()
    page.keyboard.press("a")
    expect(page.get_by_text("Alert KEY123 acknowledged. Escalation stopped.")).to_be_visible()
    expect(page.locator("#alert-status")).to_have_text("Acknowledged")
