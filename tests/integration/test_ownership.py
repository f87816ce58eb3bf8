"""Ownership and handover (issue 14, item 3) on the real database: assigning an alert (to me, to a
colleague, refused for someone outside the team), the "My alerts" queue filter, the handover view with the
last note, notes after resolution, reopening with a reason, and assignment through the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import Alert, AlertEvent, AlertStatus, AuditLog, StaffRole
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_ward

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    ward = make_ward(rt)
    team, other_team = ward["team"], ward["other_team"]
    return {
        **ward,
        "nurse": make_staff(rt, email="kim@example.org", team_id=team),
        "colleague": make_staff(rt, email="lee@example.org", name="Nurse Lee", team_id=team),
        "outsider": make_staff(rt, email="ola@example.org", name="Nurse Ola", team_id=other_team),
    }


def _alert(rt: Any, alert_id: int) -> Alert:
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        session.expunge(alert)
        return alert


def _events(rt: Any, alert_id: int, kind: str) -> list[AlertEvent]:
    with rt.sessions() as session:
        rows = list(
            session.scalars(
                select(AlertEvent)
                .where(AlertEvent.alert_id == alert_id, AlertEvent.kind == kind)
                .order_by(AlertEvent.id)
            )
        )
        session.expunge_all()
        return rows


def _audits(rt: Any, action: str) -> list[AuditLog]:
    with rt.sessions() as session:
        rows = list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))
        session.expunge_all()
        return rows


def _post(client: Any, path: str, **form: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, "/"), **form})


def _switch(client: Any, email: str) -> None:
    """Sign out, and in as someone else."""
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    login(client, email)


def test_assign_to_me_records_the_owner_event_and_audit(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Assign to me" in page and "Nobody yet" in page

    response = _post(client, f"/alerts/{alert_id}/assign", staff="me")
    assert response.status_code == 302

    alert = _alert(rt, alert_id)
    assert alert.assigned_to_id == ward["nurse"] and alert.assigned_at is not None
    assert alert.status == AlertStatus.OPEN  # owning is not acknowledging: escalation still runs
    [event] = _events(rt, alert_id, "assigned")
    assert event.actor_staff_id == ward["nurse"] and event.detail["to_staff_id"] == ward["nurse"]
    [row] = _audits(rt, "assign_alert")
    assert row.patient_id == ward["p1"] and row.actor == f"staff:{ward['nurse']}"

    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert re.search(r'id="alert-assignee">Nurse Kim \(you\)', page)
    assert "Assign to me" not in page
    queue = client.get("/").get_data(as_text=True)
    assert 'data-label="Assigned to">Nurse Kim' in queue


def test_assign_to_a_colleague_from_the_select(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    options = dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', page))
    assert options.get(str(ward["colleague"])) == "Nurse Lee"
    assert str(ward["outsider"]) not in options  # another team's nurse is not offered

    _post(client, f"/alerts/{alert_id}/assign", staff=str(ward["colleague"]))
    assert _alert(rt, alert_id).assigned_to_id == ward["colleague"]
    [event] = _events(rt, alert_id, "assigned")
    assert event.actor_staff_id == ward["nurse"] and event.detail["to_staff_id"] == ward["colleague"]
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'id="alert-assignee">Nurse Lee' in page


def test_assigning_to_someone_outside_the_team_is_refused(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    response = _post(client, f"/alerts/{alert_id}/assign", staff=str(ward["outsider"]))
    assert response.status_code == 302
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Not assigned: Nurse Ola is not on this patient&#39;s care team" in page
    assert _alert(rt, alert_id).assigned_to_id is None
    assert _events(rt, alert_id, "assigned") == [] and _audits(rt, "assign_alert") == []

    # And the outsider cannot take it themselves: the alert is outside their scope (break-glass page).
    _switch(client, "ola@example.org")
    response = _post(client, f"/alerts/{alert_id}/assign", staff="me")
    assert response.status_code == 403
    assert _alert(rt, alert_id).assigned_to_id is None


def test_my_alerts_filter_shows_only_mine_and_the_default_is_my_care_teams(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    mine = insert_alert(rt, ward["p1"], category="hypercalcemia")
    theirs = insert_alert(rt, ward["p1"], category="spinal_cord_compression")
    nobodys = insert_alert(rt, ward["p1"], category="new_bone_pain", urgency="routine")
    insert_alert(rt, ward["p2"], category="hypercalcemia")  # another team: never in this nurse's queue
    login(client, "kim@example.org")
    _post(client, f"/alerts/{mine}/assign", staff="me")
    _post(client, f"/alerts/{theirs}/assign", staff=str(ward["colleague"]))

    default = client.get("/").get_data(as_text=True)
    assert sorted(int(i) for i in re.findall(r'data-alert-id="(\d+)"', default)) == sorted(
        [mine, theirs, nobodys]
    )
    only_mine = client.get("/?owner=me").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-alert-id="(\d+)"', only_mine)] == [mine]
    assert '<option value="me" selected>' in only_mine
    poll = client.get("/queue/poll?owner=me").json
    assert [a["id"] for a in poll["alerts"]] == [mine]
    assert poll["counts"] == {"urgent": 1, "same_day": 0, "routine": 0}


def test_queue_sorts_by_a_column_on_the_server(client: Any, rt: Any, ward: dict[str, int]) -> None:
    urgent = insert_alert(rt, ward["p1"], category="hypercalcemia", opened_minutes_ago=5)
    routine = insert_alert(rt, ward["p1"], category="new_bone_pain", urgency="routine", opened_minutes_ago=90)
    login(client, "kim@example.org")
    triage = [int(i) for i in re.findall(r'data-alert-id="(\d+)"', client.get("/").get_data(as_text=True))]
    assert triage == [urgent, routine]
    longest_first = client.get("/?sort=-waiting").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-alert-id="(\d+)"', longest_first)] == [routine, urgent]
    assert 'aria-sort="descending"' in longest_first
    assert [a["id"] for a in client.get("/queue/poll?sort=urgency").json["alerts"]] == [routine, urgent]


def test_handover_lists_open_and_acknowledged_with_the_last_note_and_is_audited(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    open_id = insert_alert(rt, ward["p1"], category="hypercalcemia")
    acked = insert_alert(
        rt, ward["p1"], category="new_bone_pain", urgency="same_day", status=AlertStatus.ACKNOWLEDGED
    )
    resolved = insert_alert(rt, ward["p1"], category="severe_pain", status=AlertStatus.RESOLVED)
    other_team = insert_alert(rt, ward["p2"], category="hypercalcemia")
    login(client, "kim@example.org")
    _post(client, f"/alerts/{open_id}/notes", note="Left a voicemail at 14:00")
    _switch(client, "lee@example.org")
    _post(client, f"/alerts/{open_id}/notes", note="Spoke to daughter, calling back")
    _post(client, f"/alerts/{acked}/assign", staff="me")

    page = client.get("/handover").get_data(as_text=True)
    shown = [int(i) for i in re.findall(r'class="handover-row" data-alert-id="(\d+)"', page)]
    assert shown == [open_id, acked]
    assert resolved not in shown and other_team not in shown
    assert "Spoke to daughter, calling back" in page and "Left a voicemail" not in page
    assert "Nurse Lee" in page and "No note" in page
    assert "Breast oncology" in page and "Palliative care" not in page
    assert 'id="handover-stamp">Printed <time' in page
    [row] = _audits(rt, "view_handover")
    assert row.detail["patient_ids"] == [ward["p1"]] and row.detail["shown"] == 2
    assert row.actor == f"staff:{ward['colleague']}"


def test_a_note_can_be_added_after_resolution(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"], status=AlertStatus.RESOLVED)
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Add a note after resolution" in page and f'action="/alerts/{alert_id}/notes"' in page
    _post(client, f"/alerts/{alert_id}/notes", note="Patient called back: pain settled")
    [event] = _events(rt, alert_id, "note")
    assert event.detail["note"] == "Patient called back: pain settled"
    assert _alert(rt, alert_id).status == AlertStatus.RESOLVED


def test_reopen_needs_a_reason(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"], status=AlertStatus.RESOLVED)
    login(client, "kim@example.org")
    assert "Reopen alert" in client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    _post(client, f"/alerts/{alert_id}/reopen", reason="  ")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Not reopened: give a reason" in page
    assert _alert(rt, alert_id).status == AlertStatus.RESOLVED and _events(rt, alert_id, "reopened") == []

    _post(client, f"/alerts/{alert_id}/reopen", reason="Patient rang: weakness is back")
    alert = _alert(rt, alert_id)
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by_id == ward["nurse"]
    assert alert.resolved_at is None and alert.outcome is None and alert.next_escalation_at is None
    [event] = _events(rt, alert_id, "reopened")
    assert event.detail["reason"] == "Patient rang: weakness is back"
    assert [a.detail["reason"] for a in _audits(rt, "reopen_alert")] == ["Patient rang: weakness is back"]
    assert "Patient rang: weakness is back" in client.get(f"/alerts/{alert_id}").get_data(as_text=True)


def test_reopen_is_refused_while_another_alert_of_that_kind_is_open(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    old = insert_alert(rt, ward["p1"], status=AlertStatus.RESOLVED, ref="OLD111")
    insert_alert(rt, ward["p1"], ref="NEW222")  # same patient, same category, open
    login(client, "kim@example.org")
    _post(client, f"/alerts/{old}/reopen", reason="Wrongly resolved, still numb")
    page = client.get(f"/alerts/{old}").get_data(as_text=True)
    assert "Not reopened: alert NEW222 of the same kind is already open for this patient" in page
    assert _alert(rt, old).status == AlertStatus.RESOLVED
    assert _events(rt, old, "reopened") == []


def test_api_assigns_and_shows_assigned_to(api: Any, rt: Any, ward: dict[str, int], nurse_token: str) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    admin = make_staff(rt, email="admin@example.org", name="Admin Ada", role=StaffRole.ADMIN)

    response = api("POST", f"/api/v1/alerts/{alert_id}/assign", {"staff_id": ward["colleague"]})
    assert response.status_code == 200, response.json
    assert response.json["assigned_to"] == ward["colleague"]
    assert datetime.fromisoformat(response.json["assigned_at"]) <= datetime.now(UTC)
    assert [e["kind"] for e in response.json["events"]][-1] == "assigned"
    assert api("GET", f"/api/v1/alerts/{alert_id}").json["assigned_to"] == ward["colleague"]
    assert api("POST", f"/api/v1/alerts/{alert_id}/assign", {"staff_id": admin}).json["assigned_to"] == admin

    refused = api("POST", f"/api/v1/alerts/{alert_id}/assign", {"staff_id": ward["outsider"]})
    assert refused.status_code == 400 and refused.json["detail"][0]["field"] == "staff_id"
    outside = api("POST", f"/api/v1/alerts/{alert_id}/assign", {"staff_id": admin}, token=nurse_token)
    assert outside.status_code == 403  # a nurse of no care team
    assert _alert(rt, alert_id).assigned_to_id == admin
