"""Administrator forms question what they should (issue 14, item 4): shifts that overlap, run over a day or
are already over; removing a member still on the rota; an MRN enrolled twice in another case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import AuditLog, CareTeamMember, OnCallShift, StaffRole
from tests.browser.support import csrf_token, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def team(client: Any, rt: Any) -> dict[str, Any]:
    team_id = make_team(rt)
    nurse = make_staff(rt, email="kim@example.org", team_id=team_id)
    other = make_staff(rt, email="lee@example.org", name="Nurse Lee", team_id=team_id)
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    return {"id": team_id, "nurse": nurse, "other": other, "token": csrf_token(client, "/admin/")}


def _local(rt: Any, delta: timedelta) -> str:
    """A datetime-local value in the team's zone (America/New_York), `delta` from now."""
    from zoneinfo import ZoneInfo

    return (rt.now() + delta).astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M")


def _shift(client: Any, team: dict[str, Any], staff: int, start: str, end: str, **extra: str) -> Any:
    data = {
        "csrf_token": team["token"],
        "staff_id": str(staff),
        "level": "1",
        "starts_at": start,
        "ends_at": end,
    }
    return client.post(f"/admin/teams/{team['id']}/shifts", data={**data, **extra})


def _shifts(rt: Any, team_id: int) -> list[OnCallShift]:
    with rt.sessions() as session:
        return list(session.scalars(select(OnCallShift).where(OnCallShift.care_team_id == team_id)))


def test_a_past_shift_is_refused_and_unusual_ones_need_confirming(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    past = _shift(client, team, team["nurse"], _local(rt, timedelta(days=-2)), _local(rt, timedelta(days=-1)))
    assert past.status_code == 400 and "already over" in past.get_data(as_text=True)

    day = (_local(rt, timedelta(hours=1)), _local(rt, timedelta(hours=13)))
    assert _shift(client, team, team["nurse"], *day).status_code == 302
    overlap = _shift(client, team, team["other"], *day)
    page = overlap.get_data(as_text=True)
    assert overlap.status_code == 409 and "overlaps a level-1 shift of Nurse Kim" in page
    assert 'name="confirm"' in page and len(_shifts(rt, team["id"])) == 1  # nothing saved yet
    assert _shift(client, team, team["other"], *day, confirm="yes").status_code == 302
    assert len(_shifts(rt, team["id"])) == 2

    month = _shift(client, team, team["nurse"], _local(rt, timedelta(days=2)), _local(rt, timedelta(days=30)))
    assert month.status_code == 409 and "lasts 672 hours" in month.get_data(as_text=True)

    # The rota page shows the coverage ahead: the overlap just confirmed, and the gaps around the shift.
    rota = client.get(f"/admin/teams/{team['id']}").get_data(as_text=True)
    assert "Coverage, next 14 days" in rota and "Overlap</strong> Nurse Kim and Nurse Lee" in rota
    assert rota.count("<strong>Gap</strong>") == 2  # before the shift starts, and after it ends


def test_removing_a_member_on_the_rota_asks_then_takes_them_off_it(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    _shift(client, team, team["nurse"], _local(rt, timedelta(hours=-1)), _local(rt, timedelta(hours=5)))
    _shift(client, team, team["nurse"], _local(rt, timedelta(days=1)), _local(rt, timedelta(days=1, hours=8)))
    path = f"/admin/teams/{team['id']}/members/{team['nurse']}/remove"
    asked = client.post(path, data={"csrf_token": team["token"]})
    page = asked.get_data(as_text=True)
    assert (
        asked.status_code == 409
        and "2 current or future shifts" in page
        and "Remove and take off the rota" in page
    )
    with rt.sessions() as session:
        assert session.get(CareTeamMember, (team["id"], team["nurse"])) is not None

    done = client.post(path, data={"csrf_token": team["token"], "confirm": "yes"})
    assert done.status_code == 302
    now = rt.now()
    remaining = _shifts(rt, team["id"])
    assert len(remaining) == 1 and remaining[0].ends_at <= now + timedelta(
        seconds=5
    )  # in progress: ended now
    with rt.sessions() as session:
        assert session.get(CareTeamMember, (team["id"], team["nurse"])) is None
        row = session.scalar(select(AuditLog).where(AuditLog.action == "remove_team_member"))
        assert row is not None and (row.detail["shifts_removed"], row.detail["shifts_ended"]) == (1, 1)

    # Someone with no shifts is removed at once.
    plain = client.post(
        f"/admin/teams/{team['id']}/members/{team['other']}/remove", data={"csrf_token": team["token"]}
    )
    assert plain.status_code == 302


def test_an_mrn_differing_only_in_case_is_the_same_patient(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    make_patient(rt, team["id"], mrn="DEMO-001")
    form = {
        "csrf_token": csrf_token(client, "/admin/patients/new"),
        "mrn": " demo-001 ",
        "given_name": "Rosa",
        "family_name": "Diaz",
        "phone": "+1 555 123 0999",
        "timezone": "America/Chicago",
        "language": "es",
        "care_team_id": str(team["id"]),
        "sms_consent": "yes",
    }
    refused = client.post("/admin/patients/new", data=form)
    assert refused.status_code == 400 and "already enrolled (DEMO-001)" in refused.get_data(as_text=True)


def test_the_audit_browser_finds_by_mrn_name_action_and_date_and_exports_csv(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    ana = make_patient(rt, team["id"], mrn="MRN-ANA")
    other = make_patient(rt, team["id"], mrn="MRN-BOB", phone="+15551230002")
    for patient in (ana, other):
        assert client.get(f"/patients/{patient}").status_code == 200  # a view_patient row each
    by_mrn = client.get("/admin/audit", query_string={"patient": "mrn-ana", "action": "view_patient"})
    page = by_mrn.get_data(as_text=True)
    assert by_mrn.status_code == 200 and "MRN-ANA Ana Lopez" in page and "MRN-BOB" not in page
    assert "Ada Admin" in page  # who, by name
    assert "UTC</time>" in page and "data-local>" in page  # UTC without script; the reader's zone with it
    today = rt.now().date().isoformat()
    dated = client.get("/admin/audit", query_string={"from": today, "to": today, "actor": "boss@example.org"})
    assert "MRN-BOB" in dated.get_data(as_text=True)
    by_name = client.get("/admin/audit", query_string={"actor": "ada", "action": "view_patient"})
    assert "MRN-ANA" in by_name.get_data(as_text=True)  # staff found by part of their name
    nobody_named = client.get("/admin/audit", query_string={"actor": "100%_no such"}).get_data(as_text=True)
    assert "Nothing recorded for this filter" in nobody_named  # % and _ are literal, not wildcards
    past = client.get("/admin/audit", query_string={"to": "2000-01-01"}).get_data(as_text=True)
    assert "Nothing recorded for this filter" in past
    nobody = client.get("/admin/audit", query_string={"patient": "no such patient"}).get_data(as_text=True)
    assert "Nothing recorded for this filter" in nobody  # a search that matches nobody never shows everything
    assert client.get("/admin/audit", query_string={"from": "not-a-date"}).status_code == 200

    export = client.get("/admin/audit.csv", query_string={"patient": "MRN-ANA"})
    lines = export.get_data(as_text=True).strip().splitlines()
    export.close()  # a streamed response: closing it ends the request (and returns its connection)
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert lines[0].startswith("id,at_utc,actor,action") and len(lines) >= 2
    assert all(f",{ana}," in line for line in lines[1:])
    with rt.sessions() as session:
        rows = {r.action: r.detail for r in session.scalars(select(AuditLog).order_by(AuditLog.id))}
    # The search is kept as the patients it matched, never as the name typed.
    assert rows["export_audit_log"]["filters"] == {"patient_ids": [ana]}
    assert "view_audit_log" in rows


def test_the_audit_export_never_hands_a_spreadsheet_a_formula(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    from pro_service.services.audit import record

    with rt.unit_of_work() as session:
        record(session, actor='=HYPERLINK("http://x")', action="view_patient", subject=("patient", "@1"))
    export = client.get("/admin/audit.csv")
    lines = export.get_data(as_text=True).splitlines()
    export.close()  # a streamed response: closing it ends the request (and returns its connection)
    row = next(line for line in lines if "HYPERLINK" in line)
    assert ',"\'=HYPERLINK(""http://x"")",' in row and ",'@1," in row


def test_the_patient_form_names_every_problem_at_once_at_its_field(
    client: Any, rt: Any, team: dict[str, Any]
) -> None:
    make_patient(rt, team["id"], mrn="DEMO-001")
    form = {
        "csrf_token": csrf_token(client, "/admin/patients/new"),
        "mrn": "demo-001",
        "given_name": " ",
        "family_name": "Diaz",
        "phone": "12",
        "timezone": "Mars/Olympus",
        "language": "es",
        "care_team_id": str(team["id"]),
        "usual_pain": "11",
    }
    page = client.post("/admin/patients/new", data=form)
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "Not saved: 5 things need fixing." in html
    for field in ("mrn", "given_name", "phone", "timezone", "usual_pain"):
        assert f'href="#{field}"' in html, field  # the summary links to the field
        assert f'id="{field}-error"' in html, field  # the message under it
    assert 'id="phone" name="phone"' in html and 'aria-describedby="phone-error phone-hint"' in html
    assert html.count('aria-invalid="true"') == 5
    assert 'id="family_name-error"' not in html  # a good field is not marked
