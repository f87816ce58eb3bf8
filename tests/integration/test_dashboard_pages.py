"""The nurse and admin pages on the real database: queue order and counts, alert actions, patients,
administration forms (enrolment, schedules, rota, staff), and the demo seed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from pro_service.models import (
    Alert,
    AlertStatus,
    CareTeamMember,
    CheckIn,
    OnCallShift,
    Patient,
    PatientStatus,
    Schedule,
    StaffRole,
    StaffUser,
)
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_ward

pytestmark = pytest.mark.integration


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    ward = make_ward(rt)
    team = ward["team"]
    return {
        **ward,
        "nurse": make_staff(rt, email="kim@example.org", team_id=team),
    }


def _join(rt: Any, staff_id: int, team_id: int) -> None:
    """Care-team scoping (services/access.py): a nurse sees another team's patients only as its member."""
    with rt.unit_of_work() as session:
        session.add(CareTeamMember(care_team_id=team_id, staff_id=staff_id))


def test_queue_is_most_urgent_first_then_oldest_with_counts(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    _join(rt, ward["nurse"], ward["other_team"])
    routine_old = insert_alert(
        rt, ward["p1"], category="new_bone_pain", urgency="routine", opened_minutes_ago=300
    )
    urgent_new = insert_alert(rt, ward["p2"], category="spinal_cord_compression", opened_minutes_ago=2)
    urgent_old = insert_alert(rt, ward["p1"], category="hypercalcemia", opened_minutes_ago=12)
    same_day = insert_alert(rt, ward["p2"], category="severe_pain", urgency="same_day", opened_minutes_ago=90)
    insert_alert(rt, ward["p1"], category="worsening_pain", urgency="routine", status=AlertStatus.RESOLVED)
    login(client, "kim@example.org")

    page = client.get("/").get_data(as_text=True)
    order = [int(i) for i in re.findall(r'data-alert-id="(\d+)"', page)]
    assert order == [urgent_old, urgent_new, same_day, routine_old]
    assert "Possible spinal cord compression" in page and "12 min" in page and "MRN002" in page
    assert "Palliative care" in page

    poll = client.get("/queue/poll").json
    assert poll["counts"] == {"urgent": 2, "same_day": 1, "routine": 1}
    assert [a["id"] for a in poll["alerts"]] == order
    assert poll["alerts"][0]["category"] == "Possible high calcium (hypercalcaemia)"

    by_team = client.get(f"/queue/poll?team={ward['other_team']}").json
    assert [a["id"] for a in by_team["alerts"]] == [urgent_new, same_day]
    assert by_team["counts"] == {"urgent": 1, "same_day": 1, "routine": 0}
    urgent_only = client.get("/queue/poll?urgency=urgent").json
    assert [a["id"] for a in urgent_only["alerts"]] == [urgent_old, urgent_new]


def test_alert_page_shows_why_contact_and_history(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Possible spinal cord compression" in page
    assert "yes my legs are numb" in page  # the patient's own words
    assert "6/9 Any NEW weakness" in page  # the question as sent
    assert "scc-neuro-or-bladder" in page and "sre v1" in page
    assert 'href="tel:+15551230001"' in page
    assert "Last 12 weeks" in page and "No check-ins in the last 12 weeks" in page
    for code, label in (("advised_emergency_care", "Advised emergency care"), ("no_action_needed", "")):
        assert f'value="{code}"' in page and label in page
    ref = client.get(f"/a/{_ref(rt, alert_id).lower()}")
    assert ref.status_code == 302 and ref.headers["Location"] == f"/alerts/{alert_id}"
    assert client.get("/alerts/999999").status_code == 404


def _ref(rt: Any, alert_id: int) -> str:
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.ref


def test_note_and_resolve_record_the_nurse(client: Any, rt: Any, ward: dict[str, int]) -> None:
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    assert (
        client.post(
            f"/alerts/{alert_id}/notes", data={"csrf_token": token, "note": "Called, no answer"}
        ).status_code
        == 302
    )
    no_outcome = client.post(f"/alerts/{alert_id}/resolve", data={"csrf_token": token})
    assert no_outcome.status_code == 302
    no_rag = client.post(
        f"/alerts/{alert_id}/resolve", data={"csrf_token": token, "outcome": "advised_emergency_care"}
    )
    assert no_rag.status_code == 302 and no_rag.headers["Location"] == f"/alerts/{alert_id}"
    resolved = client.post(
        f"/alerts/{alert_id}/resolve",
        data={"csrf_token": token, "outcome": "advised_emergency_care", "rag": "red", "note": "Sent to ED"},
    )
    assert resolved.status_code == 302 and resolved.headers["Location"] == "/"
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        assert alert.status == AlertStatus.RESOLVED and alert.outcome == "advised_emergency_care"
        assert alert.resolved_by_id == ward["nurse"] and alert.outcome_note == "Sent to ED"
        assert alert.outcome_rag == "red"
        kinds = [(e.kind, e.actor, e.actor_staff_id) for e in alert.events]
    actor = f"staff:{ward['nurse']}"
    assert ("note", actor, ward["nurse"]) in kinds and ("resolved", actor, ward["nurse"]) in kinds
    again = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token}, follow_redirects=True)
    assert "already resolved" in again.get_data(as_text=True)


def test_escalate_now_pages_the_next_level(
    client: Any, rt: Any, ward: dict[str, int], worker: Any, twilio_server: Any, live_server: str
) -> None:
    second = make_staff(
        rt, email="lead@example.org", name="Lead Lee", phone="+15557770002", team_id=ward["team"]
    )
    with rt.unit_of_work() as session:
        now = datetime.now(UTC)
        for level, staff in ((1, ward["nurse"]), (2, second)):
            session.add(
                OnCallShift(
                    care_team_id=ward["team"],
                    staff_id=staff,
                    level=level,
                    starts_at=now.replace(year=now.year - 1),
                    ends_at=now.replace(year=now.year + 1),
                )
            )
    alert_id = insert_alert(rt, ward["p1"])
    login(client, "kim@example.org")
    token = csrf_token(client, "/")
    first = client.post(f"/alerts/{alert_id}/escalate", data={"csrf_token": token}, follow_redirects=True)
    assert "Nobody could be paged" in first.get_data(as_text=True)  # level 1 (Kim) has no phone
    second_step = client.post(
        f"/alerts/{alert_id}/escalate", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Paged escalation step 2: Lead Lee" in second_step.get_data(as_text=True)
    page = twilio_server.state.wait_for_messages(1, timeout=20, to="+15557770002")[0]["body"]
    assert _ref(rt, alert_id) in page and "Ana" not in page
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.escalation_level == 2
        escalated = [e for e in alert.events if e.kind == "escalated"]
    assert [e.actor_staff_id for e in escalated] == [ward["nurse"], ward["nurse"]]
    # Issue 15: a manual escalation that paged someone holds the next one for a minute (no pager flood).
    third = client.post(f"/alerts/{alert_id}/escalate", data={"csrf_token": token}, follow_redirects=True)
    assert "you can page again in" in third.get_data(as_text=True)
    with rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.escalation_level == 2


def test_patient_search_and_page(client: Any, rt: Any, ward: dict[str, int]) -> None:
    _join(rt, ward["nurse"], ward["other_team"])  # "1230002" is the other team's patient's phone
    login(client, "kim@example.org")
    for query in ("lopez", "Ana Lo", "mrn00", "1230002"):
        page = client.get("/patients", query_string={"q": query}).get_data(as_text=True)
        assert "Lopez, Ana" in page, query
    nothing = client.get("/patients?q=zzz").get_data(as_text=True)
    assert "0 patients found" in nothing
    page = client.get(f"/patients/{ward['p1']}").get_data(as_text=True)
    assert "Adherence, last 12 weeks" in page and "Send the weekly check-in now" in page
    assert "Edit, pause or discharge" not in page  # nurses do not administer


def test_admin_enrols_a_patient_and_sets_a_schedule(client: Any, rt: Any, ward: dict[str, int]) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    token = csrf_token(client, "/admin/patients/new")
    form = {
        "csrf_token": token,
        "mrn": "MRN-900",
        "given_name": "Rosa",
        "family_name": "Diaz",
        "phone": "+1 555 123 0999",
        "timezone": "America/Chicago",
        "language": "es",
        "care_team_id": str(ward["team"]),
        "sms_consent": "yes",
    }
    bad = client.post("/admin/patients/new", data={**form, "phone": "12"})
    assert bad.status_code == 400 and "Not saved" in bad.get_data(as_text=True)
    created = client.post("/admin/patients/new", data=form)
    assert created.status_code == 302
    with rt.sessions() as session:
        patient = session.scalar(select(Patient).where(Patient.mrn == "MRN-900"))
        assert patient is not None and patient.phone == "+15551230999" and patient.language == "es"
    assert created.headers["Location"] == f"/admin/patients/{patient.id}/schedules"
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "Quiet hours: 21:00–08:00" in page

    no_days = client.post(
        f"/admin/patients/{patient.id}/schedules",
        data={"csrf_token": token, "instrument": "sre-weekly", "time": "10:00", "start_date": "2025-01-06"},
    )
    assert no_days.status_code == 400 and "tick at least one weekday" in no_days.get_data(as_text=True)
    saved = client.post(
        f"/admin/patients/{patient.id}/schedules",
        data={
            "csrf_token": token,
            "instrument": "sre-weekly",
            "days": ["TH", "MO"],
            "time": "10:30",
            "start_date": "2025-01-06",
            "active": "yes",
        },
        follow_redirects=True,
    )
    assert "Monday, Thursday at 10:30" in saved.get_data(as_text=True)
    with rt.sessions() as session:
        schedule = session.scalar(select(Schedule).where(Schedule.patient_id == patient.id))
        assert schedule is not None
        assert schedule.rrule == "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=10;BYMINUTE=30;BYSECOND=0"
        assert schedule.active

    paused = client.post(
        f"/admin/patients/{patient.id}/status", data={"csrf_token": token, "action": "pause"}
    )
    assert paused.status_code == 302
    with rt.sessions() as session:
        assert session.get(Patient, patient.id).status == PatientStatus.PAUSED  # type: ignore[union-attr]


def test_rota_times_are_entered_in_the_team_zone_and_stored_in_utc(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    token = csrf_token(client, "/admin/")
    response = client.post(
        f"/admin/teams/{ward['team']}/shifts",
        data={
            "csrf_token": token,
            "staff_id": str(ward["nurse"]),
            "level": "1",
            "starts_at": "2030-07-01T08:00",
            "ends_at": "2030-07-01T20:00",
        },
    )
    assert response.status_code == 302
    with rt.sessions() as session:
        shift = session.scalar(select(OnCallShift).where(OnCallShift.care_team_id == ward["team"]))
        assert shift is not None
        assert shift.starts_at == datetime(2030, 7, 1, 12, 0, tzinfo=UTC)  # 08:00 EDT
        assert shift.ends_at == datetime(2030, 7, 2, 0, 0, tzinfo=UTC)
    backwards = client.post(
        f"/admin/teams/{ward['team']}/shifts",
        data={
            "csrf_token": token,
            "staff_id": str(ward["nurse"]),
            "level": "1",
            "starts_at": "2030-07-01T20:00",
            "ends_at": "2030-07-01T08:00",
        },
    )
    assert backwards.status_code == 400 and "must be after the start" in backwards.get_data(as_text=True)


def test_admin_manages_staff_accounts(app: Any, client: Any, rt: Any, ward: dict[str, int]) -> None:
    make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin")
    login(client, "boss@example.org")
    token = csrf_token(client, "/admin/staff")
    created = client.post(
        "/admin/staff",
        data={
            "csrf_token": token,
            "email": "New@Example.org",
            "name": "Noa New",
            "role": "nurse",
            "phone": "+15557770009",
            "password": "long enough password",
        },
    )
    assert created.status_code == 302
    with rt.sessions() as session:
        new = session.scalar(select(StaffUser).where(StaffUser.email == "new@example.org"))
        assert new is not None and new.role == StaffRole.NURSE
    reset = client.post(f"/admin/staff/{new.id}/password", data={"csrf_token": token})
    password = re.search(r'class="password-once"><code>([^<]+)</code>', reset.get_data(as_text=True))
    assert password is not None
    login(app.test_client(), "new@example.org", password.group(1))
    assert (
        client.post(f"/admin/staff/{new.id}/active", data={"csrf_token": token, "active": "no"}).status_code
        == 302
    )
    with rt.sessions() as session:
        assert session.get(StaffUser, new.id).active is False  # type: ignore[union-attr]


def test_simulator_is_only_there_with_the_outbox(client: Any, rt: Any, ward: dict[str, int]) -> None:
    login(client, "kim@example.org")
    assert client.get("/simulator/").status_code == 404  # SMS_BACKEND=twilio in these tests
    assert "Phone simulator" not in client.get("/").get_data(as_text=True)


def test_demo_seed_gives_a_live_queue_and_is_idempotent(client: Any, rt: Any) -> None:
    from pro_service.demo import seed

    list(seed(rt))
    with rt.sessions() as session:
        counts = (
            session.scalar(select(func.count()).select_from(Alert)),
            session.scalar(select(func.count()).select_from(CheckIn)),
        )
        urgencies = set(session.scalars(select(Alert.urgency).where(Alert.status != AlertStatus.RESOLVED)))
    assert urgencies == {"urgent", "same_day", "routine"}
    list(seed(rt))
    with rt.sessions() as session:
        assert counts == (
            session.scalar(select(func.count()).select_from(Alert)),
            session.scalar(select(func.count()).select_from(CheckIn)),
        )
    login(client, "nurse@demo.local", "demo-password-123")
    page = client.get("/").get_data(as_text=True)
    assert "Possible spinal cord compression" in page and "Linda Smith" in page


def test_new_urgent_evidence_after_an_acknowledgement_shows_on_the_queue_and_the_alert(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    from alerts.rules import Evidence, Finding, Urgency
    from pro_service.services import alert_lifecycle, triage

    def finding(words: str) -> Finding:
        evidence = Evidence(item_code=None, question=None, raw_text=words, value=words)
        return Finding(
            "spinal_cord_compression", Urgency.URGENT, "reading.neuro", "test", "symptoms", 1, (evidence,)
        )

    with rt.unit_of_work() as session:
        alert = triage.upsert_alert(session, rt, ward["p1"], finding("legs numb"), message_id=901)
        assert alert is not None
        alert_lifecycle.acknowledge(session, alert, staff_id=None, actor="test", now=rt.now(), via="test")
        alert_id = alert.id
    login(client, "kim@example.org")
    assert "New since acknowledged" not in client.get("/").get_data(as_text=True)
    with rt.unit_of_work() as session:
        again = triage.upsert_alert(session, rt, ward["p1"], finding("now I cannot stand"), message_id=902)
        assert again is not None and again.id == alert_id and again.notice == 1
    queue = client.get("/").get_data(as_text=True)
    assert "New since acknowledged" in queue and f'data-alert-id="{alert_id}"' in queue
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'id="alert-new-evidence"' in page and "now I cannot stand" in page
