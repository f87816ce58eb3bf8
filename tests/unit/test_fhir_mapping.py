"""FHIR mapping (pro_service.fhir) on in-memory rows, every resource validated with `fhir.resources`.

`fhir.resources` 8 ships R5 as its default package and R4B (4.3.0) as `fhir.resources.R4B`; there is no
Python model library for R4 (4.0.1) that runs on pydantic 2 (fhir.resources 6.x is R4/R4B on pydantic 1).
R4B changed none of the resources we serve (Patient, Questionnaire, QuestionnaireResponse, Flag, Bundle,
OperationOutcome, CapabilityStatement), so its models check R4 structure and datatypes. The library does
not check required code bindings, invariants or the answers against the Questionnaire: `assert_valid`
adds those checks from the R4 specification.

`assert_valid` is shared with tests/integration/test_fhir.py.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from pro_service import fhir
from pro_service.instruments import Instrument, load_instruments
from pro_service.models import (
    Alert,
    AlertStatus,
    Answer,
    AnswerStatus,
    CheckIn,
    CheckInStatus,
    Patient,
    PatientStatus,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

# R4 required bindings (http://hl7.org/fhir/R4/valueset-*.html) the library does not check.
R4_CODES: dict[str, set[str]] = {
    "contact-point-system": {"phone", "fax", "email", "pager", "url", "sms", "other"},
    "contact-point-use": {"home", "work", "temp", "old", "mobile"},
    "name-use": {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
    "identifier-use": {"usual", "official", "temp", "secondary", "old"},
    "publication-status": {"draft", "active", "retired", "unknown"},
    "item-type": {
        *("group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string"),
        *("text", "url", "choice", "open-choice", "attachment", "reference", "quantity"),
    },
    "questionnaire-enable-operator": {"exists", "=", "!=", ">", "<", ">=", "<="},
    "questionnaire-answers-status": {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    "flag-status": {"active", "inactive", "entered-in-error"},
    "observation-status": {
        *("registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error"),
        "unknown",
    },
    "bundle-type": {
        *("document", "message", "transaction", "transaction-response", "batch", "batch-response"),
        *("history", "searchset", "collection"),
    },
    "search-entry-mode": {"match", "include", "outcome"},
    "issue-severity": {"fatal", "error", "warning", "information"},
    "issue-type": {
        *("invalid", "structure", "required", "value", "invariant", "security", "login", "unknown"),
        *("expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate"),
        *("multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension"),
        *("too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store"),
        *("exception", "timeout", "incomplete", "throttled", "informational"),
    },
    "narrative-status": {"generated", "extensions", "additional", "empty"},
    "capability-statement-kind": {"instance", "capability", "requirements"},
    "restful-capability-mode": {"client", "server"},
    "type-restful-interaction": {
        *("read", "vread", "update", "patch", "delete", "history-instance", "history-type"),
        *("create", "search-type"),
    },
    "search-param-type": {
        *("number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"),
    },
    "versioning-policy": {"no-version", "versioned", "versioned-update"},
}
ANSWER_KEY = {
    "boolean": "valueBoolean",
    "integer": "valueInteger",
    "decimal": "valueDecimal",
    "string": "valueString",
    "text": "valueString",
    "choice": "valueCoding",
}


# --------------------------------------------------------------------------------------- validation
def _code(value: str, value_set: str) -> None:
    assert value in R4_CODES[value_set], f"{value!r} is not in R4 {value_set}"


def _walk(node: Any, path: str = "") -> None:
    """JSON rules every resource obeys: no null, empty string, empty array or empty object (ele-1), and
    every extension has a url and exactly one of value[x] or extensions (ext-1)."""
    assert node is not None and node != "" and node != [] and node != {}, f"empty value at {path or '/'}"
    if isinstance(node, dict):
        if "url" in node and ("extension" in node or any(k.startswith("value") for k in node)):
            has_value = [k for k in node if k.startswith("value")]
            assert len(has_value) + ("extension" in node) == 1, f"extension at {path}: value or extensions"
        for key, value in node.items():
            if key == "extension":
                assert all(isinstance(e, dict) and e.get("url") for e in value), f"extension url at {path}"
            _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}/{i}")


def _narrative(resource: dict[str, Any]) -> None:
    text = resource.get("text")
    if text is None:
        return
    _code(text["status"], "narrative-status")
    root = ET.fromstring(text["div"])  # noqa: S314 - our own output
    assert root.tag == "{http://www.w3.org/1999/xhtml}div"
    assert not any(el.tag.endswith(("script", "form", "iframe")) for el in root.iter())
    assert not any(name.startswith("on") for el in root.iter() for name in el.attrib)


def _patient(p: dict[str, Any]) -> None:
    for point in p.get("telecom", []):
        _code(point["system"], "contact-point-system")
        _code(point["use"], "contact-point-use")
    for name in p.get("name", []):
        _code(name["use"], "name-use")
    for ident in p.get("identifier", []):
        _code(ident["use"], "identifier-use")


def _items(items: list[dict[str, Any]], seen: list[str]) -> None:
    for item in items:
        _code(item["type"], "item-type")
        assert item["linkId"] not in seen, "que-2: linkIds are unique"
        if "answerOption" in item:
            assert item["type"] in ("choice", "open-choice"), "que-5: options only on choice items"
            codes = [o["valueCoding"]["code"] for o in item["answerOption"]]
            assert len(codes) == len(set(codes))
        for condition in item.get("enableWhen", []):
            _code(condition["operator"], "questionnaire-enable-operator")
            assert condition["question"] in seen, "enableWhen refers to an earlier question"
        if len(item.get("enableWhen", [])) > 1:
            assert "enableBehavior" in item, "que-12"
        seen.append(item["linkId"])
        _items(item.get("item", []), seen)


def _questionnaire(q: dict[str, Any]) -> None:
    _code(q["status"], "publication-status")
    assert re.fullmatch(r"[A-Z]([A-Za-z0-9_]){0,254}", q["name"]), "que-0: computable name"
    _items(q["item"], [])


def check_response_against(qr: dict[str, Any], q: dict[str, Any]) -> None:
    """The answers fit the Questionnaire: known linkIds in order, value types, coded options, repeats."""
    assert qr["questionnaire"] == f"{q['url']}|{q['version']}"
    items = {item["linkId"]: item for item in q["item"]}
    order = list(items)
    positions = [order.index(item["linkId"]) for item in qr.get("item", [])]
    assert positions == sorted(positions), "items in Questionnaire order"
    for answered in qr.get("item", []):
        item = items[answered["linkId"]]
        if "text" in answered:
            assert answered["text"] == item["text"]
        answers = answered.get("answer", [])
        if len(answers) > 1:
            assert item.get("repeats") is True
        for answer in answers:
            keys = [k for k in answer if k.startswith("value")]
            assert keys == [ANSWER_KEY[item["type"]]], (answered["linkId"], keys)
            if item["type"] == "choice":
                options = [o["valueCoding"] for o in item["answerOption"]]
                assert {k: answer["valueCoding"][k] for k in ("system", "code")} in [
                    {k: o[k] for k in ("system", "code")} for o in options
                ]
            if item["type"] == "integer":
                bounds = {e["url"]: e["valueInteger"] for e in item.get("extension", [])}
                assert bounds[fhir.EXT_MIN_VALUE] <= answer["valueInteger"] <= bounds[fhir.EXT_MAX_VALUE]


def _response(qr: dict[str, Any]) -> None:
    _code(qr["status"], "questionnaire-answers-status")
    assert qr["subject"]["reference"].startswith("Patient/")


def _flag(f: dict[str, Any]) -> None:
    _code(f["status"], "flag-status")


def _observation(o: dict[str, Any]) -> None:
    _code(o["status"], "observation-status")
    assert o["subject"]["reference"].startswith("Patient/")
    assert not ("dataAbsentReason" in o and any(k.startswith("value") for k in o)), "obs-6"
    if "valueQuantity" in o:
        assert o["valueQuantity"]["system"] == "http://unitsofmeasure.org", "canonical values are UCUM"
    for reference in o.get("derivedFrom", []):
        assert reference["reference"].startswith("Observation/")


def _bundle(b: dict[str, Any]) -> None:
    _code(b["type"], "bundle-type")
    assert b["total"] == b["total"] and b["total"] >= len(b.get("entry", []))
    for entry in b.get("entry", []):
        resource = entry["resource"]
        assert re.fullmatch(
            r"https?://\S+/" + resource["resourceType"] + "/" + resource["id"], entry["fullUrl"]
        )
        _code(entry["search"]["mode"], "search-entry-mode")
        assert_valid(resource)
    for link in b.get("link", []):
        assert link["relation"] and re.match(r"https?://", link["url"])


def _outcome(o: dict[str, Any]) -> None:
    for issue in o["issue"]:
        _code(issue["severity"], "issue-severity")
        _code(issue["code"], "issue-type")


def _capability(c: dict[str, Any]) -> None:
    _code(c["status"], "publication-status")
    _code(c["kind"], "capability-statement-kind")
    assert c["fhirVersion"] == "4.0.1"
    for rest in c["rest"]:
        _code(rest["mode"], "restful-capability-mode")
        for resource in rest["resource"]:
            _code(resource["versioning"], "versioning-policy")
            for interaction in resource["interaction"]:
                _code(interaction["code"], "type-restful-interaction")
            for param in resource["searchParam"]:
                _code(param["type"], "search-param-type")


CHECKS = {
    "Patient": _patient,
    "Questionnaire": _questionnaire,
    "QuestionnaireResponse": _response,
    "Flag": _flag,
    "Observation": _observation,
    "Bundle": _bundle,
    "OperationOutcome": _outcome,
    "CapabilityStatement": _capability,
}


def assert_valid(resource: dict[str, Any]) -> Any:
    """Parse with fhir.resources (R4B models) and apply the R4 checks above; returns the model."""
    resource_type = resource["resourceType"]
    model = get_fhir_model_class(resource_type).model_validate(resource)
    _walk(resource)
    _narrative(resource)
    CHECKS[resource_type](resource)
    return model


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def instrument() -> Instrument:
    found = load_instruments(ROOT / "config" / "instruments").get("sre-weekly", 1)
    assert found is not None
    return found


def make_patient(**overrides: Any) -> Patient:
    values: dict[str, Any] = {
        "id": 7,
        "mrn": "MRN-0042",
        "given_name": "Ana",
        "family_name": "López",
        "phone": "+15551230001",
        "timezone": "America/New_York",
        "language": "en",
        "care_team_id": 1,
        "status": PatientStatus.ACTIVE,
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=1),
    }
    return Patient(**{**values, **overrides})


def answer(code: str, status: AnswerStatus, value: Any = None, raw: str | None = None) -> Answer:
    return Answer(item_code=code, status=status, value=value, raw_text=raw, answered_at=T0)


def make_check_in(status: CheckInStatus, answers: list[Answer], **overrides: Any) -> CheckIn:
    values: dict[str, Any] = {
        "id": 31,
        "patient_id": 7,
        "instrument_code": "sre-weekly",
        "instrument_version": 1,
        "status": status,
        "created_at": T0 - timedelta(minutes=5),
        "started_at": T0,
        "closed_at": T0 + timedelta(minutes=20) if not status.is_open else None,
    }
    check_in = CheckIn(**{**values, **overrides})
    check_in.answers = answers
    return check_in


FULL_ANSWERS = [
    answer("pain_new", AnswerStatus.ANSWERED, True, "yes"),
    answer("pain_worst", AnswerStatus.ANSWERED, 8, "8"),
    answer("pain_site", AnswerStatus.ANSWERED, [1, 3], "1 3"),
    answer("pain_at_rest", AnswerStatus.UNREADABLE, None, "it comes & goes <sometimes>"),
    answer("sudden_immobile", AnswerStatus.ANSWERED, False, "no"),
    answer("neuro", AnswerStatus.MISSING),
    answer("bladder_bowel", AnswerStatus.ANSWERED, False, "No"),
    answer("calcium_sx", AnswerStatus.ANSWERED, [], "0"),
    answer("anything_else", AnswerStatus.ANSWERED, "Back hurts at night", "Back hurts at night"),
]


def make_alert(status: AlertStatus = AlertStatus.OPEN, **overrides: Any) -> Alert:
    values: dict[str, Any] = {
        "id": 12,
        "ref": "KX7MPA",
        "patient_id": 7,
        "check_in_id": 31,
        "category": "spinal_cord_compression",
        "urgency": "urgent",
        "urgency_rank": 3,
        "status": status,
        "ruleset": "sre",
        "ruleset_version": 1,
        "opened_at": T0,
        "updated_at": T0,
    }
    if status != AlertStatus.OPEN:
        values["acknowledged_at"] = T0 + timedelta(minutes=3)
    if status == AlertStatus.RESOLVED:
        values["resolved_at"] = T0 + timedelta(hours=2)
    return Alert(**{**values, **overrides})


# ---------------------------------------------------------------------------------------------- Patient
def test_patient_carries_mrn_name_phone_and_language() -> None:
    resource = fhir.patient(make_patient())
    model = assert_valid(resource)

    assert model.id == "7" and model.active is True
    assert resource["identifier"][0]["system"] == fhir.MRN_SYSTEM
    assert resource["identifier"][0]["value"] == "MRN-0042"
    assert resource["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert resource["name"] == [{"use": "official", "family": "López", "given": ["Ana"]}]
    assert [(t["system"], t["value"], t["use"]) for t in resource["telecom"]] == [
        ("sms", "+15551230001", "mobile"),
        ("phone", "+15551230001", "mobile"),
    ]
    language = resource["communication"][0]["language"]["coding"][0]
    assert (language["system"], language["code"]) == ("urn:ietf:bcp:47", "en")
    assert resource["meta"]["lastUpdated"] == "2026-03-02T16:00:00.000Z"
    assert "managingOrganization" not in resource


@pytest.mark.parametrize(
    ("status", "active"),
    [(PatientStatus.ACTIVE, True), (PatientStatus.PAUSED, True), (PatientStatus.DISCHARGED, False)],
)
def test_patient_is_inactive_only_once_discharged(status: PatientStatus, active: bool) -> None:
    resource = fhir.patient(make_patient(status=status, language="es"))
    assert_valid(resource)
    assert resource["active"] is active
    assert resource["communication"][0]["language"]["coding"][0]["code"] == "es"


# ----------------------------------------------------------------------------------------- Questionnaire
def test_questionnaire_from_the_instrument(instrument: Instrument) -> None:
    q = fhir.questionnaire(instrument)
    assert_valid(q)

    assert q["id"] == "sre-weekly-1" and q["url"] == "urn:pro-service:questionnaire:sre-weekly"
    assert q["version"] == "1" and q["status"] == "active" and q["name"] == "SreWeekly"
    assert q["title"] == instrument.title["en"]
    items = {item["linkId"]: item for item in q["item"]}
    assert list(items) == list(instrument.item_codes)
    assert {code: item["type"] for code, item in items.items()} == {
        "pain_new": "boolean",
        "pain_worst": "integer",
        "pain_site": "choice",
        "pain_at_rest": "boolean",
        "sudden_immobile": "boolean",
        "neuro": "boolean",
        "bladder_bowel": "boolean",
        "calcium_sx": "choice",
        "anything_else": "text",
    }
    assert items["pain_new"]["text"] == instrument.item("pain_new").text["en"]
    spanish = items["pain_new"]["_text"]["extension"][0]
    assert spanish["url"] == fhir.EXT_TRANSLATION
    assert spanish["extension"] == [
        {"url": "lang", "valueCode": "es"},
        {"url": "content", "valueString": instrument.item("pain_new").text["es"]},
    ]
    assert items["pain_worst"]["extension"] == [
        {"url": fhir.EXT_MIN_VALUE, "valueInteger": 0},
        {"url": fhir.EXT_MAX_VALUE, "valueInteger": 10},
    ]
    site = items["pain_site"]
    assert site["repeats"] is True
    assert [o["valueCoding"]["code"] for o in site["answerOption"]] == ["1", "2", "3", "4", "5"]
    assert {o["valueCoding"]["system"] for o in site["answerOption"]} == {
        "urn:pro-service:questionnaire:sre-weekly:pain_site"
    }
    assert site["answerOption"][0]["valueCoding"]["display"] == "Back or neck"
    for code in ("pain_site", "pain_at_rest", "sudden_immobile"):
        assert items[code]["enableWhen"] == [{"question": "pain_worst", "operator": "!=", "answerInteger": 0}]
    assert "enableWhen" not in items["neuro"]
    calcium = items["calcium_sx"]["answerOption"]
    assert [o["valueCoding"]["code"] for o in calcium] == ["1", "2", "3", "4", "5", "6", "0"]
    assert calcium[-1]["extension"] == [{"url": fhir.EXT_OPTION_EXCLUSIVE, "valueBoolean": True}]


def test_questionnaire_ids_round_trip() -> None:
    assert fhir.parse_questionnaire_id("sre-weekly-1") == ("sre-weekly", 1)
    assert fhir.parse_questionnaire_id("sre-weekly-12") == ("sre-weekly", 12)
    for bad in ("sre-weekly", "sre-weekly-", "-1", "1", "sre-weekly-x", ""):
        assert fhir.parse_questionnaire_id(bad) is None


# -------------------------------------------------------------------------------- QuestionnaireResponse
def test_completed_check_in_with_every_kind_of_answer(instrument: Instrument) -> None:
    check_in = make_check_in(CheckInStatus.COMPLETED, list(FULL_ANSWERS))
    qr = fhir.questionnaire_response(check_in, instrument)
    assert_valid(qr)
    check_response_against(qr, fhir.questionnaire(instrument))

    assert qr["id"] == "31" and qr["status"] == "completed"
    assert qr["questionnaire"] == "urn:pro-service:questionnaire:sre-weekly|1"
    assert qr["subject"] == {"reference": "Patient/7"} and qr["source"] == {"reference": "Patient/7"}
    assert qr["authored"] == "2026-03-02T15:20:00.000Z"
    items = {item["linkId"]: item for item in qr["item"]}
    assert "neuro" not in items, "missing answers are omitted"
    assert items["pain_new"]["answer"] == [{"valueBoolean": True}]
    assert items["pain_worst"]["answer"] == [{"valueInteger": 8}]
    system = "urn:pro-service:questionnaire:sre-weekly:pain_site"
    assert items["pain_site"]["answer"] == [
        {"valueCoding": {"system": system, "code": "1", "display": "Back or neck"}},
        {"valueCoding": {"system": system, "code": "3", "display": "Hip or pelvis"}},
    ]
    assert [a["valueCoding"]["code"] for a in items["calcium_sx"]["answer"]] == ["0"]
    assert items["anything_else"]["answer"] == [{"valueString": "Back hurts at night"}]
    assert items["bladder_bowel"]["answer"] == [{"valueBoolean": False}]

    unreadable = items["pain_at_rest"]
    assert "answer" not in unreadable
    assert unreadable["extension"] == [
        {"url": fhir.EXT_DATA_ABSENT_REASON, "valueCode": "as-text"},
        {"url": fhir.EXT_UNREADABLE_REPLY, "valueString": "it comes & goes <sometimes>"},
    ]
    assert "it comes &amp; goes &lt;sometimes&gt;" in qr["text"]["div"]  # shown, escaped


def test_skipped_items_are_omitted_and_a_no_to_anything_else_is_kept(instrument: Instrument) -> None:
    answers = [
        answer("pain_new", AnswerStatus.ANSWERED, False, "no"),
        answer("pain_worst", AnswerStatus.ANSWERED, 0, "0"),
        answer("pain_site", AnswerStatus.SKIPPED),
        answer("pain_at_rest", AnswerStatus.SKIPPED),
        answer("sudden_immobile", AnswerStatus.SKIPPED),
        answer("anything_else", AnswerStatus.ANSWERED, None, " No "),
    ]
    qr = fhir.questionnaire_response(make_check_in(CheckInStatus.COMPLETED, answers), instrument)
    assert_valid(qr)
    check_response_against(qr, fhir.questionnaire(instrument))
    assert [item["linkId"] for item in qr["item"]] == ["pain_new", "pain_worst", "anything_else"]
    assert qr["item"][-1]["answer"] == [{"valueString": "No"}]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CheckInStatus.PENDING, "in-progress"),
        (CheckInStatus.IN_PROGRESS, "in-progress"),
        (CheckInStatus.COMPLETED, "completed"),
        (CheckInStatus.EXPIRED, "stopped"),
        (CheckInStatus.CANCELLED, "stopped"),
    ],
)
def test_check_in_status_maps_to_r4_status(
    instrument: Instrument, status: CheckInStatus, expected: str
) -> None:
    check_in = make_check_in(status, [answer("pain_new", AnswerStatus.ANSWERED, True, "y")])
    qr = fhir.questionnaire_response(check_in, instrument)
    assert_valid(qr)
    assert qr["status"] == expected
    assert qr["extension"] == [{"url": fhir.EXT_CHECK_IN_STATUS, "valueCode": status.value}]
    assert qr["authored"] == fhir.instant(check_in.closed_at or T0)


def test_pending_check_in_without_answers_has_no_items(instrument: Instrument) -> None:
    check_in = make_check_in(CheckInStatus.PENDING, [], started_at=None)
    qr = fhir.questionnaire_response(check_in, instrument)
    assert_valid(qr)
    assert "item" not in qr and qr["authored"] == fhir.instant(T0 - timedelta(minutes=5))


def test_a_check_in_whose_instrument_version_is_gone_still_maps(instrument: Instrument) -> None:
    qr = fhir.questionnaire_response(make_check_in(CheckInStatus.COMPLETED, list(FULL_ANSWERS)), None)
    assert_valid(qr)
    items = {item["linkId"]: item for item in qr["item"]}
    assert items["pain_new"]["answer"] == [{"valueBoolean": True}]
    assert [a["valueCoding"]["code"] for a in items["pain_site"]["answer"]] == ["1", "3"]
    assert "text" not in items["pain_new"]


# ------------------------------------------------------------------------------------------------- Flag
@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [(AlertStatus.OPEN, "active"), (AlertStatus.ACKNOWLEDGED, "active"), (AlertStatus.RESOLVED, "inactive")],
)
def test_flag_from_alert(status: AlertStatus, fhir_status: str) -> None:
    resource = fhir.flag(make_alert(status))
    assert_valid(resource)

    assert resource["status"] == fhir_status
    assert resource["subject"] == {"reference": "Patient/7"}
    assert resource["code"]["coding"] == [
        {
            "system": "urn:pro-service:alert-category",
            "code": "spinal_cord_compression",
            "display": "Possible spinal cord compression",
        }
    ]
    assert resource["code"]["text"] == "Possible spinal cord compression"
    assert resource["category"][0]["coding"][0]["code"] == "clinical"
    assert resource["identifier"] == [{"system": fhir.ALERT_REF_SYSTEM, "value": "KX7MPA"}]
    assert resource["period"]["start"] == "2026-03-02T15:00:00.000Z"
    if status == AlertStatus.RESOLVED:
        assert resource["period"]["end"] == "2026-03-02T17:00:00.000Z"
    else:
        assert "end" not in resource["period"]
    extensions = {e["url"]: e for e in resource["extension"]}
    priority = extensions[fhir.EXT_FLAG_PRIORITY]["valueCodeableConcept"]
    assert [(c["system"], c["code"]) for c in priority["coding"]] == [
        ("http://hl7.org/fhir/flag-priority-code", "PH"),
        ("urn:pro-service:alert-urgency", "urgent"),
    ]
    assert extensions[fhir.EXT_ALERT_STATUS]["valueCode"] == status.value
    assert extensions[fhir.EXT_FLAG_DETAIL]["valueReference"] == {"reference": "QuestionnaireResponse/31"}


@pytest.mark.parametrize(("urgency", "code"), [("urgent", "PH"), ("same_day", "PM"), ("routine", "PL")])
def test_flag_priority_follows_urgency(urgency: str, code: str) -> None:
    resource = fhir.flag(make_alert(urgency=urgency, check_in_id=None, category="patient_message"))
    assert_valid(resource)
    priority = resource["extension"][0]["valueCodeableConcept"]
    assert priority["coding"][0]["code"] == code and priority["coding"][1]["code"] == urgency
    assert all(e["url"] != fhir.EXT_FLAG_DETAIL for e in resource["extension"])
    assert resource["code"]["text"] == "Message from the patient"


# -------------------------------------------------------------------------- Bundle, outcome, metadata
def test_searchset_bundle_with_paging_links(instrument: Instrument) -> None:
    base = "https://pro.example.org/fhir"
    resources = [fhir.patient(make_patient()), fhir.flag(make_alert()), fhir.questionnaire(instrument)]
    links = {"self": f"{base}/Flag?_count=3&_offset=0", "next": f"{base}/Flag?_count=3&_offset=3"}
    bundle = fhir.searchset(base, resources, 7, links)
    assert_valid(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 7
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        f"{base}/Patient/7",
        f"{base}/Flag/12",
        f"{base}/Questionnaire/sre-weekly-1",
    ]
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"match"}
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]


def test_empty_searchset_has_no_entry_array() -> None:
    bundle = fhir.searchset("http://x/fhir", [], 0, {"self": "http://x/fhir/Flag?_count=50&_offset=0"})
    assert_valid(bundle)
    assert "entry" not in bundle and bundle["total"] == 0


def test_operation_outcome_and_capability_statement() -> None:
    assert_valid(fhir.operation_outcome("not-found", "Patient/9 is not known"))
    statement = fhir.capability_statement("https://pro.example.org/fhir", "0.1.0", T0)
    assert_valid(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Patient", "Questionnaire", "QuestionnaireResponse", "Flag", "Observation"}
    assert {i["code"] for i in resources["Observation"]["interaction"]} == {"read", "search-type", "create"}
    assert statement["rest"][0]["interaction"] == [{"code": "transaction"}]
    assert {p["name"] for p in resources["Flag"]["searchParam"]} >= {"patient", "date", "status"}
    assert {p["name"] for p in resources["QuestionnaireResponse"]["searchParam"]} >= {"patient", "authored"}


# --------------------------------------------------------------------------------- search parameters
def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "prefix", "start", "end"),
    [
        ("2026", "eq", _utc(2026, 1, 1), _utc(2027, 1, 1)),
        ("ge2026-02", "ge", _utc(2026, 2, 1), _utc(2026, 3, 1)),
        ("lt2026-12", "lt", _utc(2026, 12, 1), _utc(2027, 1, 1)),
        ("le2026-01-31", "le", _utc(2026, 1, 31), _utc(2026, 2, 1)),
        ("gt2026-01-05T10:00Z", "gt", _utc(2026, 1, 5, 10), _utc(2026, 1, 5, 10, 1)),
        ("2026-01-05T10:00:30+02:00", "eq", _utc(2026, 1, 5, 8, 0, 30), _utc(2026, 1, 5, 8, 0, 31)),
        ("2026-01-05T10:00:30 02:00", "eq", _utc(2026, 1, 5, 8, 0, 30), _utc(2026, 1, 5, 8, 0, 31)),
        ("ge2026-01-05T10:00:00-05:00", "ge", _utc(2026, 1, 5, 15), _utc(2026, 1, 5, 15, 0, 1)),
        (
            "2026-01-05T10:00:00.5Z",
            "eq",
            _utc(2026, 1, 5, 10, 0, 0, 500000),
            _utc(2026, 1, 5, 10, 0, 0, 600000),
        ),
    ],
)
def test_date_parameters(raw: str, prefix: str, start: datetime, end: datetime) -> None:
    assert fhir.parse_date(raw) == fhir.DateParam(prefix, start, end)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("yesterday", "invalid"),
        ("2026-13-01", "invalid"),
        ("2026-02-30", "invalid"),
        ("20260101", "invalid"),
        ("ne2026-01-01", "not-supported"),
        ("ap2026-01-01", "not-supported"),
        ("xx2026", "not-supported"),
        ("2026-01-01T25:00Z", "invalid"),
    ],
)
def test_bad_date_parameters(raw: str, code: str) -> None:
    with pytest.raises(fhir.SearchError) as caught:
        fhir.parse_date(raw)
    assert caught.value.code == code


def test_reference_token_and_or_parameters() -> None:
    assert fhir.parse_patient_reference("12") == 12
    assert fhir.parse_patient_reference("Patient/12") == 12
    assert fhir.parse_patient_reference("https://pro.example.org/fhir/Patient/12") == 12
    for bad in ("Flag/12", "abc", "Patient/", "99999999999", "12 OR 1=1"):
        with pytest.raises(fhir.SearchError):
            fhir.parse_patient_reference(bad)
    assert fhir.parse_token("urn:pro-service:mrn|MRN-1") == ("urn:pro-service:mrn", "MRN-1")
    assert fhir.parse_token("|MRN-1") == ("", "MRN-1")
    assert fhir.parse_token("MRN-1") == (None, "MRN-1")
    assert fhir.split_or("a,b\\,c") == ["a", "b,c"]
