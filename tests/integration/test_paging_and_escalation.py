"""Urgent alerts page the on-call nurse (no PHI), escalate while nobody acknowledges, and stop on ACK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.rules import Evidence, Finding, Urgency
from pro_service.models import Alert, AlertEvent, CareTeamMember, Message, OnCallShift
from pro_service.services import triage
from tests.conftest import wait_for
from tests.integration.helpers import make_nurse, make_patient, make_team

pytestmark = pytest.mark.integration
NURSE_1, NURSE_2, PATIENT_PHONE = "+15557770001", "+15557770002", "+15551230001"


def _finding(urgency: Urgency = Urgency.URGENT, category: str = "spinal_cord_compression") -> Finding:
    return Finding(
        category=category,
        urgency=urgency,
        rule_id="scc-neuro-or-bladder",
        rationale="test",
        ruleset="sre",
        ruleset_version=1,
        evidence=(Evidence(item_code="neuro", question="6/9 Any NEW weakness…", raw_text="yes", value=True),),
    )


@pytest.fixture
def rota(rt: Any) -> dict[str, int]:
    team = make_team(rt)
    patient = make_patient(rt, team)
    first = make_nurse(rt, team, email="one@example.org", phone=NURSE_1)
    second = make_nurse(rt, team, email="two@example.org", phone=NURSE_2)
    now = datetime.now(UTC)
    with rt.unit_of_work() as session:
        session.add_all(
            [
                OnCallShift(
                    care_team_id=team,
                    staff_id=first,
                    level=1,
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=12),
                ),
                OnCallShift(
                    care_team_id=team,
                    staff_id=second,
                    level=2,
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=12),
                ),
            ]
        )
    return {"team": team, "patient": patient, "first": first, "second": second}


def _pages(rt: Any) -> list[tuple[str, str]]:
    with rt.sessions() as session:
        rows = session.scalars(select(Message).where(Message.kind == "page").order_by(Message.id))
        return [(m.to_number, m.body) for m in rows]


def _open_alert(
    rt: Any, patient: int, finding: Finding | None = None, *, message_id: int | None = None
) -> Alert:
    with rt.unit_of_work() as session:
        alert = triage.upsert_alert(session, rt, patient, finding or _finding(), message_id=message_id)
        assert alert is not None
        return alert


def _upsert(rt: Any, patient: int, finding: Finding) -> Alert | None:
    with rt.unit_of_work() as session:
        return triage.upsert_alert(session, rt, patient, finding)


def test_urgent_alert_pages_level_one_then_escalates_to_level_two(rt: Any, rota: dict[str, int]) -> None:
    from pro_service.services import sweeps

    alert = _open_alert(rt, rota["patient"])
    assert [to for to, _ in _pages(rt)] == [NURSE_1]
    body = _pages(rt)[0][1]
    assert "URGENT" in body and alert.ref in body and f"ACK {alert.ref}" in body
    for phi in ("Ana", "Lopez", "MRN001", PATIENT_PHONE, "spinal", "neuro", "weak"):
        assert phi not in body
    with rt.sessions() as session:
        kinds = [
            m.kind for m in session.scalars(select(Message).where(Message.patient_id == rota["patient"]))
        ]
    assert kinds == ["safety"]

    now = datetime.now(UTC)
    sweeps.tick(rt, now + timedelta(minutes=10))  # before the deadline: nothing more
    assert len(_pages(rt)) == 1
    sweeps.tick(rt, now + timedelta(minutes=16))
    assert [to for to, _ in _pages(rt)] == [NURSE_1, NURSE_2]
    sweeps.tick(rt, now + timedelta(minutes=16))  # the same tick again (two beats): no second page
    assert len(_pages(rt)) == 2
    sweeps.tick(rt, now + timedelta(minutes=32))  # top of the rota: page the top level again
    assert [to for to, _ in _pages(rt)] == [NURSE_1, NURSE_2, NURSE_2]


def test_scoring_twice_opens_one_alert_and_pages_once(rt: Any, rota: dict[str, int]) -> None:
    _open_alert(rt, rota["patient"])
    _open_alert(rt, rota["patient"])
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
        assert session.scalar(select(func.count()).select_from(Message).where(Message.kind == "safety")) == 1
    assert len(_pages(rt)) == 1


def test_urgency_rises_and_never_falls(rt: Any, rota: dict[str, int]) -> None:
    _open_alert(rt, rota["patient"], _finding(Urgency.ROUTINE, "new_bone_pain"))
    assert _pages(rt) == []  # routine: dashboard only
    alert = _open_alert(rt, rota["patient"], _finding(Urgency.SAME_DAY, "new_bone_pain"))
    assert alert.urgency == "same_day"
    alert = _open_alert(rt, rota["patient"], _finding(Urgency.ROUTINE, "new_bone_pain"))
    assert alert.urgency == "same_day"
    with rt.sessions() as session:
        events = [e.kind for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
    assert events[:2] == ["opened", "urgency_raised"]


def test_nobody_on_call_pages_the_whole_team(rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    make_nurse(rt, team, email="a@example.org", phone=NURSE_1)
    make_nurse(rt, team, email="b@example.org", phone=NURSE_2)
    _open_alert(rt, patient)
    assert sorted(to for to, _ in _pages(rt)) == [NURSE_1, NURSE_2]
    with rt.sessions() as session:
        assert session.scalar(select(AlertEvent.kind).where(AlertEvent.kind == "no_on_call")) == "no_on_call"


def test_ack_from_the_nurses_phone_stops_escalation_and_from_another_number_does_not(
    rt: Any, rota: dict[str, int], sms: Any, worker: Any, twilio_server: Any, api: Any
) -> None:
    from pro_service.services import sweeps

    alert = _open_alert(rt, rota["patient"])
    # A patient (or anyone not registered as staff) texting ACK changes nothing.
    assert sms(PATIENT_PHONE, f"ACK {alert.ref}").status_code == 200
    assert sms("+15559998888", f"ACK {alert.ref}").status_code == 200
    wait_for(
        lambda: any(
            a["category"] == "patient_message"
            for a in api("GET", f"/api/v1/alerts?patient_id={rota['patient']}").json["alerts"]
        ),
        message="the patient's text to be processed",
    )
    assert api("GET", f"/api/v1/alerts/{alert.id}").json["status"] == "open"

    assert sms(NURSE_1, f"ack {alert.ref.lower()}").status_code == 200
    acknowledged = wait_for(
        lambda: (a := api("GET", f"/api/v1/alerts/{alert.id}").json)["status"] == "acknowledged" and a,
        message="the ACK",
    )
    assert acknowledged["events"][-1]["detail"] == {"via": "sms"}
    reply = twilio_server.state.wait_for_messages(2, timeout=20, to=NURSE_1)[-1]["body"]
    assert f"alert {alert.ref} acknowledged" in reply
    sweeps.tick(rt, datetime.now(UTC) + timedelta(minutes=20))
    assert [to for to, _ in _pages(rt)] == [NURSE_1]  # no escalation after the ACK


def test_same_day_alert_outside_working_hours_pages_the_on_call_at_once(rt: Any) -> None:
    # Same day means within 24 hours, every day: a Saturday-evening alert is not left for Monday.
    from pro_service.services import sweeps

    team = make_team(rt, timezone="America/New_York")
    patient = make_patient(rt, team)
    make_nurse(rt, team, phone=NURSE_1)
    saturday_night = datetime(2026, 6, 6, 23, 0, tzinfo=UTC)  # 19:00 Saturday in New York
    rt.clock = lambda: saturday_night
    alert = _open_alert(rt, patient, _finding(Urgency.SAME_DAY, "severe_pain"))
    assert [to for to, _ in _pages(rt)] == [NURSE_1]
    assert alert.next_escalation_at == saturday_night + timedelta(minutes=120)
    later = saturday_night + timedelta(minutes=121)
    rt.clock = lambda: later
    sweeps.tick(rt, later)
    assert len(_pages(rt)) == 2  # nobody acknowledged: paged again the same evening


def test_acknowledge_and_resolve_through_the_api(rt: Any, rota: dict[str, int], api: Any) -> None:
    alert = _open_alert(rt, rota["patient"])
    assert api("POST", f"/api/v1/alerts/{alert.id}/acknowledge").json["status"] == "acknowledged"
    bad = api("POST", f"/api/v1/alerts/{alert.id}/resolve", {"outcome": "magic"})
    assert bad.status_code == 400 and bad.json["error"] == "validation_failed"
    noted = api("POST", f"/api/v1/alerts/{alert.id}/notes", {"note": "called, no answer"})
    assert noted.status_code == 201
    done = api(
        "POST",
        f"/api/v1/alerts/{alert.id}/resolve",
        {"outcome": "advised_emergency_care", "rag": "red", "note": "sent to ED"},
    ).json
    assert (done["status"], done["outcome"], done["outcome_rag"], done["outcome_note"]) == (
        "resolved",
        "advised_emergency_care",
        "red",
        "sent to ED",
    )
    assert [e["kind"] for e in done["events"]][-3:] == ["acknowledged", "note", "resolved"]
    again = api("POST", f"/api/v1/alerts/{alert.id}/resolve", {"outcome": "no_action_needed", "rag": "green"})
    assert again.status_code == 409
    # Evidence already resolved never raises again; new evidence opens a new alert linked to the old one.
    assert _upsert(rt, rota["patient"], _finding()) is None
    fresh = _open_alert(rt, rota["patient"], message_id=424242)
    assert fresh.id != alert.id and fresh.previous_alert_id == alert.id


def test_an_alert_that_can_page_nobody_says_so_and_keeps_trying(rt: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    with rt.unit_of_work() as session:
        from pro_service.models import StaffRole, StaffUser

        staff = StaffUser(email="nophone@example.org", name="No Phone", role=StaffRole.NURSE)
        session.add(staff)
        session.flush()
        session.add(CareTeamMember(care_team_id=team, staff_id=staff.id))
    _open_alert(rt, patient)
    assert _pages(rt) == []
    with rt.sessions() as session:
        kinds = [e.kind for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
        assert "nobody_paged" in kinds
        alert = session.scalar(select(Alert))
        assert alert is not None and alert.next_escalation_at is not None
