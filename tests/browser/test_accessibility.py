"""axe-core over every page a nurse or an administrator uses (issue 14, item 5), in a real Chromium, on
PostgreSQL and on the embedded SQLite default (the `site` fixture).

Each page is loaded signed in, with data on it (a patient, an open alert, a schedule, a shift), and axe's
WCAG 2.x A/AA rules must find nothing. A failure lists the rule, its impact and the elements."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from pro_service.models import StaffRole
from tests.browser.conftest import sign_in
from tests.browser.support import PASSWORD, insert_alert, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
# The innermost elements that stick out past the viewport's right edge: what to fix when reflow fails.
_WIDE_ELEMENTS = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > 321 && !Array.from(e.children).some(
    c => c.getBoundingClientRect().right > 321))
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + (e.className ? '.' + String(e.className).split(' ').join('.') : ''))"""
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}}


def _violations(page: Any, path: str) -> list[str]:
    page.goto(path)
    results = Axe().run(page, options=WCAG)
    return [
        f"{path}: {v['id']} ({v['impact']}): {', '.join(n['target'][0] for n in v['nodes'][:3])}"
        for v in results.response["violations"]
    ]


def test_every_staff_page_has_no_axe_violations(site: tuple[Any, Any]) -> None:
    page, rt = site
    team = make_team(rt)
    patient = make_patient(rt, team)
    alert = insert_alert(rt, patient)
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin", team_id=team)
    sign_in(page, "boss@example.org", PASSWORD)
    paths = [
        "/",
        "/?owner=me",
        "/handover",
        "/patients",
        f"/patients/{patient}",
        f"/patients/{patient}/profile",
        f"/alerts/{alert}",
        "/admin/",
        "/admin/patients/new",
        f"/admin/patients/{patient}/edit",
        f"/admin/patients/{patient}/schedules",
        f"/admin/patients/{patient}/ruleset",
        "/admin/teams",
        f"/admin/teams/{team}",
        "/admin/staff",
        "/admin/tokens",
        "/admin/config",
        "/admin/audit",
        "/admin/escalation",
        "/account/sessions",
        "/account/password",
        "/account/mfa",
    ]
    found = [problem for path in paths for problem in _violations(page, path)]
    assert found == [], "\n".join(found)


def test_the_nurse_pages_reflow_at_320_css_pixels(site: tuple[Any, Any]) -> None:
    page, rt = site
    # WCAG 1.4.10: at 320 px wide (400 % zoom of a 1280 px screen) nothing scrolls sideways.
    team = make_team(rt)
    patient = make_patient(rt, team)
    alert = insert_alert(rt, patient)
    make_staff(rt, email="kim@example.org", team_id=team)
    sign_in(page, "kim@example.org", PASSWORD)
    page.set_viewport_size({"width": 320, "height": 640})
    wide = []
    for path in (
        "/",
        "/handover",
        "/patients",
        f"/patients/{patient}",
        f"/alerts/{alert}",
        "/account/sessions",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 320:
            culprits = page.evaluate(_WIDE_ELEMENTS)
            wide.append(f"{path}: {width}px ({', '.join(culprits[:4])})")
    assert wide == []


def test_a_nurse_triages_an_alert_with_the_keyboard_alone(site: tuple[Any, Any]) -> None:
    page, rt = site
    import re

    from playwright.sync_api import expect

    from pro_service.models import Alert, AlertStatus

    team = make_team(rt)
    patient = make_patient(rt, team)
    alert = insert_alert(rt, patient)
    make_staff(rt, email="kim@example.org", team_id=team)
    sign_in(page, "kim@example.org", PASSWORD)
    page.goto("/")
    for _ in range(60):  # Tab through the queue to the alert's link
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == f"/alerts/{alert}":
            break
    else:
        pytest.fail("the alert's link is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/alerts/{alert}$"))
    # The shortcuts' script is deferred: a key pressed before the page has loaded would go nowhere.
    page.wait_for_load_state("load")

    page.keyboard.press("a")  # acknowledge
    expect(page.get_by_text("Acknowledged").first).to_be_visible()
    page.wait_for_load_state("load")
    page.keyboard.press("n")  # to the note
    page.keyboard.type("Called: advised to come in now")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Called: advised to come in now").first).to_be_visible()
    page.wait_for_load_state("load")

    page.keyboard.press("r")  # to the resolve form: the first outcome
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # to the RAG grades
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # the optional note
    page.keyboard.press("Tab")  # the button
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(rf"/alerts/{alert}$"))
    with rt.sessions() as session:
        row = session.get(Alert, alert)
        assert row is not None and row.status == AlertStatus.RESOLVED
        assert row.outcome is not None and row.outcome_rag is not None
