"""Questionnaire v2 scored by ruleset 3 over the real webhook and worker: red flags first, words for
choices, the baseline, two amber domains, and moving a patient between versions (recorded)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import AuditLog, Patient, StaffRole
from pro_service.services import protocol
from tests.browser.support import csrf_token, login, make_staff
from tests.conftest import wait_for
from tests.integration.helpers import make_patient, make_team
from tests.integration.test_check_in_conversation import Phone, _alerts, _start

pytestmark = pytest.mark.integration


@pytest.fixture
def phone(sms: Any, twilio_server: Any, worker: Any, live_server: str) -> Phone:
    return Phone(sms, twilio_server.state)


def _move(rt: Any, patient_id: int, version: int) -> protocol.Moved:
    with rt.sessions() as session:
        return protocol.move_patient(session, rt, patient_id, version, actor="staff:1", reason="v2 pilot")


def test_a_moved_patient_is_asked_v2_and_two_amber_domains_make_a_red(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt))
    assert _move(rt, patient, 3) == protocol.Moved(patient, 2, 3)
    check_in = _start(api, patient)
    first = phone.wait(1)[0]
    assert first.startswith("1/10 ") and "weakness" in first  # red flags first
    script = ["no", "0", "no", "no", "yes", "8", "my leg", "0", "tired, thirsty"]
    for reply in script:
        (question,) = phone.reply(reply)
        assert len(question) <= 160
    phone.reply("no")
    result = wait_for(
        lambda: (r := api("GET", f"/api/v1/check-ins/{check_in}").json)["status"] == "completed" and r,
        message="the check-in to complete",
    )
    values = {code: a["value"] for code, a in result["answers"].items()}
    assert values["pain_site"] == [4] and values["calcium_sx"] == [1, 4] and values["fall"] is True
    alerts = wait_for(
        lambda: (
            (found := {a["category"]: a for a in _alerts(api, patient)}).keys()
            >= {"fall", "severe_pain", "hypercalcemia"}
            and found
        ),
        message="the v3 alerts",
    )
    # A fall (fracture domain), severe pain (pain domain) and calcium symptoms (calcium domain): ambers in
    # three domains, raised to urgent by the policy, each saying why.
    for category in ("fall", "severe_pain", "hypercalcemia"):
        assert alerts[category]["urgency"] == "urgent", alerts[category]
        assert alerts[category]["ruleset_version"] == 3
    with rt.sessions() as session:
        row = session.scalar(select(AuditLog).where(AuditLog.action == "move_ruleset"))
        assert row is not None and row.patient_id == patient
        assert row.detail["from_version"] == 2 and row.detail["to_version"] == 3
        assert row.detail["reason"] == "v2 pilot"


def test_numbness_as_usual_pages_at_once_unless_a_chronic_neuropathy_is_recorded(
    api: Any, rt: Any, phone: Phone
) -> None:
    patient = make_patient(rt, make_team(rt))
    _move(rt, patient, 3)
    _start(api, patient)
    phone.wait(1)
    phone.reply("no")
    phone.reply("same as usual")  # no baseline recorded: unknown is never normal
    alert = wait_for(
        lambda: next((a for a in _alerts(api, patient) if a["category"] == "spinal_cord_compression"), None),
        message="the urgent alert on numbness as usual",
    )
    assert alert["urgency"] == "urgent"
    assert "scc-numbness-not-known" in alert["rule_ids"]


def test_a_patient_not_moved_stays_on_questionnaire_v1(api: Any, rt: Any, phone: Phone) -> None:
    patient = make_patient(rt, make_team(rt))  # ENROL_RULESET_VERSION=2 in the test settings
    with rt.sessions() as session:
        assert session.get(Patient, patient).ruleset_version is None
        assert protocol.current_version(rt, session.get(Patient, patient)) == 2
    _start(api, patient)
    assert phone.wait(1)[0].startswith("1/9 ")


def test_moving_refuses_what_it_cannot_do(rt: Any) -> None:
    patient = make_patient(rt, make_team(rt))
    with rt.sessions() as session:
        with pytest.raises(protocol.ProtocolError, match="reason"):
            protocol.move_patient(session, rt, patient, 3, actor="staff:1", reason="  ")
        with pytest.raises(protocol.ProtocolError, match="not installed"):
            protocol.move_patient(session, rt, patient, 99, actor="staff:1", reason="x")
    _move(rt, patient, 3)
    with rt.sessions() as session, pytest.raises(protocol.ProtocolError, match="already on version 3"):
        protocol.move_patient(session, rt, patient, 3, actor="staff:1", reason="again")


def test_the_admin_page_moves_a_patient_and_nurses_cannot(rt: Any, client: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    make_staff(rt, email="kim@example.org", team_id=team)
    login(client, "kim@example.org")
    assert client.get(f"/admin/patients/{patient}/ruleset").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    path = f"/admin/patients/{patient}/ruleset"
    page = client.get(path)
    assert page.status_code == 200 and b"On <strong>version 2</strong>" in page.data
    token = csrf_token(client, path)
    refused = client.post(path, data={"csrf_token": token, "version": "3", "reason": ""})
    assert refused.status_code == 400 and b"say why" in refused.data
    moved = client.post(
        path, data={"csrf_token": token, "version": "3", "reason": "pilot"}, follow_redirects=True
    )
    assert moved.status_code == 200 and b"On <strong>version 3</strong>" in moved.data
