"""End to end on the real stack: API → real Celery worker → real twilio client → local Twilio server →
signed replies → worker → alert, page and safety message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.helpers import make_nurse

pytestmark = pytest.mark.integration
PHONE = "+15551230001"


@pytest.fixture
def enrolled(api: Any, rt: Any) -> dict[str, Any]:
    team = api(
        "POST",
        "/api/v1/care-teams",
        {"name": "Breast oncology", "timezone": "America/New_York", "phone": "+15550100"},
    )
    assert team.status_code == 201, team.json
    patient = api(
        "POST",
        "/api/v1/patients",
        {
            "mrn": "MRN-1",
            "given_name": "Ana",
            "family_name": "Lopez",
            "phone": PHONE,
            "timezone": "America/New_York",
            "language": "en",
            "care_team_id": team.json["id"],
        },
    )
    assert patient.status_code == 201, patient.json
    return {"team_id": team.json["id"], "patient_id": patient.json["id"]}


def test_a_yes_to_the_numbness_question_opens_an_urgent_alert(
    api: Any, sms: Any, rt: Any, twilio_server: Any, worker: Any, live_server: str, enrolled: dict[str, Any]
) -> None:
    nurse_id = make_nurse(rt, enrolled["team_id"])
    state = twilio_server.state
    started = api(
        "POST", f"/api/v1/patients/{enrolled['patient_id']}/check-ins", {"instrument": "sre-weekly"}
    )
    assert started.status_code == 201, started.json
    check_in_id = started.json["id"]

    first = state.wait_for_messages(1, timeout=20, to=PHONE)
    assert first[0]["body"].startswith("1/9 Any NEW pain")
    assert first[0]["status_callback"].endswith(
        f"/twilio/status?mid={first[0]['status_callback'].split('=')[-1]}"
    )

    assert sms(PHONE, "no").status_code == 200
    second = state.wait_for_messages(2, timeout=20, to=PHONE)
    assert second[1]["body"].startswith("2/9 ")

    assert sms(PHONE, "0").status_code == 200  # no pain: the three pain follow-ups are skipped
    third = state.wait_for_messages(3, timeout=20, to=PHONE)
    assert third[2]["body"].startswith("6/9 Any NEW weakness, numbness")

    assert sms(PHONE, "Yes").status_code == 200
    # The urgent rule fires on this answer, without waiting for the rest of the check-in.
    alerts = wait_for(
        lambda: api("GET", f"/api/v1/alerts?patient_id={enrolled['patient_id']}").json["alerts"],
        message="the urgent alert",
    )
    assert [(a["category"], a["urgency"], a["status"]) for a in alerts] == [
        ("spinal_cord_compression", "urgent", "open")
    ]
    evidence = alerts[0]["evidence"][0]
    assert evidence["item_code"] == "neuro" and evidence["raw_text"] == "Yes" and evidence["value"] is True
    assert evidence["question"].startswith("6/9 Any NEW weakness")
    assert alerts[0]["ruleset"] == "sre" and alerts[0]["ruleset_version"] == 2  # the active one (with labs)

    # The patient gets the safety message; the on-call nurse gets a page with no PHI.
    nurse_phone = "+15557770001"
    page = state.wait_for_messages(1, timeout=20, to=nurse_phone)[0]["body"]
    assert "URGENT" in page and alerts[0]["ref"] in page
    for phi in ("Ana", "Lopez", "MRN-1", "numb", "weak", "spinal", PHONE):
        assert phi not in page
    bodies = [m["body"] for m in state.wait_for_messages(5, timeout=20, to=PHONE)]
    assert any("call 911" in b.lower() for b in bodies), bodies
    assert any(b.startswith("7/9 ") for b in bodies), bodies

    check_in = api("GET", f"/api/v1/check-ins/{check_in_id}").json
    assert check_in["status"] == "in_progress" and check_in["current_item"] == "bladder_bowel"
    assert check_in["answers"]["pain_site"]["status"] == "skipped"
    assert check_in["answers"]["neuro"]["value"] is True
    assert nurse_id


def test_delivery_callbacks_reach_the_app_and_move_status_forward(
    api: Any, rt: Any, twilio_server: Any, worker: Any, live_server: str, enrolled: dict[str, Any]
) -> None:
    api("POST", f"/api/v1/patients/{enrolled['patient_id']}/check-ins", {"instrument": "sre-weekly"})
    sid = twilio_server.state.wait_for_messages(1, timeout=20, to=PHONE)[0]["sid"]
    twilio_server.state.wait_for_status(sid, "delivered", timeout=20)

    def delivered() -> bool:
        messages = api("GET", f"/api/v1/messages?patient_id={enrolled['patient_id']}").json["messages"]
        return any(m["twilio_sid"] == sid and m["status"] == "delivered" for m in messages)

    wait_for(delivered, message="the signed delivered callback to be applied")
