"""The clinical profile on the real database: the service (validation, audit, the baseline scoring reads),
editing it from the admin pages, the API and the nurse's page, the team's acute oncology number, and the
alert page's "For the call" section with resolving on a RAG grade."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.rules import Baseline
from pro_service.models import (
    Alert,
    Answer,
    AnswerStatus,
    AuditLog,
    CareTeam,
    CheckIn,
    CheckInStatus,
    Direction,
    Message,
    MessageKind,
    MessageStatus,
    Patient,
    PatientProfile,
    StaffRole,
)
from pro_service.services import clinical_profile
from pro_service.services.triage import scoring_inputs
from tests.browser.support import csrf_token, insert_alert, login, make_staff
from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


@pytest.fixture
def ward(rt: Any) -> dict[str, int]:
    team = make_team(rt)
    return {
        "team": team,
        "patient": make_patient(rt, team),
        "nurse": make_staff(rt, email="kim@example.org", team_id=team),
        "admin": make_staff(rt, email="boss@example.org", role=StaffRole.ADMIN, name="Ada Admin"),
    }


def _update(rt: Any, patient_id: int, changes: dict[str, Any], staff_id: int | None = None) -> list[str]:
    with rt.unit_of_work() as session:
        return clinical_profile.update_profile(
            session, patient_id, changes, actor=f"staff:{staff_id}", staff_id=staff_id, now=rt.now()
        )


def _profile(rt: Any, patient_id: int) -> PatientProfile | None:
    with rt.sessions() as session:
        return session.get(PatientProfile, patient_id)


def _audits(rt: Any, action: str) -> list[AuditLog]:
    with rt.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


# --- the service -------------------------------------------------------------------------------------


def test_update_validates_audits_each_change_and_feeds_scoring(rt: Any, ward: dict[str, int]) -> None:
    patient, nurse = ward["patient"], ward["nurse"]
    assert clinical_profile.baseline_for(rt.sessions(), patient) is None  # nothing recorded: unknown

    changed = _update(
        rt,
        patient,
        {
            "chronic_neuropathy": True,
            "usual_pain": 3,
            "spinal_levels": "T8",
            "carer_phone": "+1 555 123 0099",
        },
        nurse,
    )
    assert sorted(changed) == ["carer_phone", "chronic_neuropathy", "spinal_levels", "usual_pain"]
    row = _profile(rt, patient)
    assert row is not None and row.carer_phone == "+15551230099" and row.updated_by_id == nurse
    (audit,) = _audits(rt, "update_patient_profile")
    assert audit.actor == f"staff:{nurse}" and audit.patient_id == patient
    assert sorted(audit.detail["fields"]) == sorted(changed)
    # Baseline facts keep their old and new value (they change what pages); contact details only the name.
    assert audit.detail["baseline"] == {
        "chronic_neuropathy": {"from": None, "to": True},
        "usual_pain": {"from": None, "to": 3},
    }
    assert "+15551230099" not in str(audit.detail)

    assert _update(rt, patient, {"chronic_neuropathy": True, "usual_pain": 3}, nurse) == []
    assert len(_audits(rt, "update_patient_profile")) == 1  # nothing changed, nothing audited

    with pytest.raises(clinical_profile.ProfileError) as bad:
        _update(rt, patient, {"usual_pain": 2, "continence": "leaky"}, nurse)
    assert bad.value.field == "continence"
    assert _profile(rt, patient).usual_pain == 3  # type: ignore[union-attr]  # nothing of it written
    with pytest.raises(clinical_profile.ProfileError, match="patient_id"):
        _update(rt, 999_999, {"usual_pain": 2})

    with rt.unit_of_work() as session:
        check_in = CheckIn(
            patient_id=patient,
            instrument_code="sre-weekly",
            instrument_version=1,
            status=CheckInStatus.EXPIRED,
        )
        session.add(check_in)
        session.flush()
        _answers, history = scoring_inputs(session, check_in, rt.ruleset, now=rt.now())
    assert history.baseline == Baseline(chronic_neuropathy=True, usual_pain=3, spinal_levels="T8")


# --- admin pages ---------------------------------------------------------------------------------------


def test_admin_enrols_with_a_baseline_and_edits_it(client: Any, rt: Any, ward: dict[str, int]) -> None:
    login(client, "boss@example.org")
    token = csrf_token(client, "/admin/patients/new")
    form = {
        "csrf_token": token,
        "mrn": "MRN-901",
        "given_name": "Rosa",
        "family_name": "Diaz",
        "phone": "+1 555 123 0901",
        "timezone": "America/Chicago",
        "language": "en",
        "care_team_id": str(ward["team"]),
        "sms_consent": "yes",
        "chronic_neuropathy": "yes",
        "continence": "catheter",
        "usual_pain": "4",
        "bone_agent": "denosumab",
        "carer_name": "Luis",
        "carer_phone": "+1 555 123 0902",
    }
    bad = client.post("/admin/patients/new", data={**form, "usual_pain": "12"})
    assert bad.status_code == 400 and "Usual worst pain must be a whole number from 0 to 10" in bad.get_data(
        as_text=True
    )
    with rt.sessions() as session:  # the whole enrolment was rolled back
        assert session.scalar(select(Patient.id).where(Patient.mrn == "MRN-901")) is None
    assert client.post("/admin/patients/new", data=form).status_code == 302
    with rt.sessions() as session:
        patient_id = session.scalar(select(Patient.id).where(Patient.mrn == "MRN-901"))
        assert patient_id is not None
    row = _profile(rt, patient_id)
    assert row is not None
    assert (row.chronic_neuropathy, row.continence, row.usual_pain) == (True, "catheter", 4)
    assert (row.bone_agent, row.carer_phone, row.updated_by_id) == (
        "denosumab",
        "+15551230902",
        ward["admin"],
    )

    edit = client.get(f"/admin/patients/{patient_id}/edit").get_data(as_text=True)
    assert 'value="denosumab"' in edit and '<option value="catheter" selected>' in edit
    saved = client.post(
        f"/admin/patients/{patient_id}/edit",
        data={
            **{k: v for k, v in form.items() if k not in ("mrn", "sms_consent")},
            "chronic_neuropathy": "",
            "continence": "continent",
        },
    )
    assert saved.status_code == 302
    row = _profile(rt, patient_id)
    assert row is not None and row.chronic_neuropathy is None and row.continence == "continent"
    last = _audits(rt, "update_patient_profile")[-1]
    assert last.detail["baseline"]["chronic_neuropathy"] == {"from": True, "to": None}


def test_admin_team_form_records_the_acute_oncology_number(
    client: Any, rt: Any, ward: dict[str, int]
) -> None:
    login(client, "boss@example.org")
    token = csrf_token(client, f"/admin/teams/{ward['team']}")
    form = {
        "csrf_token": token,
        "name": "Breast oncology",
        "timezone": "America/New_York",
        "phone": "+15550100",
    }
    bad = client.post(f"/admin/teams/{ward['team']}", data={**form, "acute_oncology_phone": "call Bob"})
    assert bad.status_code == 400 and "MSCC / acute oncology number" in bad.get_data(as_text=True)
    ok = client.post(f"/admin/teams/{ward['team']}", data={**form, "acute_oncology_phone": "+1 555 010 0199"})
    assert ok.status_code == 302
    with rt.sessions() as session:
        assert session.get(CareTeam, ward["team"]).acute_oncology_phone == "+15550100199"  # type: ignore[union-attr]
    created = client.post(
        "/admin/teams",
        data={**form, "name": "Palliative", "acute_oncology_phone": "+1 555 010 0198"},
    )
    assert created.status_code == 302
    with rt.sessions() as session:
        team = session.scalar(select(CareTeam).where(CareTeam.name == "Palliative"))
        assert team is not None and team.acute_oncology_phone == "+15550100198"


# --- the API -------------------------------------------------------------------------------------------


def test_api_enrols_reads_and_edits_the_profile(api: Any, nurse_token: str, ward: dict[str, int]) -> None:
    body = {
        "mrn": "MRN-902",
        "given_name": "Ana",
        "family_name": "Ruiz",
        "phone": "+15551230903",
        "timezone": "America/New_York",
        "care_team_id": ward["team"],
        "profile": {"usual_pain": 11},
    }
    bad = api("POST", "/api/v1/patients", body)
    assert bad.status_code == 400 and bad.json["detail"][0]["field"] == "profile.usual_pain"
    bad = api("POST", "/api/v1/patients", {**body, "profile": {"carer_phone": "nope"}})
    assert bad.status_code == 400 and bad.json["detail"] == [
        {"field": "profile.carer_phone", "message": "must be an E.164 number such as +15551234567"}
    ]
    bad = api("POST", "/api/v1/patients", {**body, "profile": {"continence": "sometimes"}})
    assert bad.status_code == 400 and bad.json["detail"][0]["field"] == "profile.continence"
    assert api("GET", "/api/v1/patients?mrn=MRN-902").json["patients"] == []  # nothing half-enrolled

    created = api(
        "POST", "/api/v1/patients", {**body, "profile": {"usual_pain": 2, "bone_agent": "zoledronic acid"}}
    )
    assert created.status_code == 201, created.json
    patient_id = created.json["id"]
    assert (
        created.json["profile"]["usual_pain"] == 2 and created.json["profile"]["chronic_neuropathy"] is None
    )

    change = {"chronic_neuropathy": True, "carer_phone": "+1 555 123 0904", "usual_pain": None}
    # A nurse's token acts within the nurse's care teams; this nurse belongs to none.
    refused = api("PATCH", f"/api/v1/patients/{patient_id}/profile", change, token=nurse_token)
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    patched = api("PATCH", f"/api/v1/patients/{patient_id}/profile", change)
    assert patched.status_code == 200, patched.json
    assert (patched.json["chronic_neuropathy"], patched.json["carer_phone"], patched.json["usual_pain"]) == (
        True,
        "+15551230904",
        None,
    )
    assert patched.json["bone_agent"] == "zoledronic acid"  # fields not sent are left alone
    strict = api("PATCH", f"/api/v1/patients/{patient_id}/profile", {"usual_pain": True})
    assert strict.status_code == 400 and strict.json["detail"][0]["field"] == "usual_pain"
    assert api("PATCH", "/api/v1/patients/999999/profile", {"usual_pain": 1}).status_code == 404

    read = api("GET", f"/api/v1/patients/{patient_id}").json
    assert read["profile"]["chronic_neuropathy"] is True
    listed = api("GET", "/api/v1/patients?mrn=MRN-902").json["patients"]
    assert listed[0]["profile"]["carer_phone"] == "+15551230904"
    assert (
        api("PATCH", f"/api/v1/patients/{patient_id}", {"profile": {"continence": "catheter"}}).json[
            "profile"
        ]["continence"]
        == "catheter"
    )

    team = api(
        "POST", "/api/v1/care-teams", {"name": "Acute", "timezone": "UTC", "acute_oncology_phone": "bad"}
    )
    assert team.status_code == 400 and team.json["detail"][0]["field"] == "acute_oncology_phone"
    team = api(
        "POST",
        "/api/v1/care-teams",
        {"name": "Acute", "timezone": "UTC", "acute_oncology_phone": "+1 555 010 0197"},
    )
    assert team.status_code == 201 and team.json["acute_oncology_phone"] == "+15550100197"

    spec = api("GET", "/api/v1/openapi.json").json
    assert "/api/v1/patients/{patient_id}/profile" in spec["paths"]
    assert "ProfileIn" in spec["components"]["schemas"]


# --- the nurse's page ----------------------------------------------------------------------------------


def test_a_nurse_edits_the_profile_from_the_patient_page(client: Any, rt: Any, ward: dict[str, int]) -> None:
    patient = ward["patient"]
    login(client, "kim@example.org")
    record = client.get(f"/patients/{patient}").get_data(as_text=True)
    assert f'href="/patients/{patient}/profile"' in record
    views_before = len(_audits(rt, "view_patient"))
    page = client.get(f"/patients/{patient}/profile")
    assert page.status_code == 200 and "Known chronic neuropathy" in page.get_data(as_text=True)
    assert len(_audits(rt, "view_patient")) == views_before + 1  # the edit page is a view of the record

    assert client.post(f"/patients/{patient}/profile", data={"usual_pain": "2"}).status_code == 400  # no CSRF
    token = csrf_token(client, f"/patients/{patient}/profile")
    bad = client.post(f"/patients/{patient}/profile", data={"csrf_token": token, "carer_phone": "12"})
    assert bad.status_code == 400 and "Carer&#39;s phone" in bad.get_data(as_text=True)
    assert _profile(rt, patient) is None
    saved = client.post(
        f"/patients/{patient}/profile",
        data={
            "csrf_token": token,
            "chronic_neuropathy": "yes",
            "usual_pain": "2",
            "analgesia": "paracetamol",
        },
    )
    assert saved.status_code == 302 and saved.headers["Location"] == f"/patients/{patient}"
    row = _profile(rt, patient)
    assert row is not None and (row.chronic_neuropathy, row.usual_pain, row.analgesia) == (
        True,
        2,
        "paracetamol",
    )
    assert row.updated_by_id == ward["nurse"]
    assert _audits(rt, "update_patient_profile")[-1].actor == f"staff:{ward['nurse']}"
    assert "2/10" in client.get(f"/patients/{patient}").get_data(as_text=True)


# --- the alert page ------------------------------------------------------------------------------------


def _check_in_with_gaps(rt: Any, patient_id: int) -> int:
    with rt.unit_of_work() as session:
        check_in = CheckIn(
            patient_id=patient_id,
            instrument_code="sre-weekly",
            instrument_version=1,
            status=CheckInStatus.EXPIRED,
            closed_at=rt.now(),
        )
        session.add(check_in)
        session.flush()
        for code, status, value in (
            ("pain_worst", AnswerStatus.ANSWERED, 6),
            ("sudden_immobile", AnswerStatus.ANSWERED, False),
            ("neuro", AnswerStatus.UNREADABLE, None),
            ("bladder_bowel", AnswerStatus.MISSING, None),
        ):
            session.add(Answer(check_in_id=check_in.id, item_code=code, status=status, value=value))
        return int(check_in.id)


def _safety(rt: Any, patient_id: int, status: MessageStatus, *, alert_id: int | None, key: str) -> None:
    with rt.unit_of_work() as session:
        session.add(
            Message(
                direction=Direction.OUTBOUND,
                kind=MessageKind.SAFETY,
                status=status,
                patient_id=patient_id,
                alert_id=alert_id,
                from_number="+15005550006",
                to_number="+15551230001",
                body="safety",
                dedup_key=key,
                sent_at=rt.now() - timedelta(minutes=3),
                error_code=30003 if status == MessageStatus.UNDELIVERED else None,
            )
        )


def _attach(rt: Any, alert_id: int, **values: Any) -> None:
    with rt.unit_of_work() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        for name, value in values.items():
            setattr(alert, name, value)


def test_the_alert_page_has_what_the_nurse_needs_on_the_call(
    client: Any, rt: Any, ward: dict[str, int], api: Any
) -> None:
    patient = ward["patient"]
    _update(
        rt,
        patient,
        {
            "current_treatment": "Capecitabine",
            "bone_agent": "Denosumab",
            "steroids": "Dexamethasone 2 mg",
            "metastatic_sites": "Spine, pelvis",
            "spinal_levels": "T8, L2",
            "analgesia": "Oxycodone MR 10 mg",
            "ceiling_of_care": "Full escalation",
            "carer_name": "Luis",
            "carer_relation": "son",
            "carer_phone": "+15551230077",
        },
    )
    with rt.unit_of_work() as session:
        session.get(CareTeam, ward["team"]).acute_oncology_phone = "+15550100199"  # type: ignore[union-attr]
    alert_id = insert_alert(rt, patient)
    _attach(rt, alert_id, check_in_id=_check_in_with_gaps(rt, patient))
    _safety(rt, patient, MessageStatus.DELIVERED, alert_id=alert_id, key=f"safety:{alert_id}:0")
    login(client, "kim@example.org")

    views_before = len(_audits(rt, "view_alert"))
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert len(_audits(rt, "view_alert")) == views_before + 1
    section = page[page.index('id="for-the-call"') : page.index('id="actions-title"')]
    for text in (
        "Capecitabine",
        "Denosumab",
        "Dexamethasone 2 mg",
        "Spine, pelvis",
        "T8, L2",
        "Oxycodone MR 10 mg",
    ):
        assert text in section
    assert "Full escalation" in section and "Luis (son)" in section
    assert 'href="tel:+15551230077"' in section and 'href="tel:+15550100199"' in section
    unanswered = section[section.index('id="call-unanswered"') : section.index("</ul>")]
    assert "unreadable reply" in unanswered and "no reply" in unanswered
    assert unanswered.count("<li>") == 2  # neuro and bladder_bowel; sudden_immobile was answered
    assert ">Delivered<" in section
    assert 'id="call-script"' in section and "MSCC coordinator / acute oncology number now" in section

    call = api("GET", f"/api/v1/alerts/{alert_id}").json["call"]
    assert call["profile"]["carer_phone"] == "+15551230077" and call["acute_oncology_phone"] == "+15550100199"
    assert [(f["item_code"], f["reason"]) for f in call["unanswered_red_flags"]] == [
        ("neuro", "unreadable reply"),
        ("bladder_bowel", "no reply"),
    ]
    assert call["safety_text"]["state"] == "delivered"
    assert call["call_script"]["title"].startswith("Suspected metastatic spinal cord compression")
    assert api("GET", "/api/v1/alerts").json["alerts"][0]["call"] is None  # lists stay lean


def test_the_safety_text_state_and_a_category_without_a_script(
    client: Any, rt: Any, ward: dict[str, int], api: Any
) -> None:
    patient = ward["patient"]
    # No safety text, no check-in, a category with no call script: each says so, nothing breaks.
    quiet = insert_alert(rt, patient, category="bone_marker_rise", urgency="routine")
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{quiet}").get_data(as_text=True)
    assert ">Not sent<" in page and "No check-in behind this alert." in page
    assert 'id="call-script"' not in page and "Not recorded for Breast oncology" in page

    # One safety text answers a message that raised two alerts: it is filed under the first, found for both.
    first = insert_alert(rt, patient, category="pathologic_fracture")
    second = insert_alert(rt, patient, category="spinal_cord_compression")
    for alert_id in (first, second):
        with rt.unit_of_work() as session:
            alert = session.get(Alert, alert_id)
            assert alert is not None
            alert.evidence = [{**alert.evidence[0], "message_id": 4242}]
    _safety(rt, patient, MessageStatus.UNDELIVERED, alert_id=first, key="safety:message:4242")
    for alert_id in (first, second):
        assert ">Failed: not received<" in client.get(f"/alerts/{alert_id}").get_data(as_text=True)
        state = api("GET", f"/api/v1/alerts/{alert_id}").json["call"]["safety_text"]
        assert state["state"] == "failed" and state["error_code"] == 30003


def test_resolving_needs_a_rag_grade_shown_on_the_page_and_in_the_api(
    client: Any, rt: Any, ward: dict[str, int], api: Any
) -> None:
    alert_id = insert_alert(rt, ward["patient"])
    login(client, "kim@example.org")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'name="rag" value="red"' in page and 'name="rag" value="green"' in page
    token = csrf_token(client, f"/alerts/{alert_id}")
    refused = client.post(
        f"/alerts/{alert_id}/resolve",
        data={"csrf_token": token, "outcome": "same_day_visit", "rag": "purple"},
        follow_redirects=True,
    )
    assert "RAG grade" in refused.get_data(as_text=True)
    with rt.sessions() as session:
        assert session.get(Alert, alert_id).outcome_rag is None  # type: ignore[union-attr]
    client.post(
        f"/alerts/{alert_id}/resolve", data={"csrf_token": token, "outcome": "same_day_visit", "rag": "amber"}
    )
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'id="alert-rag">Amber: review within 24 hours<' in page and "RAG amber" in page
    read = api("GET", f"/api/v1/alerts/{alert_id}").json
    assert read["outcome_rag"] == "amber"
    assert read["events"][-1]["kind"] == "resolved" and read["events"][-1]["detail"]["rag"] == "amber"

    other = insert_alert(rt, ward["patient"], category="hypercalcemia")
    missing = api("POST", f"/api/v1/alerts/{other}/resolve", {"outcome": "same_day_visit"})
    assert missing.status_code == 400 and missing.json["detail"][0]["field"] == "rag"
    wrong = api("POST", f"/api/v1/alerts/{other}/resolve", {"outcome": "same_day_visit", "rag": "blue"})
    assert wrong.status_code == 400 and wrong.json["detail"][0]["field"] == "rag"
    with rt.sessions() as session:
        assert (
            session.scalar(select(func.count()).select_from(Alert).where(Alert.outcome_rag.is_not(None))) == 1
        )
