"""The rules backtest on PostgreSQL (issue 16): `pro-service rules backtest` and the admin configuration page
replay a seeded history through a candidate ruleset, and every number of the summary is checked.

The candidate is a draft written from sre-v2 (config/rules/sre-v2.yaml) with one change per kind of
difference, each met by one seeded check-in or lab result:

    severe-pain            pain 7+ → 6+                 C1 (pain 6) and C3 (pain 6): severe_pain "more"
    new-bone-pain          routine → same_day           C2 (new pain): new_bone_pain "higher"
    worsening-pain         removed                      C3 (3 → 6): worsening_pain "fewer"
    spinal-pain-red-flags  same_day → routine           C4 (back pain at rest): spinal_metastasis_pain "lower"
    hypercalcemia-lab-2.6-to-3  same_day → urgent       L1 (adjusted calcium 2.8 at arrival): "higher"
    unchanged                                           C6 (weakness, expired), C8 (confused): "same"
    C9 asked questionnaire v2: not comparable. C0 closed 100 days ago: outside the window.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import update

from pro_service.cli import main
from pro_service.models import (
    Alert,
    Answer,
    AnswerStatus,
    AuditLog,
    CheckIn,
    CheckInStatus,
    LabSource,
    LabStatus,
    Patient,
    StaffRole,
)
from pro_service.services.labs import IncomingResult, PatientRef, record_results
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_team

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEFAULTS: dict[str, Any] = {
    "pain_new": False,
    "pain_worst": 0,
    "pain_site": [],
    "pain_at_rest": False,
    "sudden_immobile": False,
    "neuro": False,
    "bladder_bowel": False,
    "calcium_sx": [],
}
NO_ANSWERS: dict[str, Any] = dict.fromkeys(DEFAULTS)  # an expired check-in: every item missing


def _candidate(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config" / "rules" / "sre-v2.yaml").read_text())
    data["version"] = 99
    rules = []
    for rule in data["rules"]:
        match rule["id"]:
            case "severe-pain":
                rule["when"] = {"item": "pain_worst", "gte": 6}
            case "new-bone-pain":
                rule["urgency"] = "same_day"
            case "worsening-pain":
                continue
            case "spinal-pain-red-flags":
                rule["urgency"] = "routine"
            case "hypercalcemia-lab-2.6-to-3":
                rule["urgency"] = "urgent"
        rules.append(rule)
    data["rules"] = rules
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _check_in(
    rt: Any,
    patient_id: int,
    days_ago: float,
    answers: dict[str, Any],
    *,
    status: CheckInStatus = CheckInStatus.COMPLETED,
    instrument_version: int = 1,
) -> int:
    """A closed check-in as the conversation leaves it: an answer per item (None: missing)."""
    closed = datetime.now(UTC) - timedelta(days=days_ago)
    with rt.unit_of_work() as session:
        check_in = CheckIn(
            patient_id=patient_id,
            instrument_code="sre-weekly",
            instrument_version=instrument_version,
            status=status,
            started_at=closed - timedelta(hours=1),
            closed_at=closed,
            scored_at=closed,
        )
        session.add(check_in)
        session.flush()
        for code, value in answers.items():
            session.add(
                Answer(
                    check_in_id=check_in.id,
                    item_code=code,
                    status=AnswerStatus.MISSING if value is None else AnswerStatus.ANSWERED,
                    value=value,
                    raw_text=None if value is None else str(value),
                    question=code,
                    answered_at=closed,
                )
            )
        return int(check_in.id)


def _calcium(
    rt: Any, patient_id: int, value: float, *, taken_days_ago: float, received_days_ago: float
) -> None:
    now = datetime.now(UTC)
    rt.clock = lambda: now - timedelta(days=received_days_ago)  # received_at; reset after each test
    try:
        with rt.unit_of_work() as session:
            record_results(
                session,
                rt,
                [
                    IncomingResult(
                        source=LabSource.FHIR,
                        source_key="lab-1",
                        patient=PatientRef(patient_id=patient_id),
                        code="29265-6",
                        status=LabStatus.FINAL,
                        value=value,
                        unit="mmol/L",
                        effective_at=now - timedelta(days=taken_days_ago),
                    )
                ],
            )
    finally:
        rt.clock = lambda: datetime.now(UTC)


@pytest.fixture
def history(rt: Any) -> dict[str, int]:
    team = make_team(rt)
    p1 = make_patient(rt, team, phone="+15551230001", mrn="MRN001")
    p2 = make_patient(rt, team, phone="+15551230002", mrn="MRN002")
    with rt.unit_of_work() as session:  # P1 on sre v1, P2 on sre v2: per-patient references
        session.execute(update(Patient).where(Patient.id == p1).values(ruleset_version=1))
        session.execute(update(Patient).where(Patient.id == p2).values(ruleset_version=2))
    _check_in(rt, p1, 100, DEFAULTS | {"pain_worst": 9, "pain_new": True})  # C0: outside a 90-day window
    _check_in(rt, p1, 60, DEFAULTS | {"pain_worst": 6})  # C1
    _check_in(rt, p1, 50, DEFAULTS | {"pain_worst": 3, "pain_new": True})  # C2
    _check_in(rt, p1, 40, DEFAULTS | {"pain_worst": 6})  # C3
    _check_in(rt, p1, 30, DEFAULTS | {"pain_worst": 2, "pain_site": [1], "pain_at_rest": True})  # C4
    _check_in(rt, p2, 20, NO_ANSWERS | {"neuro": True}, status=CheckInStatus.EXPIRED)  # C6
    # C8: confused; a calcium taken the day before arrives 5 days after the check-in closed (L1), so the
    # replay of C8 must not see it (hypercalcemia-confused-with-calcium-result cannot fire).
    _check_in(rt, p2, 10, DEFAULTS | {"calcium_sx": [5]})
    _calcium(rt, p2, 2.8, taken_days_ago=11, received_days_ago=5)
    _check_in(rt, p2, 3, DEFAULTS | {"neuro": True}, instrument_version=2)  # C9: not comparable
    insert_alert(rt, p2, category="spinal_cord_compression", urgency="urgent", opened_minutes_ago=60)
    return {"p1": p1, "p2": p2}


def _backtest(settings_env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, ["rules", "backtest", *args], env=settings_env, catch_exceptions=False)


def test_cli_compares_a_draft_ruleset_with_a_named_one(
    settings_env: dict[str, str], history: dict[str, int], tmp_path: Path
) -> None:
    result = _backtest(
        settings_env, "--file", str(_candidate(tmp_path)), "--against", "sre-v2", "--since", "90d", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    summary = report["summary"]
    assert (report["check_ins"], report["lab_results"], report["truncated"]) == (7, 1, False)
    assert report["reference"] == "sre-v2" and report["reference_rulesets"] == {"sre-v2": 6}
    assert report["candidate"].startswith("sre-v99 (") and report["candidate"].endswith("draft.yaml)")
    assert (summary["replayed"], summary["changed"], summary["not_comparable_total"]) == (7, 5, 1)
    assert summary["not_comparable"] == {
        "asked sre-weekly v2; the candidate sre-v99 is written for sre-weekly v1": 1
    }
    rows = {
        r["category"]: (
            r["reference"],
            r["candidate"],
            r["more"],
            r["fewer"],
            r["higher"],
            r["lower"],
            r["same"],
        )
        for r in summary["categories"]
        if r["reference"] or r["candidate"]
    }
    assert rows == {
        "severe_pain": (0, 2, 2, 0, 0, 0, 0),
        "new_bone_pain": (1, 1, 0, 0, 1, 0, 0),
        "worsening_pain": (1, 0, 0, 1, 0, 0, 0),
        "spinal_metastasis_pain": (1, 1, 0, 0, 0, 1, 0),
        "spinal_cord_compression": (1, 1, 0, 0, 0, 0, 1),
        "hypercalcemia": (2, 2, 0, 0, 1, 0, 1),
    }
    total = summary["total"]
    assert (total["reference"], total["candidate"], total["more"], total["fewer"]) == (6, 7, 2, 1)
    assert (total["higher"], total["lower"], total["same"]) == (2, 1, 2)
    assert total["reference_by_urgency"] == {"urgent": 2, "same_day": 2, "routine": 2}
    assert total["candidate_by_urgency"] == {"urgent": 3, "same_day": 3, "routine": 1}
    rules = {
        r["rule_id"]: (r["reference"], r["candidate"], r["more"], r["fewer"], r["change"])
        for r in summary["rules"]
    }
    assert rules["severe-pain"] == (0, 2, 2, 0, "condition changed")
    assert rules["new-bone-pain"] == (1, 1, 0, 0, "urgency routine → same_day")
    assert rules["worsening-pain"] == (1, 0, 0, 1, "removed")
    assert rules["spinal-pain-red-flags"] == (1, 1, 0, 0, "urgency same_day → routine")
    assert rules["hypercalcemia-lab-2.6-to-3"] == (1, 1, 0, 0, "urgency same_day → urgent")
    assert rules["hypercalcemia-confused-or-drowsy"] == (1, 1, 0, 0, "")
    assert rules["hypercalcemia-check-calcium"] == (1, 1, 0, 0, "")  # the late result was not known
    assert rules["hypercalcemia-confused-with-calcium-result"] == (0, 0, 0, 0, "")
    assert report["stored_alerts"] == {"spinal_cord_compression": {"urgent": 1}}


def test_cli_prints_tables_and_compares_with_each_patients_own_ruleset(
    settings_env: dict[str, str], history: dict[str, int]
) -> None:
    # Candidate sre-v1: the same as P1's own; for P2 (on sre v2) it has no lab rules.
    result = _backtest(settings_env, "--ruleset", "sre-v1", "--since", "12w")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "reference: each patient's own ruleset: sre-v1 (4), sre-v2 (2)" in out
    assert "closed check-ins: 7" in out and "replayed: 7" in out and "with a difference: 1" in out
    assert "not comparable: 1" in out and "asked sre-weekly v2; the candidate sre-v1" in out
    line = next(line for line in out.splitlines() if line.startswith("hypercalcemia "))
    # reference 2 (C8, L1), candidate 1 (C8): L1 is fewer, C8 the same; urgent/same_day/routine split.
    assert line.split() == ["hypercalcemia", "2", "1", "0", "1", "0", "0", "1", "1/1/0", "1/0/0"]
    assert re.search(r"^hypercalcemia-lab-2\.6-to-3\s+1\s+0\s+0\s+1\s+removed vs sre-v2$", out, re.M)


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--ruleset", "sre-v42"], "--ruleset", "no installed ruleset 'sre-v42'; installed: sre-v1, sre-v2"),
        (["--ruleset", "sre"], "--ruleset", "no installed ruleset 'sre'"),
        (["--ruleset", "sre-v1", "--against", "nope"], "--against", "no installed ruleset 'nope'"),
        (["--ruleset", "sre-v1", "--since", "90"], "--since", "'90' is not a window such as 90d or 12w"),
        (["--ruleset", "sre-v1", "--since", "0d"], "--since", "the window must be 1 to 3650 days"),
        (["--file", "/nonexistent/draft.yaml"], "--file", "cannot read ruleset"),
        ([], "", "give the candidate as --ruleset NAME-vN or --file PATH.yaml"),
    ],
)
def test_cli_bad_options_are_named_with_exit_code_2(
    settings_env: dict[str, str], args: list[str], option: str, says: str
) -> None:
    result = _backtest(settings_env, *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and f"'{option}'" in result.output if option else says in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_an_invalid_draft_naming_the_rule(settings_env: dict[str, str], tmp_path: Path) -> None:
    path = _candidate(tmp_path)
    path.write_text(path.read_text().replace("item: pain_worst", "item: pain_worse", 1))
    result = _backtest(settings_env, "--file", str(path))
    assert result.exit_code == 2
    assert "unknown item code 'pain_worse'" in result.output and "Traceback" not in result.output


def test_admin_config_page_runs_the_backtest_for_admins_only_and_audits_it(
    app: Any, client: Any, rt: Any, history: dict[str, int]
) -> None:
    make_staff(rt, email="nurse@example.org")
    nurse = app.test_client()
    login(nurse, "nurse@example.org")
    token = csrf_token(nurse, "/")
    refused = nurse.post(
        "/admin/config/backtest", data={"csrf_token": token, "candidate": "sre-v1", "days": "90"}
    )
    assert refused.status_code == 403
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    token = csrf_token(client, "/admin/config")
    assert (
        client.post("/admin/config/backtest", data={"candidate": "sre-v1", "days": "90"}).status_code == 400
    )

    page = client.post(
        "/admin/config/backtest", data={"csrf_token": token, "candidate": "sre-v1", "days": "90"}
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<dd data-count="replayed">7</dd>' in html and '<dd data-count="changed">1</dd>' in html
    row = re.search(r'<tr data-category="hypercalcemia"[^>]*>(.*?)</tr>', html, re.S)
    assert row is not None
    cells = dict(re.findall(r'data-col="(\w+)">(\d+)', row.group(1)))
    assert cells == {
        "reference": "2",
        "candidate": "1",
        "more": "0",
        "fewer": "1",
        "higher": "0",
        "lower": "0",
        "same": "1",
        "stored": "0",
    }
    scc = re.search(r'<tr data-category="spinal_cord_compression"[^>]*>(.*?)</tr>', html, re.S)
    assert scc is not None and 'data-col="stored">1<' in scc.group(1)
    assert "Lopez" not in html and "MRN001" not in html  # aggregate only

    bad = client.post(
        "/admin/config/backtest", data={"csrf_token": token, "candidate": "sre-v7", "days": "90"}
    )
    assert bad.status_code == 400 and "no installed ruleset" in bad.get_data(as_text=True)
    with rt.sessions() as session:
        audits = session.query(AuditLog).filter(AuditLog.action == "run_rules_backtest").all()
        assert [(a.subject_id, a.patient_id, a.detail["check_ins"]) for a in audits] == [("sre-v1", None, 7)]
        assert session.query(Alert).count() == 1  # read-only: only the seeded alert
