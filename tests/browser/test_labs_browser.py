"""Labs on the alert page in a real browser: an alert raised on a calcium result, the Labs section and the
evidence in words, then the lab withdrawing the result; the calcium trend on the patient record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from alerts.labs import ADJUSTED_CALCIUM, ALBUMIN, ALKALINE_PHOSPHATASE, CREATININE
from tests.browser.conftest import sign_in
from tests.browser.support import PASSWORD, make_staff
from tests.integration.helpers import make_patient, make_team
from tests.integration.test_dashboard_labs import NOW, SAMPLE, raise_lab_alerts, record

pytestmark = pytest.mark.integration


def test_a_nurse_reads_the_labs_on_an_alert_raised_on_a_calcium_result(
    site: tuple[Any, Any], tmp_path: Path
) -> None:
    page, rt = site  # on PostgreSQL and on the embedded SQLite default
    rt.clock = lambda: NOW  # the live server shares this runtime; reset after the test
    team = make_team(rt)
    patient = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    record(rt, patient, ADJUSTED_CALCIUM, 2.45, "mmol/L", SAMPLE.replace(month=10), ident="OLD")
    record(
        rt, patient, ADJUSTED_CALCIUM, 3.2, "mmol/L", SAMPLE, ident="CA", reference="2.2-2.6 mmol/L", flag="H"
    )
    record(rt, patient, ALBUMIN, 38, "g/L", SAMPLE, ident="ALB", reference="35-50 g/L")
    record(rt, patient, ALKALINE_PHOSPHATASE, 140, "U/L", SAMPLE, ident="ALP", reference="30-130 U/L")
    record(rt, patient, CREATININE, 1.0, "mg/dL", SAMPLE, ident="CR", reference="0.6-1.1 mg/dL")
    alert_id = raise_lab_alerts(rt, patient)["hypercalcemia"]

    sign_in(page, "kim@example.org", PASSWORD)
    page.goto(f"/alerts/{alert_id}")
    expect(page.get_by_role("heading", name="Possible high calcium (hypercalcaemia)")).to_be_visible()
    evidence = page.locator(".evidence-lab")
    expect(evidence).to_contain_text("Adjusted calcium 3.20 mmol/L (ref 2.2–2.6), sample 2 Dec 14:05 EST")
    labs = page.get_by_role("region", name="Labs")
    expect(labs.get_by_role("heading", name="Labs")).to_be_visible()
    # The table is named by its caption; each row by the test's name, in words.
    table = labs.get_by_role("table", name="Latest lab results; sample times in the care team's time")
    calcium = table.get_by_role("row", name="Adjusted calcium")
    expect(calcium).to_contain_text("3.20 mmol/L")
    expect(calcium).to_contain_text("fired this alert")
    expect(calcium).to_contain_text("2 Dec 14:05 EST")
    expect(table.get_by_role("row", name="Albumin")).to_contain_text("38 g/L")
    expect(table.get_by_role("row", name="Alkaline phosphatase")).to_contain_text("140 U/L")
    expect(table.get_by_role("row", name="Creatinine")).to_contain_text("88.4 µmol/L")
    page.screenshot(path=str(tmp_path / "alert-labs.png"), full_page=True)

    # The lab withdraws the result (entered in error): the page says so where the nurse is looking.
    record(rt, patient, ADJUSTED_CALCIUM, None, None, SAMPLE, ident="CA", status="entered-in-error")
    page.reload()
    expect(page.get_by_role("alert").filter(has_text="later withdrawn by the lab")).to_be_visible()
    expect(evidence.locator("del")).to_have_text(
        "Adjusted calcium 3.20 mmol/L (ref 2.2–2.6), sample 2 Dec 14:05 EST"
    )
    expect(evidence).to_contain_text("Withdrawn by the lab (entered in error)")
    expect(calcium).to_contain_text("withdrawn")
    expect(calcium.locator("del")).to_have_text("3.20 mmol/L")
    expect(calcium).to_contain_text("fired this alert")
    expect(calcium).to_contain_text("2.2–2.6")  # the withdrawn version's range
    expect(calcium).to_contain_text("Latest valid result: 2.45 mmol/L, sample 2 Oct 15:05 EDT")
    page.screenshot(path=str(tmp_path / "alert-labs-withdrawn.png"), full_page=True)

    page.get_by_role("link", name="Calcium trend on the patient record").click()
    chart = page.get_by_role("img", name="Adjusted calcium, last 180 days")
    expect(chart).to_be_visible()
    page.get_by_role("region", name="Adjusted calcium, last 180 days").get_by_text("Show as a table").click()
    expect(page.get_by_role("table", name="Adjusted calcium results, newest first")).to_contain_text(
        "withdrawn by the lab (entered in error)"
    )
    page.screenshot(path=str(tmp_path / "patient-calcium.png"), full_page=True)
    for name in ("alert-labs.png", "alert-labs-withdrawn.png", "patient-calcium.png"):
        assert (tmp_path / name).stat().st_size > 10_000
