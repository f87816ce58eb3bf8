"""Care-team scoping (issue 15, services/access.py) on the real database: a nurse sees and acts on the
patients of her care teams, of the teams she is on call for and of the alerts she was paged for; anything
else needs a reasoned, audited, expiring break-glass; administrators see everything; a nurse's API token
sees what the nurse sees, in the API and FHIR."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import (
    Alert,
    AlertStatus,
    AuditLog,
    CheckIn,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    OnCallShift,
    StaffRole,
)
from pro_service.services import access
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def wards(rt: Any) -> dict[str, int]:
    team_a = make_team(rt, name="Breast oncology")
    team_b = make_team(rt, name="Palliative care", timezone="America/Chicago")
    p_a = make_patient(rt, team_a, phone="+15551230001", mrn="MRN-A1")
    p_b = make_patient(rt, team_b, phone="+15551230002", mrn="MRN-B1")
    return {
        "team_a": team_a,
        "team_b": team_b,
        "p_a": p_a,
        "p_b": p_b,
        "p_b2": make_patient(rt, team_b, phone="+15551230003", mrn="MRN-B2"),
        "a_a": insert_alert(rt, p_a, category="hypercalcemia", opened_minutes_ago=10),
        "a_b": insert_alert(rt, p_b, opened_minutes_ago=5),
        "nurse": make_staff(rt, email="kim@example.org", team_id=team_a, phone="+15557770001"),
    }


def _order(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-alert-id="(\d+)"', page)]


def _audit(rt: Any, patient_id: int) -> list[AuditLog]:
    with rt.sessions() as session:
        return list(
            session.scalars(select(AuditLog).where(AuditLog.patient_id == patient_id).order_by(AuditLog.id))
        )


def _status(rt: Any, alert_id: int) -> AlertStatus:
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.status


def test_the_queue_and_its_poll_show_only_the_nurses_teams(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    page = client.get("/").get_data(as_text=True)
    assert _order(page) == [wards["a_a"]]
    assert "MRN-A1" in page and "MRN-B1" not in page

    poll = client.get("/queue/poll").json
    assert [a["id"] for a in poll["alerts"]] == [wards["a_a"]]
    assert poll["counts"] == {"urgent": 1, "same_day": 0, "routine": 0}
    assert "MRN-B1" not in poll["rows"]
    # The banner still tells her another team has an urgent alert waiting, by its team only.
    urgent = {u["id"]: u for u in poll["urgent"]}
    assert set(urgent) == {wards["a_a"], wards["a_b"]}
    assert urgent[wards["a_b"]]["team"] == "Palliative care"
    assert "category" not in urgent[wards["a_b"]] and "ref" not in urgent[wards["a_b"]]
    assert "category" in urgent[wards["a_a"]]
    # Filtering on the other team shows nothing rather than its alerts.
    other = client.get(f"/queue/poll?team={wards['team_b']}").json
    assert other["alerts"] == [] and other["total"] == 0


def test_search_finds_only_the_nurses_patients_and_offers_break_glass_by_mrn(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    page = client.get("/patients?q=lopez").get_data(as_text=True)
    assert "MRN-A1" in page and "MRN-B1" not in page and "1 patient found" in page
    assert "MRN-B1" not in client.get("/patients?q=1230002").get_data(as_text=True)
    exact = client.get("/patients?q=MRN-B1").get_data(as_text=True)
    assert "0 patients found" in exact and "Lopez" not in exact
    assert f'href="/patients/{wards["p_b"]}"' in exact and "break-glass" in exact


def test_another_teams_patient_and_alert_pages_explain_and_offer_break_glass(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    for path in (
        f"/patients/{wards['p_b']}",
        f"/patients/{wards['p_b']}/profile",
        f"/alerts/{wards['a_b']}",
    ):
        refused = client.get(path)
        body = refused.get_data(as_text=True)
        assert refused.status_code == 403, path
        assert "outside your care teams" in body and "Palliative care" in body
        assert "MRN-B1" not in body and "Lopez" not in body and "yes my legs are numb" not in body
        assert 'name="reason"' in body
    actions = [(r.action, r.detail.get("break_glass")) for r in _audit(rt, wards["p_b"])]
    assert actions == [("scope_refused", None)] * 3  # refusals recorded; nothing viewed
    assert client.get(f"/patients/{wards['p_a']}").status_code == 200


def test_a_nurse_cannot_act_on_another_teams_alert_or_patient(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    alert_id = wards["a_b"]
    for action, form in (
        ("acknowledge", {}),
        ("notes", {"note": "called"}),
        ("resolve", {"outcome": "advised_emergency_care", "rag": "red"}),
        ("escalate", {}),
    ):
        response = client.post(f"/alerts/{alert_id}/{action}", data={"csrf_token": token, **form})
        assert response.status_code == 403, action
    queued = client.post(
        f"/queue/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert queued.status_code == 403 and queued.json["acknowledged"] is False
    started = client.post(f"/patients/{wards['p_b']}/check-ins", data={"csrf_token": token})
    assert started.status_code == 403
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.status == AlertStatus.OPEN
        assert [e.kind for e in alert.events if e.actor_staff_id is not None] == []
        assert session.scalar(select(CheckIn).where(CheckIn.patient_id == wards["p_b"])) is None
    # Her own team's alert she may acknowledge.
    own = client.post(f"/alerts/{wards['a_a']}/acknowledge", data={"csrf_token": token})
    assert own.status_code == 302 and _status(rt, wards["a_a"]) == AlertStatus.ACKNOWLEDGED


def test_on_call_for_another_team_sees_it_while_on_call(client: Any, rt: Any, wards: dict[str, int]) -> None:
    now = datetime.now(UTC)
    with rt.unit_of_work() as session:
        session.add(
            OnCallShift(
                care_team_id=wards["team_b"],
                staff_id=wards["nurse"],
                level=1,
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=1),
            )
        )
    login(client, "kim@example.org")
    assert set(_order(client.get("/").get_data(as_text=True))) == {wards["a_a"], wards["a_b"]}
    assert client.get(f"/patients/{wards['p_b']}").status_code == 200
    assert "Break-glass access" not in client.get(f"/alerts/{wards['a_b']}").get_data(as_text=True)
    rt.clock = lambda: now + timedelta(hours=2)  # the shift is over
    assert client.get(f"/patients/{wards['p_b']}").status_code == 403
    assert _order(client.get("/").get_data(as_text=True)) == [wards["a_a"]]


def test_paged_for_an_alert_sees_that_patient_and_may_act(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    with rt.unit_of_work() as session:
        session.add(
            Message(
                direction=Direction.OUTBOUND,
                kind=MessageKind.PAGE,
                status=MessageStatus.SENT,
                staff_id=wards["nurse"],
                alert_id=wards["a_b"],
                from_number="+15550000000",
                to_number="+15557770001",
                body="Urgent alert",
            )
        )
    login(client, "kim@example.org")
    # The page's link opens the alert and its patient; the queue stays her teams' (access.py says why).
    assert _order(client.get("/").get_data(as_text=True)) == [wards["a_a"]]
    assert client.get(f"/alerts/{wards['a_b']}").status_code == 200
    assert client.get(f"/patients/{wards['p_b']}").status_code == 200
    assert client.get(f"/patients/{wards['p_b2']}").status_code == 403  # same team, not paged for
    token = csrf_token(client, "/")
    assert client.post(f"/alerts/{wards['a_b']}/acknowledge", data={"csrf_token": token}).status_code == 302
    assert _status(rt, wards["a_b"]) == AlertStatus.ACKNOWLEDGED
    # Reading is not changing: the baseline (it decides what pages later) and check-ins need the team or a
    # break-glass.
    profile = client.post(
        f"/patients/{wards['p_b']}/profile", data={"csrf_token": token, "chronic_neuropathy": "yes"}
    )
    assert profile.status_code == 403
    assert client.post(f"/patients/{wards['p_b']}/check-ins", data={"csrf_token": token}).status_code == 403


def test_break_glass_opens_one_patient_with_a_reason_is_audited_and_expires(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    path = f"/patients/{wards['p_b']}/break-glass"
    short = client.post(path, data={"csrf_token": token, "reason": "need it", "alert": wards["a_b"]})
    assert short.status_code == 400 and "at least" in short.get_data(as_text=True)
    assert client.get(f"/patients/{wards['p_b']}").status_code == 403

    reason = "Patient called the nurse line; her own team is in clinic"
    opened = client.post(path, data={"csrf_token": token, "reason": reason, "alert": wards["a_b"]})
    assert opened.status_code == 302 and opened.headers["Location"] == f"/alerts/{wards['a_b']}"
    alert_page = client.get(f"/alerts/{wards['a_b']}").get_data(as_text=True)
    assert "Break-glass access" in alert_page and "yes my legs are numb" in alert_page
    patient_page = client.get(f"/patients/{wards['p_b']}").get_data(as_text=True)
    assert "Break-glass access" in patient_page and "MRN-B1" in patient_page
    assert client.post(f"/alerts/{wards['a_b']}/acknowledge", data={"csrf_token": token}).status_code == 302
    # That patient only: the other team's other patient, and lists, stay closed.
    assert client.get(f"/patients/{wards['p_b2']}").status_code == 403
    assert _order(client.get("/").get_data(as_text=True)) == [wards["a_a"]]
    assert "Break-glass access" not in client.get(f"/patients/{wards['p_a']}").get_data(as_text=True)

    rows = [r for r in _audit(rt, wards["p_b"]) if r.action != "scope_refused"]
    assert [(r.action, r.actor) for r in rows] == [
        ("break_glass", f"staff:{wards['nurse']}"),
        ("view_alert", f"staff:{wards['nurse']}"),
        ("view_patient", f"staff:{wards['nurse']}"),
        ("acknowledge_alert", f"staff:{wards['nurse']}"),
    ]
    assert rows[0].detail["reason"] == reason and rows[0].detail["minutes"] == access.BREAK_GLASS_MINUTES
    assert all(r.detail.get("break_glass") is True for r in rows[1:])

    later = datetime.now(UTC) + timedelta(minutes=access.BREAK_GLASS_MINUTES + 1)
    rt.clock = lambda: later
    assert client.get(f"/patients/{wards['p_b']}").status_code == 403
    assert client.get(f"/alerts/{wards['a_b']}").status_code == 403


def test_an_administrator_sees_every_team_without_break_glass(
    client: Any, rt: Any, wards: dict[str, int]
) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    assert set(_order(client.get("/").get_data(as_text=True))) == {wards["a_a"], wards["a_b"]}
    page = client.get(f"/patients/{wards['p_b']}").get_data(as_text=True)
    assert "MRN-B1" in page and "Break-glass access" not in page
    assert "MRN-B1" in client.get("/patients?q=lopez").get_data(as_text=True)
    views = [r for r in _audit(rt, wards["p_b"]) if r.action == "view_patient"]
    assert len(views) == 1 and "break_glass" not in views[0].detail


def test_a_nurses_token_sees_what_the_nurse_sees_in_the_api_and_fhir(
    client: Any, rt: Any, admin_token: str, wards: dict[str, int]
) -> None:
    from pro_service.services.tokens import create_token

    with rt.unit_of_work() as session:
        kims = create_token(session, requested_by="operator", name="kim's script", staff=wards["nurse"]).token
    nurse = {"Authorization": f"Bearer {kims}"}
    admin = {"Authorization": f"Bearer {admin_token}"}
    p_a, p_b, a_b = wards["p_a"], wards["p_b"], wards["a_b"]
    # Lists filter to her team, as the dashboard does.
    assert {p["mrn"] for p in client.get("/api/v1/patients", headers=nurse).json["patients"]} == {"MRN-A1"}
    assert [a["id"] for a in client.get("/api/v1/alerts", headers=nurse).json["alerts"]] == [wards["a_a"]]
    assert client.get(f"/api/v1/patients/{p_a}", headers=nurse).status_code == 200
    # Records of another team are refused.
    for path in (
        f"/api/v1/patients/{p_b}",
        f"/api/v1/patients/{p_b}/labs",
        f"/api/v1/alerts/{a_b}",
        f"/api/v1/messages?patient_id={p_b}",
    ):
        refused = client.get(path, headers=nurse)
        assert refused.status_code == 403, path
        assert "outside the care teams" in refused.json["detail"], path
    acked = client.post(f"/api/v1/alerts/{a_b}/acknowledge", headers=nurse)
    assert acked.status_code == 403
    for path in (f"/fhir/Patient/{p_b}", f"/fhir/Flag/{a_b}"):
        outcome = client.get(path, headers=nurse)
        assert outcome.status_code == 403, path
        assert outcome.json["issue"][0]["code"] == "forbidden", path
    assert client.get(f"/fhir/Patient/{p_a}", headers=nurse).status_code == 200
    # Searches filter, as lists do: another team's patient is simply not found.
    assert client.get(f"/fhir/Patient?_id={p_b}", headers=nurse).json["total"] == 0
    assert client.get(f"/fhir/Flag?patient={p_b}", headers=nurse).json["total"] == 0
    # What holds no patient data still works; a client token with `read` sees every team.
    assert client.get("/api/v1/instruments", headers=nurse).status_code == 200
    assert client.get("/api/v1/care-teams", headers=nurse).status_code == 200
    assert client.get("/fhir/Questionnaire", headers=nurse).status_code == 200
    mrns = {p["mrn"] for p in client.get("/api/v1/patients", headers=admin).json["patients"]}
    assert {"MRN-A1", "MRN-B1"} <= mrns
    assert client.get(f"/fhir/Flag?patient={p_b}", headers=admin).json["total"] == 1
    assert _status_after_nurse_token(client, a_b, admin) == "open"


def _status_after_nurse_token(client: Any, alert_id: int, admin: dict[str, str]) -> str:
    status: str = client.get(f"/api/v1/alerts/{alert_id}", headers=admin).json["status"]
    return status


def test_scope_rules_in_isolation() -> None:
    scope = access.Scope(frozenset({1}), frozenset({9}))
    assert scope.allows(3, 1) and scope.allows(9, 2)
    assert not scope.allows(8, 2)
    assert scope.by_break_glass(9, 2) and not scope.by_break_glass(3, 1)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    grants = access.grant({}, 5, now)
    assert access.active_grants(grants, now + timedelta(minutes=access.BREAK_GLASS_MINUTES - 1)) == grants
    assert access.active_grants(grants, now + timedelta(minutes=access.BREAK_GLASS_MINUTES)) == {}
    assert access.reason_problem("too short") is not None
    assert access.reason_problem("covering the ward tonight") is None
