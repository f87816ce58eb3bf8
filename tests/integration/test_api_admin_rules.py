"""The REST API and the admin pages apply the same rules (issue 13): each rule is one service function, and
each test here drives both paths into it. Also: the request's unit of work answers a failed commit as 409."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import CareTeam, Patient, Schedule, StaffRole, StaffUser
from pro_service.services import idempotency
from tests.browser.support import csrf_token, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def admin(client: Any, rt: Any) -> dict[str, Any]:
    """A care team with a nurse, and an administrator signed in to the admin pages (the API calls use the
    `api` fixture's bearer token on the same client)."""
    team_id = make_team(rt)
    nurse = make_staff(rt, email="kim@example.org", team_id=team_id)
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    return {"team": team_id, "nurse": nurse, "csrf": csrf_token(client, "/admin/")}


def _form(client: Any, admin: dict[str, Any], path: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": admin["csrf"], **fields})


def _local(rt: Any, delta: timedelta) -> str:
    """A datetime-local value in the team's zone (America/New_York), `delta` from now."""
    from zoneinfo import ZoneInfo

    return (rt.now() + delta).astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M")


def _api_shift(api: Any, rt: Any, team: int, staff: int, level: int, hours: int) -> Any:
    start = rt.now() + timedelta(hours=hours)
    return api(
        "POST",
        f"/api/v1/care-teams/{team}/on-call",
        {
            "staff_id": staff,
            "level": level,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=8)).isoformat(),
        },
    )


def _admin_shift(client: Any, rt: Any, admin: dict[str, Any], staff: int, level: int, hours: int) -> Any:
    return _form(
        client,
        admin,
        f"/admin/teams/{admin['team']}/shifts",
        staff_id=str(staff),
        level=str(level),
        starts_at=_local(rt, timedelta(hours=hours)),
        ends_at=_local(rt, timedelta(hours=hours + 8)),
    )


def test_on_call_levels_are_one_to_five_in_both(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    assert _api_shift(api, rt, admin["team"], admin["nurse"], 5, 1).status_code == 201
    assert _admin_shift(client, rt, admin, admin["nurse"], 5, 24).status_code == 302
    too_deep = _api_shift(api, rt, admin["team"], admin["nurse"], 6, 48)
    assert too_deep.status_code == 400 and too_deep.json["detail"][0]["field"] == "level"
    page = _admin_shift(client, rt, admin, admin["nurse"], 6, 72)
    assert page.status_code == 400 and "must be between 1 and 5" in page.get_data(as_text=True)
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]["ShiftIn"]
    assert schema["properties"]["level"]["maximum"] == 5  # the contract says so too


def test_an_inactive_account_is_put_on_no_rota(client: Any, rt: Any, api: Any, admin: dict[str, Any]) -> None:
    with rt.unit_of_work() as session:
        nurse = session.get(StaffUser, admin["nurse"])
        assert nurse is not None
        nurse.active = False
    refused = _api_shift(api, rt, admin["team"], admin["nurse"], 1, 1)
    assert refused.status_code == 400
    assert refused.json["detail"] == [{"field": "staff_id", "message": "choose an active staff member"}]
    page = _admin_shift(client, rt, admin, admin["nurse"], 1, 1)
    assert page.status_code == 400 and "choose an active staff member" in page.get_data(as_text=True)
    assert api("GET", f"/api/v1/care-teams/{admin['team']}/on-call").json["shifts"] == []


def test_a_member_removed_through_the_api_leaves_the_rota_as_on_the_page(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    assert _api_shift(api, rt, admin["team"], admin["nurse"], 1, 2).status_code == 201
    path = f"/api/v1/care-teams/{admin['team']}/members/{admin['nurse']}"
    # Still on the rota: refused without the page's confirmation, so a sync cannot empty tonight's level.
    refused = api("DELETE", path)
    assert refused.status_code == 409 and "end_shifts=true" in refused.json["detail"]
    assert len(api("GET", f"/api/v1/care-teams/{admin['team']}/on-call").json["shifts"]) == 1
    assert api("DELETE", path + "?end_shifts=true").status_code == 204
    assert api("GET", f"/api/v1/care-teams/{admin['team']}/on-call").json["shifts"] == []
    assert api("DELETE", path).json["error"] == "not_found"


def test_a_care_team_phone_is_stored_normalised_by_both(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    made = api(
        "POST", "/api/v1/care-teams", {"name": "Lung", "timezone": "UTC", "phone": "+1 (555) 010-0000"}
    )
    assert made.status_code == 201 and made.json["phone"] == "+15550100000"
    page = _form(client, admin, "/admin/teams", name="Bone", timezone="UTC", phone="+1 555 010 0001")
    assert page.status_code == 302
    with rt.sessions() as session:
        phones = dict(session.execute(select(CareTeam.name, CareTeam.phone)).tuples().all())
    assert phones["Lung"] == "+15550100000" and phones["Bone"] == "+15550100001"

    bad = api("POST", "/api/v1/care-teams", {"name": "Skin", "timezone": "UTC", "phone": "12"})
    assert bad.status_code == 400 and bad.json["detail"][0]["field"] == "phone"
    assert _form(client, admin, "/admin/teams", name="Skin", timezone="UTC", phone="12").status_code == 400
    # A clash is a clash in both: 409 from the API, the message at the name on the page.
    again = api("POST", "/api/v1/care-teams", {"name": "Bone", "timezone": "UTC"})
    assert again.json == {"error": "conflict", "detail": "a care team named 'Bone' exists"}
    twice = _form(client, admin, "/admin/teams", name="Lung", timezone="UTC")
    assert twice.status_code == 400 and "a care team named &#39;Lung&#39; exists" in twice.get_data(
        as_text=True
    )


def test_a_schedule_is_saved_by_one_function_from_either_side(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    patient = make_patient(rt, admin["team"])
    today = rt.now().date()
    page = _form(
        client,
        admin,
        f"/admin/patients/{patient}/schedules",
        instrument="sre-weekly",
        days="MO",
        time="10:00",
        start_date=today.isoformat(),
        active="yes",
    )
    assert page.status_code == 302
    with rt.sessions() as session:
        made = session.scalar(select(Schedule).where(Schedule.patient_id == patient))
        assert made is not None
        schedule_id = made.id
    # The API edits what the form made, with the same rules: an end before the start is refused...
    path = f"/api/v1/patients/{patient}/schedules/{schedule_id}"
    early = api("PATCH", path, {"end_date": (today - timedelta(days=1)).isoformat()})
    assert early.status_code == 400
    assert early.json["detail"] == [{"field": "end_date", "message": "is before the start date"}]
    # ...as on the form, where the message is the same.
    backwards = _form(
        client,
        admin,
        f"/admin/patients/{patient}/schedules/{schedule_id}",
        instrument="sre-weekly",
        days="MO",
        time="10:00",
        start_date=today.isoformat(),
        end_date=(today - timedelta(days=1)).isoformat(),
        active="yes",
    )
    assert backwards.status_code == 400 and "is before the start date" in backwards.get_data(as_text=True)
    bad_rule = api("PATCH", path, {"rrule": "FREQ=SOMETIMES"})
    assert bad_rule.status_code == 400 and bad_rule.json["detail"][0]["field"] == "rrule"
    paused = api("PATCH", path, {"active": False, "rrule": "FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=30"})
    assert paused.status_code == 200 and paused.json["active"] is False
    with rt.sessions() as session:
        saved = session.get(Schedule, schedule_id)
        assert saved is not None and (saved.active, saved.instrument_code) == (False, "sre-weekly")
        assert "BYDAY=TU" in saved.rrule and saved.next_due_at is None
    unknown = api(
        "POST",
        f"/api/v1/patients/{patient}/schedules",
        {"instrument": "nope", "rrule": "FREQ=WEEKLY;BYDAY=MO", "start_date": today.isoformat()},
    )
    assert unknown.json["detail"] == [{"field": "instrument", "message": "unknown instrument 'nope'"}]
    other = make_patient(rt, admin["team"], mrn="MRN-OTHER", phone="+15551230002")
    elsewhere = api("PATCH", f"/api/v1/patients/{other}/schedules/{schedule_id}", {"active": True})
    assert elsewhere.status_code == 404
    assert elsewhere.json == {
        "error": "not_found",
        "detail": f"no schedule {schedule_id} for patient {other}",
    }


def _patient_body(team: int, **changes: Any) -> dict[str, Any]:
    body = {
        "mrn": "DEMO-002",
        "given_name": "Rosa",
        "family_name": "Diaz",
        "phone": "+15551230999",
        "timezone": "America/Chicago",
        "language": "es",
        "care_team_id": team,
    }
    return {**body, **changes}


def test_enrolment_is_validated_once_for_the_api_and_the_form(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    make_patient(rt, admin["team"], mrn="DEMO-001", phone="+15551230001")
    twice = api("POST", "/api/v1/patients", _patient_body(admin["team"], mrn=" demo-001 "))
    assert twice.json == {"error": "conflict", "detail": "MRN is already enrolled (DEMO-001)"}
    same_phone = api("POST", "/api/v1/patients", _patient_body(admin["team"], phone="+1 555 123 0001"))
    assert same_phone.json == {"error": "conflict", "detail": "phone belongs to another patient"}
    # A bad value is answered before a clash: the request cannot be accepted whatever else it matches.
    bad = api("POST", "/api/v1/patients", _patient_body(admin["team"], mrn="DEMO-001", timezone="Mars/Base"))
    assert bad.status_code == 400 and bad.json["detail"][0]["field"] == "timezone"
    no_team = api("POST", "/api/v1/patients", _patient_body(999_999))
    assert no_team.json["detail"] == [{"field": "care_team_id", "message": "choose a care team"}]

    form = {k: str(v) for k, v in _patient_body(admin["team"], mrn="demo-001").items()}
    page = _form(client, admin, "/admin/patients/new", **form)
    assert page.status_code == 400 and "already enrolled (DEMO-001)" in page.get_data(as_text=True)
    assert api("POST", "/api/v1/patients", _patient_body(admin["team"])).status_code == 201
    with rt.sessions() as session:
        assert session.scalar(select(Patient.phone).where(Patient.mrn == "DEMO-002")) == "+15551230999"


def test_a_failed_commit_is_a_conflict_and_keeps_nothing(
    rt: Any, api: Any, client: Any, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent request with the same Idempotency-Key: both passed the replay check, the second fails on
    the unique key when the request's unit of work commits. The API blueprint's handler answers 409."""
    headers = {"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/care-teams", json={"name": "First", "timezone": "UTC"}, headers=headers)
    assert first.status_code == 201
    monkeypatch.setattr(idempotency, "replay", lambda *args, **kwargs: None)  # the race: not seen yet
    second = client.post("/api/v1/care-teams", json={"name": "Second", "timezone": "UTC"}, headers=headers)
    assert second.status_code == 409
    assert second.json == {"error": "conflict", "detail": "a concurrent request changed this; retry"}
    with rt.sessions() as session:
        names = set(session.scalars(select(CareTeam.name)))
    assert "First" in names and "Second" not in names


@pytest.mark.commits("the CLI builds its own runtime")
def test_a_pager_number_another_account_has_is_a_clash_everywhere(
    client: Any, rt: Any, api: Any, admin: dict[str, Any], settings_env: dict[str, str]
) -> None:
    """A page must reach one person: a new account with a colleague's pager number is refused (found by the
    review: the API answered "retry" to a clash no retry can pass, the page a 500, the CLI a traceback)."""
    from click.testing import CliRunner

    from pro_service.cli import main

    first = {"email": "one@example.org", "name": "One", "role": "nurse", "phone": "+1 617 555 0101"}
    assert api("POST", "/api/v1/staff", first).status_code == 201
    again = api("POST", "/api/v1/staff", {**first, "email": "two@example.org", "name": "Two"})
    assert again.json == {"error": "conflict", "detail": "another staff member has this phone"}
    page = _form(
        client,
        admin,
        "/admin/staff",
        email="three@example.org",
        name="Three",
        role="nurse",
        phone="+16175550101",
        password="wintergreen 7 harbour",
    )
    assert page.status_code == 400 and "another staff member has this phone" in page.get_data(as_text=True)
    command = ["create-user", "--email", "four@example.org", "--role", "nurse", "--phone", "+16175550101"]
    cli = CliRunner().invoke(main, command, env=settings_env, input="wintergreen 7 harbour\n" * 2)
    assert cli.exit_code != 0 and "another staff member has this phone" in cli.output
    with rt.sessions() as session:
        assert session.scalars(select(StaffUser.email).where(StaffUser.phone == "+16175550101")).all() == [
            "one@example.org"
        ]


def _live_shifts(rt: Any, staff_id: int) -> list[tuple[Any, Any]]:
    from pro_service.models import OnCallShift

    with rt.sessions() as session:
        rows = session.execute(
            select(OnCallShift.starts_at, OnCallShift.ends_at).where(
                OnCallShift.staff_id == staff_id, OnCallShift.ends_at > rt.now()
            )
        )
        return list(rows.tuples())


def test_a_deactivated_account_leaves_every_rota_whichever_side_deactivates_it(
    client: Any, rt: Any, api: Any, admin: dict[str, Any]
) -> None:
    """No inactive account on a rota (the rule both sides share): its shift in progress ends now and later
    ones go, so the rota shows the gap rather than a level whose pages silently reach nobody."""
    other = make_staff(rt, email="lee@example.org", team_id=admin["team"])
    for person in (admin["nurse"], other):
        assert _api_shift(api, rt, admin["team"], person, 1, -1).status_code == 201  # on call now
        assert _api_shift(api, rt, admin["team"], person, 2, 24).status_code == 201
        assert len(_live_shifts(rt, person)) == 2

    assert api("PATCH", f"/api/v1/staff/{admin['nurse']}", {"active": False}).status_code == 200
    assert _live_shifts(rt, admin["nurse"]) == []

    page = _form(client, admin, f"/admin/staff/{other}/active", active="no")
    assert page.status_code == 302
    assert "2 current or future shift(s) taken off the rota" in client.get(page.location).get_data(
        as_text=True
    )
    assert _live_shifts(rt, other) == []
