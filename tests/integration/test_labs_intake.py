"""Lab results in, on real PostgreSQL: FHIR R4 Observations and transaction Bundles (POST /fhir/Observation,
POST /fhir), HL7 v2 ORU^R01 over HTTP (POST /hl7/oru), read back through the API, FHIR Observation search and
`services.labs.lab_views`; the integration token role; the audit trail. The payloads are the ones in
docs/labs.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from pro_service.lab_units import ANALYTES
from pro_service.models import AuditLog, LabResult, LabSource, LabStatus
from pro_service.services import labs
from pro_service.services.tokens import create_token
from tests.conftest import run_concurrently
from tests.integration.helpers import make_patient, make_team
from tests.unit.test_fhir_mapping import assert_valid

# In-process: each test runs inside one transaction rolled back after it (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.rolled_back]
MRN = "MRN-LAB-1"
OTHER_MRN = "MRN-LAB-2"
FHIR_JSON = "application/fhir+json"
HL7_TYPE = "x-application/hl7-v2+er7"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LAB_IDS = "urn:oid:2.16.840.1.113883.3.9999.4.1"  # the laboratory's own result identifiers
NAMES = {code: analyte.display for code, analyte in ANALYTES.items()}


# ------------------------------------------------------------------------------------------- payloads
def observation(
    code: str = "17861-6",
    value: float | None = 10.4,
    unit: str | None = "mg/dL",
    *,
    ident: str | None = "ACC-20251103-0042-CA",
    status: str = "final",
    mrn: str = MRN,
    taken: str = "2025-11-03T08:30:00-05:00",
) -> dict[str, Any]:
    """A laboratory Observation as an EHR's interface engine sends it (US Core laboratory shape)."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": NAMES.get(code, "Sodium")}]},
        "subject": {"identifier": {"system": "urn:pro-service:mrn", "value": mrn}},
        "effectiveDateTime": taken,
        "issued": "2025-11-03T10:02:11-05:00",
    }
    if ident is not None:
        resource["identifier"] = [{"system": LAB_IDS, "value": ident}]
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit is not None:
            quantity.update(unit=unit, system=UCUM, code=unit)
        resource["valueQuantity"] = quantity
    if code == "17861-6" and value is not None:
        resource["referenceRange"] = [
            {
                "low": {"value": 8.6, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
                "high": {"value": 10.3, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
            }
        ]
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": "H",
                    }
                ]
            }
        ]
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:6f1c2a4e-0000-4000-8000-00000000000{i}",
                "resource": r,
                "request": {"method": "POST", "url": "Observation"},
            }
            for i, r in enumerate(resources)
        ],
    }


def segment(name: str, fields: dict[int, str]) -> str:
    """An HL7 v2 segment with the given fields (1-based), the rest empty."""
    last = max(fields)
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def oru(
    *obx: str,
    control: str = "LAB000123",
    mrn: str = MRN,
    sent: str = "20251103100500-0500",
    taken: str = "20251103083000-0500",
    message_type: str = "ORU^R01^ORU_R01",
) -> str:
    """An ORU^R01 as a laboratory system sends it: MSH, PID, ORC, OBR, then the OBX segments."""
    return "\r".join(
        [
            f"MSH|^~\\&|LAB|GENHOSP|PRO-SERVICE|ONCOLOGY|{sent}||{message_type}|{control}|P|2.5.1",
            f"PID|1||{mrn}^^^GENHOSP^MR~999-99-9999^^^SSA^SS||Lopez^Ana||19610412|F",
            "ORC|RE|ORD1001|LAB2002^GENHOSP",
            segment(
                "OBR",
                {
                    1: "1",
                    2: "ORD1001",
                    3: "LAB2002^GENHOSP",
                    4: "24323-8^Comprehensive metabolic panel^LN",
                    7: taken,
                    22: "20251103100200-0500",
                    25: "F",
                },
            ),
            *obx,
        ]
    )


def obx(
    set_id: int, code: str, name: str, value: str, unit: str, ref: str, flag: str, status: str = "F"
) -> str:
    unit_field = f"{unit}^{unit}^UCUM" if unit else ""
    return segment(
        "OBX",
        {
            1: str(set_id),
            2: "NM",
            3: f"{code}^{name}^LN",
            5: value,
            6: unit_field,
            7: ref,
            8: flag,
            11: status,
            14: "20251103083000-0500",
        },
    )


CALCIUM = obx(1, "17861-6", "Calcium [Mass/volume] in Serum or Plasma", "11.2", "mg/dL", "8.6-10.3", "H")
ALBUMIN = obx(2, "1751-7", "Albumin [Mass/volume] in Serum or Plasma", "3.1", "g/dL", "3.5-5.2", "L")
ALP = obx(
    3,
    "6768-6",
    "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
    "212",
    "U/L",
    "44-147",
    "H",
)


# -------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def patient_id(rt: Any) -> int:
    team = make_team(rt)
    make_patient(rt, team, phone="+15551230002", mrn=OTHER_MRN)
    return make_patient(rt, team, phone="+15551230001", mrn=MRN)


@pytest.fixture
def integration_token(rt: Any) -> str:
    with rt.unit_of_work() as session:
        return create_token(
            session, requested_by="operator", name="lab-interface", client="lab", scopes=["labs:write"]
        ).token


def _post_fhir(client: Any, path: str, body: dict[str, Any], token: str) -> Any:
    return client.post(
        path,
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
    )


def _post_hl7(client: Any, message: str, token: str) -> tuple[Any, dict[str, list[str]]]:
    response = client.post(
        "/hl7/oru",
        data=message.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": HL7_TYPE},
    )
    segments: dict[str, list[str]] = {}
    if response.mimetype == HL7_TYPE:
        for line in response.get_data(as_text=True).split("\r"):
            if line:
                segments[line[:3]] = line.split("|")
    return response, segments


def _outcome(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert_valid(body)
    assert body["issue"][0]["code"] == code, body
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def _rows(rt: Any) -> list[LabResult]:
    with rt.sessions() as session:
        rows = list(session.scalars(select(LabResult).order_by(LabResult.id)))
        session.expunge_all()
        return rows


def _views(rt: Any, patient_id: int) -> list[Any]:
    with rt.sessions() as session:
        return labs.lab_views(session, patient_id)


def _count(rt: Any) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(LabResult)) or 0


# --------------------------------------------------------------------------------------------- FHIR in
def test_a_calcium_in_mg_dl_is_stored_and_read_back_in_mmol_l(
    client: Any, rt: Any, patient_id: int, integration_token: str, admin_token: str
) -> None:
    created = _post_fhir(client, "/fhir/Observation", observation(), integration_token)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.mimetype == FHIR_JSON
    stored = created.get_json()
    assert_valid(stored)
    assert created.headers["Location"].endswith(f"/fhir/Observation/{stored['id']}")
    assert stored["valueQuantity"] == {"value": 2.5949, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
    assert {
        "url": "urn:pro-service:fhir:reported-value",
        "valueQuantity": {"value": 10.4, "unit": "mg/dL"},
    } in (stored["extension"])
    assert stored["subject"] == {"reference": f"Patient/{patient_id}"}
    assert {"system": LAB_IDS, "value": "ACC-20251103-0042-CA"} in stored["identifier"]
    assert stored["effectiveDateTime"] == "2025-11-03T13:30:00.000Z"
    assert stored["referenceRange"] == [{"text": "8.6-10.3 mg/dL"}]

    (view,) = _views(rt, patient_id)
    assert (view.code, view.value, view.unit, view.status) == ("17861-6", 2.5949, "mmol/L", "final")
    assert (
        view.taken_at == datetime(2025, 11, 3, 13, 30, tzinfo=UTC)
        and view.reference_range == "8.6-10.3 mg/dL"
    )

    api = client.get(
        f"/api/v1/patients/{patient_id}/labs", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert api.status_code == 200, api.get_data(as_text=True)
    (lab,) = api.json["labs"]
    assert (lab["value"], lab["unit"], lab["reported_value"], lab["reported_unit"]) == (
        2.5949,
        "mmol/L",
        10.4,
        "mg/dL",
    )
    assert lab["current"] is True and lab["withdrawn"] is False and lab["source"] == "fhir"


def test_mmol_l_by_patient_reference_and_the_same_observation_twice_is_stored_once(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    resource = observation("2000-8", 2.61, "mmol/L", ident="ACC-7-CA")
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    first = _post_fhir(client, "/fhir/Observation", resource, integration_token)
    again = _post_fhir(client, "/fhir/Observation", resource, integration_token)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert first.get_json()["valueQuantity"]["value"] == 2.61
    assert _count(rt) == 1
    # No identifier at all: the content identifies the result, so a retry is still stored once.
    bare = observation("6768-6", 212, "U/L", ident=None)
    assert _post_fhir(client, "/fhir/Observation", bare, integration_token).status_code == 201
    assert _post_fhir(client, "/fhir/Observation", bare, integration_token).status_code == 200
    assert _count(rt) == 2


@pytest.mark.parametrize(
    ("resource", "status", "code", "words"),
    [
        (observation(unit=None), 422, "required", "unit is missing"),
        (observation(unit="mmol"), 422, "value", "not a unit for Calcium"),
        (observation(unit="mEq/L"), 422, "value", "equivalents"),
        (observation("2951-2", 140, "mmol/L"), 422, "code-invalid", "2951-2 is not a code"),
        (observation(mrn="MRN-NOBODY"), 422, "not-found", "MRN-NOBODY"),
        ({**observation(), "subject": {"reference": "Patient/9999999999"}}, 422, "not-found", "9999999999"),
        (observation(value=None), 400, "invalid", "numeric value is required"),
        (observation(taken="2025-11-03"), 400, "invalid", "not a date alone"),
        (observation(status="registered"), 400, "invalid", "status 'registered'"),
        (observation(status="amended", ident=None), 400, "invalid", "must carry the identifier"),
        (
            {**observation(), "valueQuantity": {"value": 5, "comparator": "<", "unit": "mg/dL"}},
            400,
            "invalid",
            "<",
        ),
        ({**observation(), "subject": {"identifier": {"value": MRN}}}, 400, "invalid", "MRN"),
        (
            {**observation(), "subject": {"reference": "https://ehr.example.org/fhir/Patient/1"}},
            400,
            "invalid",
            "this server",
        ),
        ({**observation(), "colour": "red"}, 400, "invalid", "colour"),
        ({"resourceType": "Patient"}, 400, "invalid", "takes an Observation"),
    ],
)
def test_what_cannot_be_recorded_is_a_4xx_outcome_and_stores_nothing(
    client: Any,
    rt: Any,
    patient_id: int,
    integration_token: str,
    resource: Any,
    status: int,
    code: str,
    words: str,
) -> None:
    response = _post_fhir(client, "/fhir/Observation", resource, integration_token)
    assert words in _outcome(response, status, code)
    assert _count(rt) == 0


def test_an_amended_result_replaces_the_earlier_one_and_keeps_it_as_history(
    client: Any, rt: Any, patient_id: int, integration_token: str, admin_token: str
) -> None:
    original = _post_fhir(client, "/fhir/Observation", observation(value=10.4), integration_token).get_json()
    amended = _post_fhir(
        client, "/fhir/Observation", observation(value=12.4, status="amended"), integration_token
    )
    assert amended.status_code == 201
    assert amended.get_json()["valueQuantity"]["value"] == pytest.approx(3.094, abs=1e-4)
    # A retransmission of the original after the amendment changes nothing (it was already stored).
    assert (
        _post_fhir(client, "/fhir/Observation", observation(value=10.4), integration_token).status_code == 200
    )

    (view,) = _views(rt, patient_id)
    assert (view.value, view.status) == (pytest.approx(3.094, abs=1e-4), "amended")
    auth = {"Authorization": f"Bearer {admin_token}"}
    old = client.get(f"/fhir/Observation/{original['id']}", headers=auth).get_json()
    assert_valid(old)
    assert {
        "url": "urn:pro-service:fhir:replaced-by",
        "valueReference": {"reference": f"Observation/{amended.get_json()['id']}"},
    } in old["extension"]
    search = client.get(f"/fhir/Observation?patient={patient_id}", headers=auth).get_json()
    assert_valid(search)
    assert [e["resource"]["status"] for e in search["entry"]] == ["amended"]
    history = client.get(f"/api/v1/patients/{patient_id}/labs?history=true", headers=auth).json["labs"]
    assert [(lab["status"], lab["current"]) for lab in history] == [("amended", True), ("final", False)]


def test_entered_in_error_withdraws_the_value(
    client: Any, rt: Any, patient_id: int, integration_token: str, admin_token: str
) -> None:
    _post_fhir(client, "/fhir/Observation", observation(value=13.1), integration_token)
    withdrawn = _post_fhir(
        client, "/fhir/Observation", observation(value=None, status="entered-in-error"), integration_token
    )
    assert withdrawn.status_code == 201, withdrawn.get_data(as_text=True)
    assert "valueQuantity" not in withdrawn.get_json()
    (view,) = _views(rt, patient_id)
    assert (view.value, view.status, view.withdrawn) == (None, "entered-in-error", True)
    first, second = _rows(rt)
    assert first.withdrawn_at is not None and first.replaced_by_id == second.id
    auth = {"Authorization": f"Bearer {admin_token}"}
    (lab,) = client.get(f"/api/v1/patients/{patient_id}/labs", headers=auth).json["labs"]
    assert (lab["value"], lab["withdrawn"], lab["status"]) == (None, True, "entered-in-error")


def test_a_transaction_bundle_is_all_or_nothing_and_adjusted_calcium_is_computed(
    client: Any, rt: Any, patient_id: int, integration_token: str, admin_token: str
) -> None:
    calcium = observation("17861-6", 9.0, "mg/dL", ident="ACC-9-CA")
    albumin = observation("1751-7", 2.5, "g/dL", ident="ACC-9-ALB")
    unknown = observation("2951-2", 139, "mmol/L", ident="ACC-9-NA")  # sodium: not a code we monitor
    refused = _post_fhir(client, "/fhir", bundle(calcium, albumin, unknown), integration_token)
    assert "Bundle.entry[2]" in _outcome(refused, 422, "code-invalid")
    assert _count(rt) == 0, "nothing of a refused transaction is stored"

    # The subject as a conditional reference, as transaction Bundles often carry it.
    albumin["subject"] = {"reference": f"Patient?identifier=urn:pro-service:mrn|{MRN}"}
    response = _post_fhir(client, "/fhir/", bundle(calcium, albumin), integration_token)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    Bundle.model_validate(answer)
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "201 Created"]

    views = {v.code: v for v in _views(rt, patient_id)}
    adjusted = views["29265-6"]
    # 9.0 mg/dL = 2.2456 mmol/L; + 0.02 x (40 - 25 g/L) = 2.5456 -> 2.55 (Payne 1973)
    assert (adjusted.value, adjusted.derived, adjusted.status) == (2.55, True, "final")
    auth = {"Authorization": f"Bearer {admin_token}"}
    derived = client.get(
        f"/fhir/Observation?patient={patient_id}&code={LOINC}|29265-6", headers=auth
    ).get_json()
    assert_valid(derived)
    resource = derived["entry"][0]["resource"]
    assert "0.02" in resource["method"]["text"] and len(resource["derivedFrom"]) == 2

    # The lab's own adjusted calcium for the sample is preferred: the computed one is no longer shown.
    lab_adjusted = observation("29265-6", 2.49, "mmol/L", ident="ACC-9-ADJ")
    assert _post_fhir(client, "/fhir/Observation", lab_adjusted, integration_token).status_code == 201
    adjusted_views = [v for v in _views(rt, patient_id) if v.code == "29265-6"]
    assert [(v.value, v.derived) for v in adjusted_views] == [(2.49, False)]


def test_observation_search_by_patient_code_date_and_status_is_audited(
    client: Any, rt: Any, patient_id: int, integration_token: str, admin_token: str
) -> None:
    _post_fhir(client, "/fhir/Observation", observation(), integration_token)
    _post_fhir(
        client,
        "/fhir/Observation",
        observation("6768-6", 212, "U/L", ident="ACC-1-ALP", taken="2025-10-01T09:00:00Z"),
        integration_token,
    )
    auth = {"Authorization": f"Bearer {admin_token}"}
    base = f"/fhir/Observation?patient=Patient/{patient_id}"
    hits = {
        "": 2,
        "&code=17861-6": 1,
        f"&code={LOINC}|6768-6": 1,
        "&code=urn:other|6768-6": 0,
        "&date=ge2025-11-01": 1,
        "&date=lt2025-11-01": 1,
        "&date=2025-10-01": 1,
        "&status=final": 2,
        "&status=amended,corrected": 0,
    }
    for query, total in hits.items():
        found = client.get(base + query, headers=auth)
        assert found.status_code == 200, (query, found.get_data(as_text=True))
        assert_valid(found.get_json())
        assert found.get_json()["total"] == total, query
    assert client.get(base + "&status=weird", headers=auth).status_code == 400
    searches = [r for r in _audit(rt) if r.action == "fhir_search_observation"]
    assert searches and {r.patient_id for r in searches} == {patient_id}
    writes = [r for r in _audit(rt) if r.action == "record_lab_result"]
    assert len(writes) == 2 and {r.detail["via"] for r in writes} == {"fhir"}


def _audit(rt: Any) -> list[AuditLog]:
    with rt.sessions() as session:
        rows = list(session.scalars(select(AuditLog).order_by(AuditLog.id)))
        session.expunge_all()
        return rows


# ---------------------------------------------------------------------------------------------- HL7 v2
def test_an_oru_r01_is_acknowledged_aa_and_a_repeat_is_stored_once(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    response, ack = _post_hl7(client, oru(CALCIUM, ALBUMIN, ALP), integration_token)
    assert response.status_code == 200 and response.mimetype == HL7_TYPE
    assert ack["MSA"][1:3] == ["AA", "LAB000123"]
    assert ack["MSH"][8].startswith("ACK")
    assert {v.code: v.value for v in _views(rt, patient_id)} == {
        "17861-6": 2.7946,  # 11.2 mg/dL
        "1751-7": 31.0,  # 3.1 g/dL
        "6768-6": 212.0,
        "29265-6": 2.97,  # computed: 2.7946 + 0.02 x (40 - 31)
    }
    stored = _count(rt)
    # The same message again (an interface engine's retry, even under a new control id): AA, nothing new.
    again, ack = _post_hl7(client, oru(CALCIUM, ALBUMIN, ALP, control="LAB000124"), integration_token)
    assert (
        again.status_code == 200 and ack["MSA"][1:3] == ["AA", "LAB000124"] and "3 duplicate" in ack["MSA"][3]
    )
    assert _count(rt) == stored


def test_a_corrected_obx_replaces_the_result_and_what_was_computed_from_it(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    _post_hl7(client, oru(CALCIUM, ALBUMIN), integration_token)
    corrected = obx(
        1, "17861-6", "Calcium [Mass/volume] in Serum or Plasma", "12.6", "mg/dL", "8.6-10.3", "H", "C"
    )
    _, ack = _post_hl7(client, oru(corrected, control="LAB000200"), integration_token)
    assert ack["MSA"][1] == "AA", ack
    views = {v.code: v for v in _views(rt, patient_id)}
    assert (views["17861-6"].value, views["17861-6"].status) == (3.1439, "corrected")
    assert (views["29265-6"].value, views["29265-6"].status) == (3.32, "amended")  # 3.1439 + 0.18
    calcium_rows = [r for r in _rows(rt) if r.code == "17861-6"]
    assert [r.status.value for r in calcium_rows] == ["final", "corrected"]
    assert calcium_rows[0].replaced_by_id == calcium_rows[1].id

    # OBX-11 W: the result is withdrawn, and so is the adjusted calcium computed from it.
    wrong = obx(
        1, "17861-6", "Calcium [Mass/volume] in Serum or Plasma", "12.6", "mg/dL", "8.6-10.3", "H", "W"
    )
    _, ack = _post_hl7(client, oru(wrong, control="LAB000201"), integration_token)
    assert ack["MSA"][1] == "AA"
    views = {v.code: v for v in _views(rt, patient_id)}
    assert views["17861-6"].withdrawn and views["29265-6"].withdrawn and views["1751-7"].value == 31.0


@pytest.mark.parametrize(
    ("message", "code", "error", "words"),
    [
        (oru(CALCIUM, mrn="MRN-NOBODY"), "AE", "204", "MRN-NOBODY"),
        (oru(obx(1, "2951-2", "Sodium", "139", "mmol/L", "", "")), "AE", "103", "2951-2"),
        (oru(CALCIUM, obx(2, "1751-7", "Albumin", "3.1", "", "", "")), "AE", "101", "OBX-6"),
        (oru(obx(1, "1751-7", "Albumin", "3.1", "mmol/L", "", "")), "AE", "102", "not a unit for Albumin"),
        (oru(obx(1, "17861-6", "Calcium", "high", "mg/dL", "", "")), "AE", "102", "not a number"),
        (oru(CALCIUM, message_type="ADT^A01^ADT_A01"), "AR", "200", "only ORU"),
    ],
)
def test_what_cannot_be_recorded_is_an_ae_or_ar_and_stores_nothing(
    client: Any,
    rt: Any,
    patient_id: int,
    integration_token: str,
    message: str,
    code: str,
    error: str,
    words: str,
) -> None:
    response, ack = _post_hl7(client, message, integration_token)
    assert response.status_code == 200
    assert ack["MSA"][1:3] == [code, "LAB000123"] and words in ack["MSA"][3], ack
    assert ack["ERR"][3].startswith(error + "^")
    assert _count(rt) == 0


def test_a_body_that_is_not_hl7_is_rejected(client: Any, integration_token: str) -> None:
    response, ack = _post_hl7(client, "hello", integration_token)
    assert response.status_code == 400 and ack["MSA"][1] == "AR"
    latin = client.post(
        "/hl7/oru",
        data=oru(CALCIUM).replace("Ana", "Ana\xe9").encode("latin-1"),
        headers={"Authorization": f"Bearer {integration_token}", "Content-Type": HL7_TYPE},
    )
    assert latin.status_code == 400 and b"MSA|AR" in latin.data  # not UTF-8, and no charset named
    huge = client.post(
        "/hl7/oru",
        data=b"MSH|" + b"x" * (1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {integration_token}", "Content-Type": HL7_TYPE},
    )
    assert huge.status_code == 413
    assert client.get("/hl7/oru", headers={"Authorization": f"Bearer {integration_token}"}).status_code == 405


@pytest.mark.commits("four connections at once")
def test_the_same_result_sent_at_once_by_four_connections_is_stored_once(
    client: Any, rt: Any, patient_id: int, integration_token: str, app: Any
) -> None:
    def send() -> int:
        with app.test_client() as own:
            return int(_post_fhir(own, "/fhir/Observation", observation(), integration_token).status_code)

    assert sorted(run_concurrently(send)) == [200, 200, 200, 201]
    assert _count(rt) == 1


def test_a_time_without_an_offset_is_the_care_teams_local_time(
    client: Any, rt: Any, patient_id: int, integration_token: str
) -> None:
    message = oru(
        CALCIUM.replace("|20251103083000-0500", "|202511030830"), sent="20251103100500", taken="202511030830"
    )
    _, ack = _post_hl7(client, message, integration_token)
    assert ack["MSA"][1] == "AA", ack
    (view,) = _views(rt, patient_id)
    assert view.taken_at == datetime(2025, 11, 3, 13, 30, tzinfo=UTC)  # America/New_York, EST


# ----------------------------------------------------------------------------------- the service itself
def test_record_result_says_what_it_did_and_returns_the_row(rt: Any, patient_id: int) -> None:
    """The contract the alert wiring builds on: each outcome names the row stored and what it replaced."""

    def item(value: float | None, status: str, ident: str = "K1") -> labs.IncomingResult:
        return labs.IncomingResult(
            source=LabSource.FHIR,
            source_key=f"{LAB_IDS}|{ident}",
            patient=labs.PatientRef(mrn=MRN),
            code="2000-8",
            status=LabStatus(status),
            value=value,
            unit="mmol/L",
            effective_at=datetime(2025, 11, 3, 13, 30, tzinfo=UTC),
        )

    def record(value: float | None, status: str) -> labs.RecordOutcome:
        with rt.unit_of_work() as session:
            return labs.record_result(session, rt, item(value, status))

    stored = record(2.7, "preliminary")
    assert stored.outcome == labs.Outcome.STORED and stored.changed and stored.result.id is not None
    assert [v.value for v in stored.views()] == [2.7]
    assert record(2.7, "preliminary").outcome == labs.Outcome.DUPLICATE
    final = record(2.8, "final")
    assert (final.outcome, final.previous.id) == (labs.Outcome.REPLACED, stored.result.id)  # type: ignore[union-attr]
    late = record(2.75, "preliminary")  # a preliminary arriving after the final: history only
    assert late.outcome == labs.Outcome.SUPERSEDED and not late.changed
    withdrawn = record(None, "entered-in-error")
    assert withdrawn.outcome == labs.Outcome.WITHDRAWN and withdrawn.views()[0].withdrawn
    (view,) = _views(rt, patient_id)
    assert view.withdrawn and view.result_id == withdrawn.result.id


# ----------------------------------------------------------------------------------------------- roles
def test_a_labs_write_client_writes_labs_and_reads_nothing(
    client: Any, rt: Any, patient_id: int, integration_token: str, nurse_token: str, admin_token: str
) -> None:
    integration = {"Authorization": f"Bearer {integration_token}"}
    for path in (
        f"/api/v1/patients/{patient_id}",
        "/api/v1/patients",
        "/api/v1/alerts",
        f"/api/v1/patients/{patient_id}/labs",
        f"/fhir/Patient/{patient_id}",
        f"/fhir/Observation?patient={patient_id}",
        "/fhir/Flag",
    ):
        assert client.get(path, headers=integration).status_code == 403, path
    assert _post_fhir(client, "/fhir/Observation", observation(), integration_token).status_code == 201

    # A nurse token does not send labs; an admin may (a backfill); no token is a 401.
    _outcome(_post_fhir(client, "/fhir/Observation", observation(ident="N1"), nurse_token), 403, "forbidden")
    response, _ = _post_hl7(client, oru(CALCIUM), nurse_token)
    assert response.status_code == 403 and response.json["error"] == "forbidden"
    assert _post_fhir(client, "/fhir/Observation", observation(ident="A1"), admin_token).status_code == 201
    assert client.post("/hl7/oru", data=oru(CALCIUM)).status_code == 401
    # Nor does a nurse of no care team read them (a nurse's token sees her teams' patients only).
    labs_path = f"/api/v1/patients/{patient_id}/labs"
    assert client.get(labs_path, headers={"Authorization": f"Bearer {nurse_token}"}).status_code == 403
    assert client.get(labs_path, headers={"Authorization": f"Bearer {admin_token}"}).status_code == 200

    # Integration tokens are made like any other (API or CLI): a client with scopes; never a staff account.
    made = client.post(
        "/api/v1/tokens",
        json={"name": "lab-interface-2", "client": "lab-interface", "scopes": ["labs:write"]},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert made.status_code == 201 and made.json["scopes"] == ["labs:write"] and made.json["role"] is None
    staff = client.post(
        "/api/v1/staff",
        json={"email": "lab@example.org", "name": "Lab", "role": "integration"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert staff.status_code == 400


def test_reading_labs_is_audited_and_an_unknown_patient_is_a_404(
    client: Any, rt: Any, patient_id: int, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    assert client.get(f"/api/v1/patients/{patient_id}/labs", headers=auth).json["labs"] == []
    missing = client.get("/api/v1/patients/999999/labs", headers=auth)
    assert missing.status_code == 404 and missing.json["error"] == "not_found"
    bad = client.get(f"/api/v1/patients/{patient_id}/labs?since=2025-11-01T00:00:00", headers=auth)
    assert bad.status_code == 400
    views = [r for r in _audit(rt) if r.action == "view_labs"]
    assert [(r.patient_id, r.subject_type) for r in views] == [(patient_id, "patient")]


# ------------------------------------------------------------------- issue 13: the request's commit refused
@pytest.fixture
def commit_refused(rt: Any) -> Iterator[None]:
    """The database refuses the request's audit rows as a concurrent writer's unique key would: the
    refusal comes at the request's own commit (web/unit_of_work.py), after the view returned."""
    with rt.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse_lab_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'duplicate' USING ERRCODE = 'unique_violation'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_lab_audit BEFORE INSERT ON audit_log FOR EACH ROW "
            "WHEN (NEW.action = 'record_lab_result') EXECUTE FUNCTION refuse_lab_audit()"
        )
    try:
        yield
    finally:
        with rt.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER refuse_lab_audit ON audit_log")
            connection.exec_driver_sql("DROP FUNCTION refuse_lab_audit()")


def test_a_commit_refused_as_a_duplicate_is_an_ae_ack_and_stores_nothing(
    client: Any, rt: Any, patient_id: int, integration_token: str, commit_refused: None
) -> None:
    response, ack = _post_hl7(client, oru(CALCIUM), integration_token)
    assert response.status_code == 200
    assert ack["MSA"][1] == "AE" and "concurrent" in ack["MSA"][3], ack
    assert _count(rt) == 0


def test_a_commit_refused_as_a_duplicate_is_a_409_outcome_and_stores_nothing(
    client: Any, rt: Any, patient_id: int, integration_token: str, commit_refused: None
) -> None:
    response = _post_fhir(client, "/fhir/Observation", observation(), integration_token)
    assert "concurrent" in _outcome(response, 409, "conflict")
    assert _count(rt) == 0
