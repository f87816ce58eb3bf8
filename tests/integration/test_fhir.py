"""FHIR R4 read API on real PostgreSQL: a real check-in over signed SMS webhooks, processed in-process
(no worker), then every endpoint read with a bearer token and validated with `fhir.resources`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from pro_service.models import Alert, ApiToken, AuditLog, CheckIn, Direction, Message, Patient, utcnow
from pro_service.services import triage
from pro_service.services.alert_lifecycle import resolve
from pro_service.services.check_ins import start_now
from pro_service.services.inbound import process_patient
from tests.integration.helpers import make_patient, make_team
from tests.unit.test_fhir_mapping import assert_valid, check_response_against
from testsupport.waiting import wait_for

pytestmark = pytest.mark.integration
PHONE = "+15551230001"
OTHER_PHONE = "+15551230002"
MRN = "MRN-FHIR-1"
MRN_SYSTEM = "urn:pro-service:mrn"
# yes, 8, sites 1 and 3, two replies nobody can read (kept as unreadable), no, YES (urgent), no, none, text
REPLIES = ("yes", "8", "1 3", "purple", "banana", "no", "yes", "no", "0", "My back hurts at night")


@pytest.fixture(scope="module")
def fhir_app(settings: Any) -> Iterator[Any]:
    """The app as production builds it, with the FHIR blueprint registered the way __init__ does (the
    session-wide app cannot take a blueprint after its first request)."""
    from pro_service import create_app, runtime_of
    from pro_service.web.fhir import bp

    app = create_app(settings)
    app.testing = True
    if "fhir" not in app.blueprints:
        app.register_blueprint(bp)
    yield app
    runtime_of(app).dispose()


@pytest.fixture
def fhir_client(fhir_app: Any) -> Any:
    return fhir_app.test_client()


@dataclass
class Scenario:
    patient_id: int
    other_patient_id: int
    check_in_id: int
    alerts: dict[str, int]  # category → alert id
    resolved: str  # the category resolved by a nurse


def _process(rt: Any, patient_id: int) -> None:
    with rt.unit_of_work() as session:
        process_patient(session, rt, patient_id)
    # A worker running in this test process polls the database for stored replies too (workers/wake.py)
    # and may hold one this pass skipped: wait until every reply is processed, by whichever got it.
    wait_for(lambda: _unprocessed(rt, patient_id) == 0, timeout=20, message="every reply to be processed")


def _unprocessed(rt: Any, patient_id: int) -> int:
    with rt.unit_of_work() as session:
        query = select(func.count()).where(
            Message.patient_id == patient_id,
            Message.direction == Direction.INBOUND,
            Message.processed_at.is_(None),
        )
        return int(session.scalar(query) or 0)


@pytest.fixture
def client(unheard_app: Any) -> Any:
    """Replies are processed in-process below; the session's worker must not process them too."""
    return unheard_app.test_client()


@pytest.fixture
def rt(unheard_rt: Any) -> Any:
    unheard_rt.clock = utcnow
    return unheard_rt


@pytest.fixture
def scenario(rt: Any, sms: Any) -> Scenario:
    team = make_team(rt)
    patient_id = make_patient(rt, team, phone=PHONE, mrn=MRN)
    other_id = make_patient(rt, team, phone=OTHER_PHONE, mrn="MRN-FHIR-2")
    with rt.unit_of_work() as session:
        patient = session.get(Patient, patient_id)
        check_in_id = start_now(session, rt, patient, "sre-weekly").id
    for reply in REPLIES:
        assert sms(PHONE, reply).status_code == 200
        _process(rt, patient_id)
    with rt.unit_of_work() as session:
        triage.score_check_in(session, rt, check_in_id)
    assert sms(OTHER_PHONE, "NURSE").status_code == 200  # a call-back request: another patient's alert
    _process(rt, other_id)
    with rt.unit_of_work() as session:
        assert session.get(CheckIn, check_in_id).status.value == "completed"
        alerts = {
            a.category: a.id for a in session.scalars(select(Alert).where(Alert.patient_id == patient_id))
        }
        resolved = "patient_message"
        resolve(
            session,
            session.get(Alert, alerts[resolved]),
            staff_id=None,
            actor="test",
            now=rt.now(),
            outcome="no_action_needed",
            note=None,
        )
    assert {"spinal_cord_compression", "patient_message"} <= set(alerts)
    return Scenario(patient_id, other_id, check_in_id, alerts, resolved)


def _get(client: Any, path: str, token: str | None, **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = client.get(path, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json", response.headers
    assert response.headers["Cache-Control"] == "no-store"
    return response


def _ok(client: Any, path: str, token: str, resource_type: str) -> dict[str, Any]:
    response = _get(client, path, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json(force=True)
    assert body["resourceType"] == resource_type
    assert_valid(body)
    return body


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def _outcome(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert_valid(body)
    assert body["issue"][0]["code"] == code, body
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def _token_id(rt: Any, token: str) -> int:
    with rt.sessions() as session:
        return session.scalars(select(ApiToken.id).where(ApiToken.prefix == token[:10])).one()


def _audit(rt: Any) -> list[AuditLog]:
    with rt.sessions() as session:
        rows = list(
            session.scalars(select(AuditLog).where(AuditLog.action.like("fhir_%")).order_by(AuditLog.id))
        )
        session.expunge_all()
        return rows


# ------------------------------------------------------------------------------------------------ tests
def test_metadata_is_public(fhir_client: Any) -> None:
    statement = _ok(fhir_client, "/fhir/metadata", None, "CapabilityStatement")  # type: ignore[arg-type]
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["implementation"]["url"].endswith("/fhir")
    types = [r["type"] for r in statement["rest"][0]["resource"]]
    assert types == ["Patient", "Questionnaire", "QuestionnaireResponse", "Flag", "Observation"]


def test_every_resource_kind_reads_validates_and_is_audited(
    fhir_client: Any, rt: Any, admin_token: str, scenario: Scenario
) -> None:
    patient = _ok(fhir_client, f"/fhir/Patient/{scenario.patient_id}", admin_token, "Patient")
    assert (patient["identifier"][0]["system"], patient["identifier"][0]["value"]) == (MRN_SYSTEM, MRN)
    assert patient["telecom"][0] == {"system": "sms", "value": PHONE, "use": "mobile", "rank": 1}
    assert patient["active"] is True

    questionnaire = _ok(fhir_client, "/fhir/Questionnaire/sre-weekly-1", admin_token, "Questionnaire")
    response = _ok(
        fhir_client,
        f"/fhir/QuestionnaireResponse/{scenario.check_in_id}",
        admin_token,
        "QuestionnaireResponse",
    )
    check_response_against(response, questionnaire)
    assert response["status"] == "completed"
    assert response["subject"] == {"reference": f"Patient/{scenario.patient_id}"}
    items = {item["linkId"]: item for item in response["item"]}
    assert items["pain_new"]["answer"] == [{"valueBoolean": True}]
    assert items["pain_worst"]["answer"] == [{"valueInteger": 8}]
    assert [a["valueCoding"]["code"] for a in items["pain_site"]["answer"]] == ["1", "3"]
    assert items["neuro"]["answer"] == [{"valueBoolean": True}]
    assert [a["valueCoding"]["code"] for a in items["calcium_sx"]["answer"]] == ["0"]
    assert items["anything_else"]["answer"] == [{"valueString": "My back hurts at night"}]
    unreadable = items["pain_at_rest"]
    assert "answer" not in unreadable
    assert {"url": "urn:pro-service:fhir:unreadable-reply", "valueString": "banana"} in unreadable[
        "extension"
    ]

    flag_id = scenario.alerts["spinal_cord_compression"]
    flag = _ok(fhir_client, f"/fhir/Flag/{flag_id}", admin_token, "Flag")
    assert flag["status"] == "active"
    assert flag["code"]["coding"][0]["code"] == "spinal_cord_compression"
    priority = flag["extension"][0]["valueCodeableConcept"]["coding"]
    assert [c["code"] for c in priority] == ["PH", "urgent"]
    detail = [e for e in flag["extension"] if e["url"].endswith("flag-detail")]
    assert detail[0]["valueReference"] == {"reference": f"QuestionnaireResponse/{scenario.check_in_id}"}
    resolved = _ok(fhir_client, f"/fhir/Flag/{scenario.alerts[scenario.resolved]}", admin_token, "Flag")
    assert resolved["status"] == "inactive" and "end" in resolved["period"]

    actor = f"client:test-admin (token {_token_id(rt, admin_token)})"
    rows = [(r.actor, r.action, r.subject_type, r.subject_id, r.patient_id) for r in _audit(rt)]
    assert rows == [
        (actor, "fhir_read_patient", "patient", str(scenario.patient_id), scenario.patient_id),
        (
            actor,
            "fhir_read_questionnaire_response",
            "check_in",
            str(scenario.check_in_id),
            scenario.patient_id,
        ),
        (actor, "fhir_read_flag", "alert", str(flag_id), scenario.patient_id),
        (actor, "fhir_read_flag", "alert", str(scenario.alerts[scenario.resolved]), scenario.patient_id),
    ]


def test_patient_search_by_identifier_and_id(
    fhir_client: Any, rt: Any, admin_token: str, scenario: Scenario
) -> None:
    me = str(scenario.patient_id)
    for query in (f"identifier={MRN_SYSTEM}|{MRN}", f"identifier={MRN}", f"_id={me}", f"_id={me},999999"):
        bundle = _ok(fhir_client, f"/fhir/Patient?{query}", admin_token, "Bundle")
        assert bundle["type"] == "searchset" and bundle["total"] == 1 and _ids(bundle) == [me], query
        assert bundle["entry"][0]["fullUrl"].endswith(f"/fhir/Patient/{me}")
        assert bundle["entry"][0]["search"] == {"mode": "match"}
    for query in (f"identifier=urn:other|{MRN}", f"identifier=|{MRN}", "identifier=nobody", "_id=abc"):
        bundle = _ok(fhir_client, f"/fhir/Patient?{query}", admin_token, "Bundle")
        assert bundle["total"] == 0 and "entry" not in bundle, query
    both = _ok(fhir_client, f"/fhir/Patient?identifier={MRN},MRN-FHIR-2", admin_token, "Bundle")
    assert sorted(_ids(both)) == sorted([me, str(scenario.other_patient_id)])
    _outcome(_get(fhir_client, "/fhir/Patient", admin_token), 400, "invalid")

    searches = [r for r in _audit(rt) if r.action == "fhir_search_patient"]
    assert len(searches) == 9 and {r.patient_id for r in searches} == {None}  # one per search, as asked
    with rt.sessions() as session:  # and one per patient in a bundle, once per disclosure window
        seen = session.scalars(
            select(AuditLog.patient_id).where(AuditLog.action == "seen_fhir_patient")
        ).all()
    assert sorted(seen) == sorted([scenario.patient_id, scenario.other_patient_id])
    assert all(r.actor == f"client:test-admin (token {_token_id(rt, admin_token)})" for r in searches)


def test_questionnaire_list_and_search(fhir_client: Any, nurse_token: str) -> None:
    bundle = _ok(fhir_client, "/fhir/Questionnaire", nurse_token, "Bundle")
    assert "sre-weekly-1" in _ids(bundle) and bundle["total"] == len(_ids(bundle))
    url = "urn:pro-service:questionnaire:sre-weekly"
    for query in (f"url={url}", f"url={url}|1", "_id=sre-weekly-1", "version=1&status=active"):
        found = _ok(fhir_client, f"/fhir/Questionnaire?{query}", nurse_token, "Bundle")
        assert "sre-weekly-1" in _ids(found), query
    assert _ok(fhir_client, f"/fhir/Questionnaire?url={url}|99", nurse_token, "Bundle")["total"] == 0
    _outcome(_get(fhir_client, "/fhir/Questionnaire/sre-weekly-99", nurse_token), 404, "not-found")


def test_questionnaire_response_search_by_patient_and_authored(
    fhir_client: Any, rt: Any, admin_token: str, scenario: Scenario
) -> None:
    base = f"/fhir/QuestionnaireResponse?patient={scenario.patient_id}"
    bundle = _ok(fhir_client, base, admin_token, "Bundle")
    assert _ids(bundle) == [str(scenario.check_in_id)]
    check_response_against(bundle["entry"][0]["resource"], fhir_questionnaire(fhir_client, admin_token))
    day = bundle["entry"][0]["resource"]["authored"][:10]
    instant = bundle["entry"][0]["resource"]["authored"]
    hits = {
        f"&authored=ge{day}": 1,
        f"&authored=le{day}": 1,
        f"&authored={day}": 1,
        f"&authored=ge{day}&authored=le{day}": 1,
        f"&authored=gt{day}": 0,
        f"&authored=lt{day}": 0,
        f"&authored={day[:7]}": 1,
        f"&authored=eq{instant.replace('+', '%2B')}": 1,
        "&status=completed": 1,
        "&status=in-progress,stopped": 0,
    }
    for query, total in hits.items():
        assert _ok(fhir_client, base + query, admin_token, "Bundle")["total"] == total, query
    subject = f"/fhir/QuestionnaireResponse?subject=Patient/{scenario.other_patient_id}"
    assert _ok(fhir_client, subject, admin_token, "Bundle")["total"] == 0, (
        "another patient's are not mixed in"
    )

    searches = [r for r in _audit(rt) if r.action == "fhir_search_questionnaire_response"]
    assert {r.patient_id for r in searches} == {scenario.patient_id, scenario.other_patient_id}


def fhir_questionnaire(client: Any, token: str) -> dict[str, Any]:
    return _ok(client, "/fhir/Questionnaire/sre-weekly-1", token, "Questionnaire")


def test_flag_search_by_patient_date_and_status(
    fhir_client: Any, rt: Any, admin_token: str, scenario: Scenario
) -> None:
    base = f"/fhir/Flag?patient=Patient/{scenario.patient_id}"
    everything = _ok(fhir_client, base, admin_token, "Bundle")
    assert sorted(_ids(everything)) == sorted(str(i) for i in scenario.alerts.values())
    resolved_id = str(scenario.alerts[scenario.resolved])
    active = _ok(fhir_client, base + "&status=active", admin_token, "Bundle")
    assert resolved_id not in _ids(active) and len(_ids(active)) == len(scenario.alerts) - 1
    assert _ids(_ok(fhir_client, base + "&status=inactive", admin_token, "Bundle")) == [resolved_id]

    opened = everything["entry"][0]["resource"]["period"]["start"][:10]
    next_year = f"{int(opened[:4]) + 1}-01-01"
    # Active at or after a future date: only the flags still open; none opened before the day they opened.
    future = _ok(fhir_client, f"{base}&date=ge{next_year}", admin_token, "Bundle")
    assert sorted(_ids(future)) == sorted(_ids(active))
    assert _ok(fhir_client, f"{base}&date=lt{opened}", admin_token, "Bundle")["total"] == 0
    assert _ok(fhir_client, f"{base}&date=le{opened}", admin_token, "Bundle")["total"] == len(scenario.alerts)
    assert _ok(fhir_client, f"{base}&date=ge{opened}", admin_token, "Bundle")["total"] == len(scenario.alerts)
    # eq: the whole period inside the day: only the one resolved the same day (or not yet: UTC midnight).
    assert set(_ids(_ok(fhir_client, f"{base}&date=eq{opened}", admin_token, "Bundle"))) <= {resolved_id}

    other = _ok(fhir_client, f"/fhir/Flag?patient={scenario.other_patient_id}", admin_token, "Bundle")
    assert [e["resource"]["code"]["coding"][0]["code"] for e in other["entry"]] == ["callback_request"]

    # POST …/_search with a form body gives the same answer (FHIR servers accept both).
    posted = fhir_client.post(
        "/fhir/Flag/_search",
        data={"patient": str(scenario.patient_id), "status": "inactive"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert posted.status_code == 200, posted.get_data(as_text=True)
    assert posted.mimetype == "application/fhir+json"
    posted_bundle = posted.get_json(force=True)
    assert_valid(posted_bundle)
    assert _ids(posted_bundle) == [resolved_id]

    searches = [r for r in _audit(rt) if r.action == "fhir_search_flag"]
    assert {r.patient_id for r in searches} == {scenario.patient_id, scenario.other_patient_id}
    assert any("status=inactive" in r.detail["query"] for r in searches), "a POSTed search is audited too"


def test_paging_follows_next_links(fhir_client: Any, admin_token: str, scenario: Scenario) -> None:
    path = f"/fhir/Flag?patient={scenario.patient_id}&_count=1"
    seen: list[str] = []
    total = None
    while path:
        bundle = _ok(fhir_client, path, admin_token, "Bundle")
        total = bundle["total"] if total is None else total
        assert bundle["total"] == total and len(bundle["entry"]) == 1
        seen += _ids(bundle)
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "_count=1" in links["self"]
        path = ""
        if "next" in links:
            parts = urlsplit(links["next"])
            path = f"{parts.path}?{parts.query}"
    assert total == len(scenario.alerts) and sorted(seen) == sorted(str(i) for i in scenario.alerts.values())
    capped = _ok(fhir_client, f"/fhir/Flag?patient={scenario.patient_id}&_count=1000", admin_token, "Bundle")
    assert "_count=100&" in capped["link"][0]["url"]
    counted = _ok(fhir_client, f"/fhir/Flag?patient={scenario.patient_id}&_count=0", admin_token, "Bundle")
    assert counted["total"] == len(scenario.alerts) and "entry" not in counted


def test_errors_are_operation_outcomes(
    fhir_client: Any, rt: Any, admin_token: str, scenario: Scenario
) -> None:
    me = scenario.patient_id
    no_token = _get(fhir_client, f"/fhir/Patient/{me}", None)
    _outcome(no_token, 401, "login")
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    _outcome(_get(fhir_client, f"/fhir/Patient/{me}", "pro_not-a-real-token"), 401, "login")
    _outcome(_get(fhir_client, "/fhir/Flag", None), 401, "login")

    for path in (
        "/fhir/Patient/999999999",
        "/fhir/Patient/abc",
        "/fhir/Patient/99999999999999",
        "/fhir/Questionnaire/nope",
        "/fhir/QuestionnaireResponse/0",
        "/fhir/Flag/x1",
        "/fhir/Observation/999999999",
        "/fhir/Patient/1/_history",
        "/fhir/",
    ):
        _outcome(_get(fhir_client, path, admin_token), 404, "not-found")

    bad = {
        f"/fhir/Flag?patient={me}&color=red": "not-supported",
        f"/fhir/Flag?patient={me}&date=yesterday": "invalid",
        f"/fhir/Flag?patient={me}&date=ne2026-01-01": "not-supported",
        f"/fhir/Flag?patient={me}&status=weird": "invalid",
        f"/fhir/Flag?patient={me}&status:not=active": "not-supported",
        f"/fhir/Flag?patient={me}&patient={me}": "invalid",
        "/fhir/Flag?patient=Observation/1": "invalid",
        "/fhir/Flag?patient=": "invalid",
        f"/fhir/QuestionnaireResponse?patient={me}&authored=2026-13-40": "invalid",
        f"/fhir/QuestionnaireResponse?patient={me}&_count=-1": "invalid",
        f"/fhir/QuestionnaireResponse?patient={me}&_sort=authored": "not-supported",
        f"/fhir/Patient?identifier={MRN}&name=Ana": "not-supported",
    }
    for path, code in bad.items():
        _outcome(_get(fhir_client, path, admin_token), 400, code)

    as_json = fhir_client.post(
        "/fhir/Flag/_search", json={"patient": str(me)}, headers={"Authorization": f"Bearer {admin_token}"}
    )
    _outcome(as_json, 415, "not-supported")
    deleted = fhir_client.delete(f"/fhir/Patient/{me}", headers={"Authorization": f"Bearer {admin_token}"})
    _outcome(deleted, 405, "not-supported")
    _outcome(_get(fhir_client, f"/fhir/Patient/{me}?_format=xml", admin_token), 406, "not-supported")
    _outcome(
        _get(fhir_client, f"/fhir/Patient/{me}", admin_token, Accept="application/fhir+xml"),
        406,
        "not-supported",
    )
    json_ok = _get(fhir_client, f"/fhir/Patient/{me}?_format=json", admin_token, Accept="application/json")
    assert json_ok.status_code == 200

    assert not [r for r in _audit(rt) if r.action == "fhir_read_patient" and r.patient_id != me]


def test_a_failure_in_the_code_is_an_outcome_not_a_page(
    fhir_client: Any, admin_token: str, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pro_service import fhir

    def broken(_row: Any) -> dict[str, Any]:
        raise RuntimeError("Ana Lopez")  # the message may carry PHI: it is neither logged nor returned

    monkeypatch.setattr(fhir, "patient", broken)
    response = fhir_client.get(
        f"/fhir/Patient/{scenario.patient_id}", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert response.status_code == 500 and response.mimetype == "application/fhir+json"
    assert "Ana" not in _outcome(response, 500, "exception")
