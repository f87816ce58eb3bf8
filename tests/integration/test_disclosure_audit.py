"""The disclosure audit (issue 15, services/disclosure.py) on the real database: every read path that shows
patients writes one `seen_<view>` row per patient shown, naming the actor, and none for a patient not shown;
a repeated poll inside the window writes nothing more; the audit browser answers "who saw this patient",
list views included, and its CSV carries the rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.models import AuditLog, StaffRole
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_ward

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    """Team A with p1 and p3, team B with p2; an urgent alert on p1 and p2; Kim nurses team A."""
    two = make_ward(rt)
    return {
        **two,
        "p3": make_patient(rt, two["team"], phone="+15551230003", mrn="MRN003"),
        "a1": insert_alert(rt, two["p1"]),
        "a2": insert_alert(rt, two["p2"]),
        "nurse": make_staff(rt, email="kim@example.org", team_id=two["team"]),
        "admin": make_staff(rt, email="ada@example.org", name="Ada Admin", role=StaffRole.ADMIN),
    }


def _seen(rt: Any, view: str) -> list[AuditLog]:
    with rt.sessions() as session:
        rows = list(
            session.scalars(select(AuditLog).where(AuditLog.action == f"seen_{view}").order_by(AuditLog.id))
        )
        session.expunge_all()
        return rows


def _context_actor(rt: Any, action: str) -> str:
    """The actor of the request's own row (a list's count, a search's query): the same person or token."""
    with rt.sessions() as session:
        actor = session.scalars(select(AuditLog.actor).where(AuditLog.action == action)).first()
    assert actor, f"no {action} row"
    return actor


def _patients(rows: list[AuditLog]) -> list[int | None]:
    return sorted(r.patient_id for r in rows if r.patient_id is not None)


# ------------------------------------------------------------------------------------------- REST API
def test_an_api_list_records_each_patient_on_the_page_shown_and_no_other(
    api: Any, rt: Any, ward: dict[str, int]
) -> None:
    page = api("GET", "/api/v1/patients?page_size=2")
    assert page.status_code == 200
    shown = [p["id"] for p in page.json["patients"]]
    assert shown == [ward["p1"], ward["p2"]] and page.json["has_more"]
    rows = _seen(rt, "api_patients")
    assert _patients(rows) == sorted(shown)  # p3 matched but was on the next page: not disclosed
    actor = _context_actor(rt, "list_patients")
    assert all(r.actor == actor and r.subject_type == "patient" for r in rows)
    assert all(r.subject_id == str(r.patient_id) for r in rows)

    alerts = api("GET", f"/api/v1/alerts?patient_id={ward['p2']}")
    assert [a["id"] for a in alerts.json["alerts"]] == [ward["a2"]]
    assert _patients(_seen(rt, "api_alerts")) == [ward["p2"]]

    entries = api("GET", f"/api/v1/audit?patient_id={ward['p1']}")
    assert entries.status_code == 200 and entries.json["entries"]
    assert _patients(_seen(rt, "api_audit")) == [ward["p1"]]  # reading who saw p1 is itself disclosed


def test_an_idempotent_replay_records_the_patient_it_shows_again(
    client: Any, rt: Any, admin_token: str, ward: dict[str, int]
) -> None:
    path = f"/api/v1/alerts/{ward['a1']}/notes"
    headers = {"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "note-1"}
    first = client.post(path, json={"note": "Called, no answer"}, headers=headers)
    assert first.status_code == 201
    assert _seen(rt, "api_replay") == []  # the first answer is the note_alert row's
    again = client.post(path, json={"note": "Called, no answer"}, headers=headers)
    assert again.status_code == 201 and again.json == first.json
    [row] = _seen(rt, "api_replay")
    assert row.patient_id == ward["p1"] and row.detail["path"] == path
    assert row.actor == _context_actor(rt, "note_alert")


# ------------------------------------------------------------------------------------------------ FHIR
def test_a_fhir_search_records_the_patients_in_the_bundle(api: Any, rt: Any, ward: dict[str, int]) -> None:
    found = api("GET", "/fhir/Patient?identifier=MRN001,MRN003")
    assert found.status_code == 200
    bundle = found.get_json(force=True)
    assert sorted(int(e["resource"]["id"]) for e in bundle["entry"]) == [ward["p1"], ward["p3"]]
    rows = _seen(rt, "fhir_patient")
    assert _patients(rows) == [ward["p1"], ward["p3"]]
    assert {r.actor for r in rows} == {_context_actor(rt, "fhir_search_patient")}
    flags = api("GET", f"/fhir/Flag?patient={ward['p2']}")
    assert len(flags.get_json(force=True)["entry"]) == 1
    assert _patients(_seen(rt, "fhir_flag")) == [ward["p2"]]


# ------------------------------------------------------------------------------------- staff dashboard
def test_the_queue_poll_records_the_nurses_patients_once_per_window(
    client: Any, rt: Any, ward: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, "kim@example.org")
    assert client.get("/queue/poll?privacy=1").status_code == 200
    assert _seen(rt, "queue") == []  # a privacy screen shows no patient

    poll = client.get("/queue/poll")
    assert [a["id"] for a in poll.json["alerts"]] == [ward["a1"]]
    [row] = _seen(rt, "queue")
    assert row.patient_id == ward["p1"] and row.actor == f"staff:{ward['nurse']}"  # never p2, another team's
    assert row.detail["window_minutes"] == rt.settings.AUDIT_DISCLOSURE_WINDOW_MINUTES

    for _ in range(3):  # the watch screen's next polls (each a full answer: no version sent)
        assert client.get("/queue/poll").status_code == 200
    assert client.get("/").status_code == 200  # the page itself is the same screen
    assert len(_seen(rt, "queue")) == 1

    later = rt.now() + timedelta(minutes=rt.settings.AUDIT_DISCLOSURE_WINDOW_MINUTES, seconds=1)
    monkeypatch.setattr(rt, "clock", lambda: later)
    assert client.get("/queue/poll").status_code == 200
    rows = _seen(rt, "queue")
    assert len(rows) == 2 and rows[1].at == later and rows[1].patient_id == ward["p1"]

    # Another nurse's poll is her own disclosure, inside the same window.
    make_staff(rt, email="lee@example.org", name="Nurse Lee", team_id=ward["team"])
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, "lee@example.org")
    assert client.get("/queue/poll").status_code == 200
    assert len(_seen(rt, "queue")) == 3


def test_patient_search_and_handover_record_only_the_patients_listed(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    page = client.get("/patients?q=lopez").get_data(as_text=True)
    assert "MRN001" in page and "MRN003" in page and "MRN002" not in page
    rows = _seen(rt, "patient_search")
    assert _patients(rows) == [ward["p1"], ward["p3"]]
    assert {r.actor for r in rows} == {f"staff:{ward['nurse']}"}
    assert client.get("/patients?q=MRN003").status_code == 200  # another search, inside the window
    assert len(_seen(rt, "patient_search")) == 2

    handover = client.get("/handover").get_data(as_text=True)
    assert "MRN001" in handover and "MRN003" not in handover  # p3 has no alert
    assert _patients(_seen(rt, "handover")) == [ward["p1"]]


def test_the_audit_export_records_the_patients_it_names(client: Any, rt: Any, ward: dict[str, int]) -> None:
    login(client, "kim@example.org")
    client.get("/queue/poll")  # a seen_queue row about p1
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, "ada@example.org")
    export = client.get("/admin/audit.csv", query_string={"action": "seen_queue"})
    text = export.get_data(as_text=True)
    export.close()  # a streamed response: closing it ends the request
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(r["actor"], r["patient_id"]) for r in lines] == [(f"staff:{ward['nurse']}", str(ward["p1"]))]
    rows = _seen(rt, "audit_export")
    assert _patients(rows) == [ward["p1"]] and rows[0].actor == f"staff:{ward['admin']}"


def test_schedule_pages_are_audited_views(client: Any, rt: Any, ward: dict[str, int]) -> None:
    login(client, "ada@example.org")
    assert client.get(f"/admin/patients/{ward['p3']}/schedules").status_code == 200
    with rt.sessions() as session:
        row = session.scalars(select(AuditLog).where(AuditLog.patient_id == ward["p3"])).one()
    assert row.action == "view_patient" and row.detail == {"page": "admin_schedules"}
    assert row.actor == f"staff:{ward['admin']}"


@pytest.fixture(scope="module")
def outbox_app(settings: Any) -> Iterator[Any]:
    """The same database with the outbox backend, where the patient-phone simulator exists."""
    from pro_service import create_app, runtime_of

    flask_app = create_app(settings.model_copy(update={"SMS_BACKEND": "outbox"}))
    flask_app.testing = True
    yield flask_app
    runtime_of(flask_app).dispose()


@pytest.mark.commits("the simulator's reply is stored through the inbound webhook's own pool")
def test_the_simulator_records_its_picker_and_each_thread_poll(
    outbox_app: Any, rt: Any, ward: dict[str, int]
) -> None:
    client = outbox_app.test_client()
    login(client, "ada@example.org")
    assert client.get("/simulator/").status_code == 200
    picker = _seen(rt, "simulator")
    assert _patients(picker) == sorted([ward["p1"], ward["p2"], ward["p3"]])  # the list names them all
    assert {r.actor for r in picker} == {f"staff:{ward['admin']}"}
    for _ in range(2):
        assert client.get(f"/simulator/{ward['p2']}/thread").status_code == 200
    assert _patients(_seen(rt, "simulator_thread")) == [ward["p2"]]  # polled twice, once in the window


# ------------------------------------------------------------------------------------ the audit browser
def test_the_audit_browser_answers_who_saw_a_patient_including_lists(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    login(client, "kim@example.org")
    client.get("/queue/poll")  # Kim saw p1 in the queue (a list), nobody saw p3
    assert client.get(f"/alerts/{ward['a1']}").status_code == 200  # and opened the record
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, "ada@example.org")
    today = rt.now().date().isoformat()

    page = client.get("/admin/audit", query_string={"patient": "mrn001", "from": today, "to": today})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Who saw this patient" in html
    who = html.split('id="who-saw"', 1)[1].split("</section>", 1)[0]
    assert "Nurse Kim" in who and "seen queue" in who and "view alert" in who
    assert "MRN001 Ana Lopez" in who and "MRN003" not in who

    past = client.get("/admin/audit", query_string={"patient": "mrn001", "to": "2000-01-01"})
    assert "seen queue" not in past.get_data(as_text=True).split('id="who-saw"', 1)[1]  # dates narrow it
    nobody = client.get("/admin/audit", query_string={"patient": "MRN003"}).get_data(as_text=True)
    assert "Nobody saw a matching patient in this period." in nobody
    assert "Nurse Kim" not in nobody.split('id="who-saw"', 1)[1].split("</section>", 1)[0]

    # Reading the audit log showed p1 to the administrator: that is a disclosure too.
    assert _patients(_seen(rt, "audit_log")) == [ward["p1"]]
    assert {r.actor for r in _seen(rt, "audit_log")} == {f"staff:{ward['admin']}"}
