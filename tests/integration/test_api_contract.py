"""The REST API's contract: OpenAPI generated from the validating code, schemathesis against it, pagination,
Idempotency-Key, token revocation, role separation, JSON errors."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.integration.helpers import make_patient, make_team

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]


def test_openapi_document_describes_every_api_route(client: Any, app: Any) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi_document":
            path = rule.rule.replace("<int:", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((method, path))
    assert routed == documented
    patient_in = document["components"]["schemas"]["PatientIn"]
    assert set(patient_in["required"]) >= {
        "mrn",
        "given_name",
        "family_name",
        "phone",
        "timezone",
        "care_team_id",
    }


def test_errors_are_json_with_a_4xx(client: Any, api: Any, nurse_token: str, admin_token: str) -> None:
    assert client.get("/api/v1/patients/1").json == {
        "error": "unauthorized",
        "detail": "send Authorization: Bearer <token>",
    }
    bad_token = client.get("/api/v1/patients/1", headers={"Authorization": "Bearer pro_nope"})
    assert bad_token.status_code == 401
    forbidden = api("POST", "/api/v1/care-teams", {"name": "x"}, token=nurse_token)
    assert (forbidden.status_code, forbidden.json["error"]) == (403, "forbidden")
    not_json = client.post(
        "/api/v1/care-teams", data="name=x", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert (not_json.status_code, not_json.json["error"]) == (415, "unsupported_media_type")
    broken = client.post(
        "/api/v1/care-teams",
        data="{",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    assert (broken.status_code, broken.json["error"]) == (400, "invalid_json")
    invalid = api("POST", "/api/v1/patients", {"mrn": "", "phone": "12"})
    assert invalid.status_code == 400 and invalid.json["error"] == "validation_failed"
    assert {d["field"] for d in invalid.json["detail"]} >= {"mrn", "given_name", "care_team_id"}
    unknown = api("GET", "/api/v1/alerts?colour=red")
    assert (unknown.status_code, unknown.json["error"]) == (400, "invalid_parameter")
    huge = api("GET", "/api/v1/patients/99999999999")
    assert huge.status_code == 404 and huge.json["error"] == "not_found"
    nowhere = api("GET", "/api/v1/nowhere")
    assert nowhere.status_code == 404 and "error" in nowhere.json


def test_pagination_has_limits_and_says_when_there_is_more(rt: Any, api: Any) -> None:
    team = make_team(rt)
    for n in range(5):
        make_patient(rt, team, phone=f"+1555123000{n}", mrn=f"MRN{n}")
    first = api("GET", "/api/v1/patients?page_size=2").json
    assert [p["mrn"] for p in first["patients"]] == ["MRN0", "MRN1"] and first["has_more"] is True
    last = api("GET", "/api/v1/patients?page_size=2&page=3").json
    assert [p["mrn"] for p in last["patients"]] == ["MRN4"] and last["has_more"] is False
    assert api("GET", "/api/v1/patients?page_size=500").status_code == 400


def test_idempotency_key_replays_the_first_response(rt: Any, api: Any, client: Any, admin_token: str) -> None:
    team = make_team(rt)
    body = {
        "mrn": "MRN-9",
        "given_name": "Ana",
        "family_name": "Lopez",
        "phone": "+15551239999",
        "timezone": "UTC",
        "care_team_id": team,
    }
    headers = {"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "enrol-9"}
    first = client.post("/api/v1/patients", json=body, headers=headers)
    again = client.post("/api/v1/patients", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json == again.json
    assert len(api("GET", "/api/v1/patients").json["patients"]) == 1
    other = client.post("/api/v1/patients", json={**body, "mrn": "MRN-10"}, headers=headers)
    assert (other.status_code, other.json["error"]) == (422, "idempotency_key_reused")
    without_key = client.post(
        "/api/v1/patients", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert without_key.status_code == 409  # the MRN exists: a plain retry is refused, not duplicated


def test_rulesets_and_instruments_are_listed_with_versions(api: Any) -> None:
    listed = {(r["name"], r["version"]): r for r in api("GET", "/api/v1/rulesets").json["rulesets"]}
    # Active: what new patients are enrolled on (ENROL_RULESET_VERSION=2 in the test settings).
    assert {key: r["active"] for key, r in listed.items()} == {
        ("sre", 1): False,
        ("sre", 2): True,
        ("sre", 3): False,
    }
    assert [listed[("sre", v)]["instrument_version"] for v in (1, 2, 3)] == [1, 1, 2]
    ruleset = listed[("sre", 2)]
    lab_rule = next(r for r in ruleset["rules"] if r["id"] == "hypercalcemia-lab-above-3")
    assert lab_rule["urgency"] == "urgent" and "NICE" in lab_rule["rationale"]
    scc = next(r for r in ruleset["rules"] if r["id"] == "scc-neuro-or-bladder")
    assert (scc["urgency"], scc["early"]) == ("urgent", True) and "NICE" in scc["rationale"]
    assert ruleset["combinations"][0]["enabled"] is False  # "two ambers make a red" ships off
    instrument, second = api("GET", "/api/v1/instruments").json["instruments"]
    assert (instrument["code"], instrument["version"], instrument["active"]) == ("sre-weekly", 1, True)
    assert [i["code"] for i in instrument["items"]][:2] == ["pain_new", "pain_worst"]
    assert (second["version"], second["active"]) == (2, False)
    assert [i["code"] for i in second["items"]][:2] == ["weakness", "numbness"]


def test_tokens_can_be_revoked(api: Any, client: Any) -> None:
    created = api("POST", "/api/v1/tokens", {"name": "ehr", "client": "EHR", "scopes": ["read"]})
    assert created.status_code == 201
    token = created.json["token"]
    assert client.get("/api/v1/instruments", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert api("DELETE", f"/api/v1/tokens/{created.json['id']}").status_code == 204
    assert client.get("/api/v1/instruments", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    listed = api("GET", "/api/v1/tokens").json["tokens"]
    assert all("token" not in t for t in listed)


def test_admin_operations_cover_staff_rota_and_patient_status(rt: Any, api: Any) -> None:
    team = make_team(rt)
    patient = make_patient(rt, team)
    nurse = api(
        "POST",
        "/api/v1/staff",
        {"email": "k@example.org", "name": "Kim", "role": "nurse", "phone": "+15557770009"},
    )
    assert nurse.status_code == 201
    assert (
        api("POST", f"/api/v1/care-teams/{team}/members", {"staff_id": nurse.json["id"]}).status_code == 204
    )
    members = api("GET", f"/api/v1/care-teams/{team}/members").json["staff"]
    assert [m["email"] for m in members] == ["k@example.org"]
    shift = api(
        "POST",
        f"/api/v1/care-teams/{team}/on-call",
        {
            "staff_id": nurse.json["id"],
            "level": 1,
            "starts_at": "2026-12-01T08:00:00-05:00",
            "ends_at": "2026-12-01T20:00:00-05:00",
        },
    )
    assert shift.status_code == 201 and shift.json["starts_at"].startswith("2026-12-01T13:00:00")
    backwards = api(
        "POST",
        f"/api/v1/care-teams/{team}/on-call",
        {
            "staff_id": nurse.json["id"],
            "starts_at": "2026-12-02T08:00:00Z",
            "ends_at": "2026-12-01T08:00:00Z",
        },
    )
    assert backwards.status_code == 400
    paused = api("PATCH", f"/api/v1/patients/{patient}", {"status": "paused"})
    assert paused.json["status"] == "paused"
    assert (
        api("POST", f"/api/v1/patients/{patient}/check-ins", {"instrument": "sre-weekly"}).status_code == 201
    )
    discharged = api("PATCH", f"/api/v1/patients/{patient}", {"status": "discharged"}).json
    assert discharged["status"] == "discharged"
    check_ins = api("GET", f"/api/v1/check-ins?patient_id={patient}").json["check_ins"]
    assert [c["status"] for c in check_ins] == ["cancelled"]
    audit = api("GET", f"/api/v1/audit?patient_id={patient}").json["entries"]
    assert {"update_patient", "start_check_in"} <= {e["action"] for e in audit}


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_api_conforms_to_its_schema(app: Any, admin_token: str, rt: Any) -> None:
    """Generated requests for every operation (schemathesis): no 5xx, and every response matches the
    documented schema (status code, headers, body). The one check left out is "schema-valid data must be
    accepted": a time zone must exist, a phone number must be possible, an rrule must parse — rules JSON
    Schema cannot state, answered with a documented 400."""
    make_patient(rt, make_team(rt))  # something for the ids to find
    operations = _operations(app)
    assert len(operations) >= 30
    headers = {"Authorization": f"Bearer {admin_token}"}

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    for operation in operations:
        given(case=operation.as_strategy())(check)()
