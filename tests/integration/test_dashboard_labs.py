"""Labs where nurses look, on the real database: the latest values on the alert and patient pages, lab
evidence in words, a withdrawn result struck through with a banner on the alert it raised, and the calcium
trend beside the pain trend. Results go in through services.labs.record_result and alerts are raised from
the pure rules' findings by triage, the path a result arriving from the hospital takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from alerts.labs import ADJUSTED_CALCIUM, ALBUMIN, ALKALINE_PHOSPHATASE, CREATININE, TOTAL_CALCIUM
from alerts.rules import AnswerView, History, evaluate, evaluate_labs
from pro_service.models import AuditLog, LabSource, LabStatus
from pro_service.services import labs, triage
from tests.browser.support import login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]
NOW = datetime(2025, 12, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST)
SAMPLE = datetime(2025, 12, 2, 19, 5, tzinfo=UTC)  # 14:05 EST
LAB_IDS = "urn:oid:2.16.840.1.113883.3.9999.4.1"


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    rt.clock = lambda: NOW  # reset to the real clock by the suite's per-test clean-up
    team = make_team(rt)
    return {
        "team": team,
        "patient": make_patient(rt, team, mrn="MRN-LAB-9"),
        "nurse": make_staff(rt, email="kim@example.org", team_id=team),
    }


def record(
    rt: Any,
    patient_id: int,
    code: str,
    value: float | None,
    unit: str | None,
    taken: datetime,
    *,
    ident: str,
    status: str = "final",
    reference: str | None = None,
    flag: str | None = None,
) -> int:
    """One result through the service, committed; the id of the row stored."""
    with rt.unit_of_work() as session:
        outcome = labs.record_result(
            session,
            rt,
            labs.IncomingResult(
                source=LabSource.FHIR,
                source_key=f"{LAB_IDS}|{ident}",
                patient=labs.PatientRef(patient_id=patient_id),
                code=code,
                status=LabStatus(status),
                value=value,
                unit=unit,
                effective_at=taken,
                reference_range=reference,
                interpretation=flag,
            ),
        )
        return int(outcome.result.id)


def raise_lab_alerts(rt: Any, patient_id: int) -> dict[str, int]:
    """What the service does when a result arrives: the rules that read only labs, then triage."""
    with rt.unit_of_work() as session:
        now = rt.now()
        views = labs.lab_views(session, patient_id, since=now - timedelta(days=rt.ruleset.lab_lookback_days))
        found = {}
        for finding in evaluate_labs(views, History(), rt.ruleset, now=now):
            alert = triage.upsert_alert(session, rt, patient_id, finding)
            assert alert is not None
            found[finding.category] = alert.id
        return found


def text_of(html: str) -> str:
    """The page's words, tags removed and spaces collapsed (what a reader sees, roughly)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace(" ,", ",").replace(" )", ")")


def section(html: str, section_id: str) -> str:
    found = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, re.S)
    assert found, section_id
    return found.group(0)


def lab_row(html: str, key: str) -> str:
    found = re.search(rf'<tr class="lab-row[^"]*" data-lab="{key}">.*?</tr>', html, re.S)
    assert found, key
    return text_of(found.group(0))


def test_the_alert_page_shows_the_latest_labs_and_the_lab_evidence_in_words(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    patient = ward["patient"]
    record(
        rt,
        patient,
        ADJUSTED_CALCIUM,
        3.2,
        "mmol/L",
        SAMPLE,
        ident="CA1",
        reference="2.2-2.6 mmol/L",
        flag="H",
    )
    record(rt, patient, ALBUMIN, 38, "g/L", SAMPLE, ident="ALB1", reference="35-50 g/L")
    record(rt, patient, ALKALINE_PHOSPHATASE, 100, "U/L", SAMPLE - timedelta(days=62), ident="ALP0")
    record(rt, patient, ALKALINE_PHOSPHATASE, 140, "U/L", SAMPLE, ident="ALP1", reference="30-130 U/L")
    record(rt, patient, CREATININE, 1.0, "mg/dL", SAMPLE, ident="CR1", reference="0.6-1.1 mg/dL")
    alerts = raise_lab_alerts(rt, patient)
    assert set(alerts) == {"hypercalcemia", "bone_marker_rise"}
    login(client, "kim@example.org")

    page = client.get(f"/alerts/{alerts['hypercalcemia']}").get_data(as_text=True)
    words = text_of(page)
    assert "Adjusted calcium 3.20 mmol/L (ref 2.2–2.6), sample 2 Dec 14:05 EST" in words
    assert "'result_id'" not in page and "{'code'" not in page  # never the raw dict
    assert 'id="withdrawn-banner"' not in page
    labs_card = section(page, "labs")
    assert "<h2" in labs_card and ">Labs</h2>" in labs_card
    calcium_row = lab_row(labs_card, "calcium")
    for expected in (
        "Adjusted calcium",
        "3.20 mmol/L",
        "high",
        "fired this alert",
        "2.2–2.6",
        "2 Dec 14:05 EST",
    ):
        assert expected in calcium_row, expected
    assert "19 h 55 min ago Final" in calcium_row
    assert "38 g/L" in lab_row(labs_card, "albumin") and "35–50" in lab_row(labs_card, "albumin")
    alp_row = lab_row(labs_card, "alp")
    assert "Alkaline phosphatase" in alp_row and "140 U/L" in alp_row and "30–130" in alp_row
    creatinine_row = lab_row(labs_card, "creatinine")
    assert "88.4 µmol/L" in creatinine_row and "reported as 1 mg/dL" in creatinine_row
    assert "0.6–1.1 mg/dL" in creatinine_row  # the lab's range keeps the lab's unit

    bone = client.get(f"/alerts/{alerts['bone_marker_rise']}").get_data(as_text=True)
    words = text_of(bone)
    assert "Rising alkaline phosphatase (bone marker)" in words
    assert "Lowest earlier result: Alkaline phosphatase 100 U/L, sample 1 Oct 15:05 EDT" in words
    assert (
        "Latest result: Alkaline phosphatase 140 U/L (ref 30–130), sample 2 Dec 14:05 EST, "
        "40% above the lowest earlier result" in words
    )

    with rt.sessions() as session:
        views = session.scalars(
            select(AuditLog).where(AuditLog.patient_id == patient).order_by(AuditLog.id)
        ).all()
    assert [(r.action, r.subject_id) for r in views] == [
        ("view_alert", str(alerts["hypercalcemia"])),
        ("view_alert", str(alerts["bone_marker_rise"])),
    ]


def test_a_derived_calcium_says_so_and_a_withdrawn_one_is_struck_through_with_a_banner(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    patient = ward["patient"]
    record(rt, patient, ADJUSTED_CALCIUM, 2.4, "mmol/L", SAMPLE - timedelta(days=30), ident="OLD")
    record(rt, patient, TOTAL_CALCIUM, 2.9, "mmol/L", SAMPLE, ident="TCA", reference="2.1-2.55 mmol/L")
    record(rt, patient, ALBUMIN, 30, "g/L", SAMPLE, ident="ALB")
    alert_id = raise_lab_alerts(rt, patient)["hypercalcemia"]  # 2.9 + 0.02 × (40 − 30) = 3.1
    login(client, "kim@example.org")

    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    words = text_of(page)
    assert (
        "Adjusted calcium 3.10 mmol/L, sample 2 Dec 14:05 EST (derived from total calcium and albumin)"
        in words
    )
    calcium_row = lab_row(section(page, "labs"), "calcium")
    assert "Adjusted calcium Derived from total calcium and albumin 3.10 mmol/L" in calcium_row
    assert 'id="withdrawn-banner"' not in page

    # The lab withdraws the total calcium: the adjusted value computed from it is withdrawn with it.
    record(rt, patient, TOTAL_CALCIUM, None, None, SAMPLE, ident="TCA", status="entered-in-error")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    banner = re.search(r'<p[^>]*id="withdrawn-banner"[^>]*>(.*?)</p>', page, re.S)
    assert banner and "This alert was raised on a result later withdrawn by the lab" in banner.group(1)
    evidence = re.search(r'<li class="evidence-item evidence-lab is-withdrawn">(.*?)</li>', page, re.S)
    assert evidence, "the lab evidence is marked withdrawn"
    assert "<del>Adjusted calcium 3.10 mmol/L" in evidence.group(1)
    assert "Withdrawn by the lab (entered in error) Wed 3 Dec 10:00 EST" in text_of(evidence.group(1))
    calcium_row = lab_row(section(page, "labs"), "calcium")
    assert '<del class="lab-value">3.10 mmol/L</del>' in re.sub(r"\s+", " ", page)
    assert "3.10 mmol/L withdrawn" in calcium_row and "Withdrawn" in calcium_row
    assert "Latest valid result: 2.40 mmol/L, sample 2 Nov 14:05 EST" in calcium_row
    assert "fired this alert" in calcium_row  # the withdrawn version is the one the alert names


def test_an_amended_result_shows_its_new_value_beside_the_evidence(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    patient = ward["patient"]
    record(rt, patient, ADJUSTED_CALCIUM, 2.8, "mmol/L", SAMPLE, ident="CA", reference="2.2-2.6 mmol/L")
    alert_id = raise_lab_alerts(rt, patient)["hypercalcemia"]
    record(rt, patient, ADJUSTED_CALCIUM, 2.5, "mmol/L", SAMPLE, ident="CA", status="amended")
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    words = text_of(page)
    assert "Adjusted calcium 2.80 mmol/L (ref 2.2–2.6), sample 2 Dec 14:05 EST" in words
    assert "Now Amended: 2.50 mmol/L" in words and 'id="withdrawn-banner"' not in page
    calcium_row = lab_row(section(page, "labs"), "calcium")
    assert "2.50 mmol/L" in calcium_row and "Amended" in calcium_row
    assert "fired this alert" not in calcium_row  # the amended version is not what fired it


def test_no_recent_calcium_reads_as_a_sentence_with_the_last_result(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    patient = ward["patient"]
    record(
        rt, patient, ADJUSTED_CALCIUM, 2.45, "mmol/L", datetime(2025, 10, 24, 13, 10, tzinfo=UTC), ident="C"
    )
    with rt.unit_of_work() as session:
        now = rt.now()
        history = History(
            labs=tuple(labs.lab_views(session, patient, since=now - timedelta(days=90))), now=now
        )
        thirsty = AnswerView("calcium_sx", "answered", [4], "4", "Any of these? 4 very thirsty")
        (finding,) = [
            f
            for f in evaluate({"calcium_sx": thirsty}, history, rt.ruleset, complete=True)
            if f.category == "hypercalcemia"
        ]
        alert = triage.upsert_alert(session, rt, patient, finding)
        assert alert is not None
        alert_id = alert.id
    login(client, "kim@example.org")
    words = text_of(client.get(f"/alerts/{alert_id}").get_data(as_text=True))
    assert (
        "No calcium result in the last 14 days "
        "(last: Adjusted calcium 2.45 mmol/L, sample 24 Oct 09:10 EDT)" in words
    )
    assert "Read as 4 (very thirsty or peeing a lot)" in words  # the answer beside it, as before


def test_the_patient_page_has_the_labs_and_a_calcium_trend_beside_the_pain_trend(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    patient = ward["patient"]
    for days, value, ident in (
        (200, 2.3, "A"),
        (120, 2.45, "B"),
        (60, 2.7, "C"),
        (20, 3.25, "D"),
        (1, 2.55, "E"),
    ):
        record(rt, patient, ADJUSTED_CALCIUM, value, "mmol/L", SAMPLE - timedelta(days=days), ident=ident)
    record(rt, patient, ADJUSTED_CALCIUM, 2.6, "mmol/L", SAMPLE, ident="F", reference="2.2-2.6 mmol/L")
    record(
        rt,
        patient,
        ADJUSTED_CALCIUM,
        None,
        None,
        SAMPLE - timedelta(days=1),
        ident="E",
        status="entered-in-error",
    )
    record(rt, patient, ADJUSTED_CALCIUM, 2.65, "mmol/L", SAMPLE, ident="F", status="corrected")
    login(client, "kim@example.org")

    page = client.get(f"/patients/{patient}").get_data(as_text=True)
    pair = re.search(
        r'<div class="span-2 trend-pair">(.*?)</div>\s*<section class="card" aria-labelledby="p-checkins"',
        page,
        re.S,
    )
    assert pair, "the pain trend and the calcium trend sit together"
    assert "Last 12 weeks" in pair.group(1) and "Adjusted calcium, last 180 days" in pair.group(1)
    calcium = section(page, "calcium")
    assert 'role="img"' in calcium and 'aria-labelledby="calcium-title calcium-desc"' in calcium
    assert "3.0 urgent" in calcium and "2.6 upper limit" in calcium
    svg = re.search(r'<svg class="trend-svg calcium-svg".*?</svg>', calcium, re.S)
    assert svg
    dots = re.findall(r'<circle class="lab-dot([^"]*)" cx', svg.group(0))
    assert dots == ["", "", " is-high", ""]  # 200 days ago and the withdrawn one are not plotted
    assert "latest 2 Dec 2025: adjusted calcium 2.65 mmol/L" in calcium
    assert "1 withdrawn by the lab" in calcium
    table = re.search(r"<details class=\"trend-table\">.*?</details>", calcium, re.S)
    assert table
    rows = [text_of(r) for r in re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)][1:]
    assert rows[0].strip().startswith("2 Dec 14:05 EST 2.65 2.6 to 3.0: raised; corrected")
    assert "2.55 withdrawn withdrawn by the lab (entered in error)" in rows[1]
    assert "<del>2.55</del> withdrawn" in table.group(0)
    assert "3.25 above 3.0: urgent" in rows[2]
    assert len(rows) == 5
    calcium_row = lab_row(section(page, "labs"), "calcium")
    assert "2.65 mmol/L" in calcium_row and "Corrected" in calcium_row
    assert "No result received" in lab_row(section(page, "labs"), "albumin")

    with rt.sessions() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.patient_id == patient)).all()
    assert actions == ["view_patient"]


def test_a_patient_without_labs_says_so(client: Any, rt: Any, ward: dict[str, int]) -> None:
    login(client, "kim@example.org")
    page = client.get(f"/patients/{ward['patient']}").get_data(as_text=True)
    assert "No calcium, albumin, ALP or creatinine results received for this patient." in page
    assert "No adjusted calcium results in the last 180 days." in page
