"""The request's unit of work on the staff pages (issue 13, web/unit_of_work.py): the admin and dashboard
views never commit. A form a service refuses (400) leaves nothing in the database; one that succeeds (302) is
there for a fresh session; a refusal that must be kept (the audit row of a record outside the nurse's scope)
is committed by its service although the answer (403, 400) rolls the rest of the request back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from pro_service.models import AuditLog, CareTeam, OnCallShift, PatientProfile, Schedule, StaffRole
from tests.browser.support import csrf_token, login, make_staff
from tests.integration.helpers import make_patient, make_team, make_ward

pytestmark = pytest.mark.integration


def _audit_count(rt: Any, action: str, patient_id: int | None = None) -> int:
    """Rows of `action` as a fresh session sees them (committed, never the request's own session)."""
    query = select(func.count()).select_from(AuditLog).where(AuditLog.action == action)
    if patient_id is not None:
        query = query.where(AuditLog.patient_id == patient_id)
    with rt.sessions() as session:
        return int(session.scalar(query) or 0)


@pytest.fixture
def admin(client: Any, rt: Any) -> str:
    make_staff(rt, email="ada@example.org", name="Ada Admin", role=StaffRole.ADMIN)
    login(client, "ada@example.org")
    return csrf_token(client, "/admin/")


def test_a_refused_form_writes_nothing_and_a_saved_one_is_committed(client: Any, rt: Any, admin: str) -> None:
    team_id = make_team(rt)
    form = {"csrf_token": admin, "name": "Renamed ward", "phone": "+1 555 0100", "acute_oncology_phone": ""}
    refused = client.post(f"/admin/teams/{team_id}", data={**form, "timezone": "Mars/Olympus"})
    assert refused.status_code == 400 and "Not saved." in refused.get_data(as_text=True)
    with rt.sessions() as session:
        team = session.get(CareTeam, team_id)
        assert team is not None and team.name == "Breast oncology" and team.timezone == "America/New_York"
    assert _audit_count(rt, "update_care_team") == 0

    saved = client.post(f"/admin/teams/{team_id}", data={**form, "timezone": "America/Chicago"})
    assert saved.status_code == 302 and saved.headers["Location"] == f"/admin/teams/{team_id}"
    with rt.sessions() as session:
        team = session.get(CareTeam, team_id)
        assert team is not None and team.name == "Renamed ward" and team.timezone == "America/Chicago"
    assert _audit_count(rt, "update_care_team") == 1


def test_deleting_a_schedule_and_a_shift_is_committed_with_its_audit_row(
    client: Any, rt: Any, admin: str
) -> None:
    team_id = make_team(rt)
    patient_id = make_patient(rt, team_id)
    nurse = make_staff(rt, email="kim@example.org", team_id=team_id)
    created = client.post(
        f"/admin/patients/{patient_id}/schedules",
        data={
            "csrf_token": admin,
            "instrument": "sre-weekly",
            "days": ["MO"],
            "time": "10:00",
            "start_date": "2025-01-06",
            "active": "yes",
        },
    )
    assert created.status_code == 302
    now = rt.now()
    with rt.unit_of_work() as session:
        schedule_id = session.scalar(select(Schedule.id).where(Schedule.patient_id == patient_id))
        shift = OnCallShift(
            care_team_id=team_id, staff_id=nurse, level=1, starts_at=now, ends_at=now + timedelta(hours=8)
        )
        session.add(shift)
        session.flush()
        shift_id = shift.id
    assert schedule_id is not None

    gone = client.post(
        f"/admin/patients/{patient_id}/schedules/{schedule_id}/delete", data={"csrf_token": admin}
    )
    assert gone.status_code == 302
    off = client.post(f"/admin/teams/{team_id}/shifts/{shift_id}/delete", data={"csrf_token": admin})
    assert off.status_code == 302
    with rt.sessions() as session:
        assert session.get(Schedule, schedule_id) is None and session.get(OnCallShift, shift_id) is None
    assert _audit_count(rt, "delete_schedule", patient_id) == 1
    assert _audit_count(rt, "delete_on_call_shift") == 1
    # A page view's audit row is committed by the request too (the view itself no longer commits).
    assert client.get(f"/admin/patients/{patient_id}/schedules").status_code == 200
    assert _audit_count(rt, "view_patient", patient_id) == 1


def test_a_scope_refusal_keeps_its_audit_row_and_nothing_else(client: Any, rt: Any) -> None:
    ward = make_ward(rt)
    make_staff(rt, email="kim@example.org", team_id=ward["team"])
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    outside = ward["p2"]  # the other team's patient

    edit = client.post(f"/patients/{outside}/profile", data={"csrf_token": token, "usual_pain": "3"})
    assert edit.status_code == 403 and "break" in edit.get_data(as_text=True).lower()
    with rt.sessions() as session:
        assert session.get(PatientProfile, outside) is None  # nothing of the refused form was written
    assert _audit_count(rt, "scope_refused", outside) == 1  # but the refusal itself is kept

    short = client.post(f"/patients/{outside}/break-glass", data={"csrf_token": token, "reason": "need"})
    assert short.status_code == 400
    assert _audit_count(rt, "scope_refused", outside) == 2
    assert _audit_count(rt, "break_glass", outside) == 0  # no grant recorded ...
    assert client.get(f"/patients/{outside}").status_code == 403  # ... and none given
    assert _audit_count(rt, "view_patient", outside) == 0

    reason = "Covering the palliative team's phone tonight"
    opened = client.post(f"/patients/{outside}/break-glass", data={"csrf_token": token, "reason": reason})
    assert opened.status_code == 302 and _audit_count(rt, "break_glass", outside) == 1
    assert client.get(f"/patients/{outside}").status_code == 200
    assert _audit_count(rt, "view_patient", outside) == 1
