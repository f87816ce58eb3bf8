"""FHIR R4 (4.0.1) views of our rows: pure functions from models and instruments to resource dicts.

No database, no Flask request, no clock: `pro_service.web.fhir` loads rows, calls these and serialises the
dicts as application/fhir+json. Nothing here needs a FHIR library; the tests validate every resource kind
with `fhir.resources`.

Mapping decisions (the EHR team's questions, answered once):

- Patient: the MRN is an `MR` identifier in `MRN_SYSTEM`; `active` is false once discharged; the mobile number
  is both an `sms` and a `phone` contact point; the preferred language is a BCP-47 code.
- Questionnaire: one per instrument version, id `<code>-<version>`, canonical `QUESTIONNAIRE_URL_PREFIX +
  code` with `version`. yes_no → boolean, integer → integer (minValue/maxValue extensions), multi_choice →
  choice with `repeats` and one coded answerOption per choice (0 = "none", exclusive, when allowed),
  free_text → text. Spanish texts are `translation` extensions. skip_if → enableWhen with operator `!=`
  (the item is asked unless the earlier answer *is* that value: an unknown answer asks the follow-ups).
- QuestionnaireResponse: one per check-in. Status: pending/in_progress → in-progress, completed → completed,
  expired/cancelled → stopped (abandoned part-way); our own status is kept in `EXT_CHECK_IN_STATUS`.
  `authored` is when it closed, else when it started (else when it was created). Answered items carry
  valueBoolean / valueInteger / valueCoding (one answer per choice) / valueString. Skipped and missing items
  are omitted (FHIR: unanswered items are absent). An *unreadable* reply is kept as an item with no answer
  (a string is not a valid answer to a boolean or integer question, and it must not read as one): the raw
  text is in `EXT_UNREADABLE_REPLY`, a data-absent-reason `as-text` says so, and the narrative shows it.
- Flag: one per alert. open/acknowledged → active, resolved → inactive (our status in `EXT_ALERT_STATUS`);
  category `clinical`; code = the alert category in `ALERT_CATEGORY_SYSTEM` with the dashboard's words;
  period = opened → resolved; urgency in HL7's standard `flag-priority` extension (urgent PH, same_day PM,
  routine PL) with our own urgency code beside it; the check-in that raised it in HL7's `flag-detail`.
- Observation: one per stored version of a lab result (services/labs.py); a search returns the current
  versions only, and an earlier version read by id names its successor (`EXT_REPLACED_BY`). The value is in
  the code's canonical unit (UCUM); the value as the lab reported it is in `EXT_REPORTED_VALUE`. A withdrawn
  (entered-in-error) result has no value. Category `laboratory`; code LOINC; identifiers: the sender's own
  (FHIR) and `LAB_RESULT_KEY_SYSTEM` `<source>|<key>`. An adjusted calcium the service computed names its
  inputs in `derivedFrom` and the formula and its source in `method`.

Lab results arrive through `pro_service.fhir_intake` (validated with `fhir.resources`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pro_service.instruments import Instrument, Item
from pro_service.labels import CHOICE_LABELS, URGENCY_LABELS, category_label
from pro_service.models import (
    Alert,
    AlertStatus,
    Answer,
    AnswerStatus,
    CheckIn,
    CheckInStatus,
    LabResult,
    LabSource,
    LabStatus,
    Patient,
    PatientStatus,
)

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

# Our own systems and extensions (URIs, documented in README and in the CapabilityStatement).
MRN_SYSTEM = "urn:pro-service:mrn"
QUESTIONNAIRE_URL_PREFIX = "urn:pro-service:questionnaire:"
ALERT_CATEGORY_SYSTEM = "urn:pro-service:alert-category"
ALERT_URGENCY_SYSTEM = "urn:pro-service:alert-urgency"
ALERT_REF_SYSTEM = "urn:pro-service:alert-ref"
EXT_ALERT_STATUS = "urn:pro-service:fhir:alert-status"
EXT_CHECK_IN_STATUS = "urn:pro-service:fhir:check-in-status"
EXT_UNREADABLE_REPLY = "urn:pro-service:fhir:unreadable-reply"
EXT_REPORTED_VALUE = "urn:pro-service:fhir:reported-value"
EXT_REPLACED_BY = "urn:pro-service:fhir:replaced-by"
LAB_RESULT_KEY_SYSTEM = "urn:pro-service:lab-result"

# HL7's.
HL7_EXT = "http://hl7.org/fhir/StructureDefinition/"
EXT_TRANSLATION = HL7_EXT + "translation"
EXT_MIN_VALUE = HL7_EXT + "minValue"
EXT_MAX_VALUE = HL7_EXT + "maxValue"
EXT_OPTION_EXCLUSIVE = HL7_EXT + "questionnaire-optionExclusive"
EXT_FLAG_PRIORITY = HL7_EXT + "flag-priority"
EXT_FLAG_DETAIL = HL7_EXT + "flag-detail"
EXT_DATA_ABSENT_REASON = HL7_EXT + "data-absent-reason"
FLAG_PRIORITY_SYSTEM = "http://hl7.org/fhir/flag-priority-code"
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
BCP47 = "urn:ietf:bcp:47"
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# HL7 v2 abnormal flags (OBX-8) and FHIR interpretations that are codes of v3 ObservationInterpretation.
INTERPRETATION_CODES = frozenset({"H", "HH", "L", "LL", "N", "A", "AA", "HU", "LU", "<", ">", "U", "D", "I"})
XHTML = "http://www.w3.org/1999/xhtml"

LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}
ITEM_TYPES = {"yes_no": "boolean", "integer": "integer", "multi_choice": "choice", "free_text": "text"}
QR_STATUS = {
    CheckInStatus.PENDING: "in-progress",
    CheckInStatus.IN_PROGRESS: "in-progress",
    CheckInStatus.COMPLETED: "completed",
    CheckInStatus.EXPIRED: "stopped",
    CheckInStatus.CANCELLED: "stopped",
}
QR_STATUS_SOURCES = {
    fhir: tuple(s for s, mapped in QR_STATUS.items() if mapped == fhir) for fhir in set(QR_STATUS.values())
}
FLAG_STATUS = {
    AlertStatus.OPEN: "active",
    AlertStatus.ACKNOWLEDGED: "active",
    AlertStatus.RESOLVED: "inactive",
}
FLAG_STATUS_SOURCES = {
    fhir: tuple(s for s, mapped in FLAG_STATUS.items() if mapped == fhir)
    for fhir in set(FLAG_STATUS.values())
}
FLAG_PRIORITY = {
    "urgent": ("PH", "High priority"),
    "same_day": ("PM", "Medium priority"),
    "routine": ("PL", "Low priority"),
}


# ------------------------------------------------------------------------------------------ primitives
def instant(value: datetime) -> str:
    """An R4 instant/dateTime in UTC with milliseconds: 2026-01-05T14:03:00.000Z."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _meta(last_updated: datetime | None) -> dict[str, Any]:
    return {"meta": {"lastUpdated": instant(last_updated)}} if last_updated is not None else {}


def _narrative(*paragraphs: str) -> dict[str, str]:
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs if p)
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}


def reference(resource_type: str, ident: object) -> dict[str, str]:
    return {"reference": f"{resource_type}/{ident}"}


def _translations(texts: Mapping[str, str], main: str = "en") -> dict[str, Any]:
    others = [(lang, text) for lang, text in sorted(texts.items()) if lang != main and text]
    if not others:
        return {}
    return {
        "extension": [
            {
                "url": EXT_TRANSLATION,
                "extension": [{"url": "lang", "valueCode": lang}, {"url": "content", "valueString": text}],
            }
            for lang, text in others
        ]
    }


# --------------------------------------------------------------------------------------------- Patient
def patient(p: Patient) -> dict[str, Any]:
    language = p.language if p.language in LANGUAGE_NAMES else "en"
    return {
        "resourceType": "Patient",
        "id": str(p.id),
        **_meta(p.updated_at or p.created_at),
        "text": _narrative(f"{p.given_name} {p.family_name}", f"MRN {p.mrn}"),
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": IDENTIFIER_TYPE_SYSTEM, "code": "MR", "display": "Medical record number"}
                    ],
                    "text": "MRN",
                },
                "system": MRN_SYSTEM,
                "value": p.mrn,
            }
        ],
        "active": p.status != PatientStatus.DISCHARGED,
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "telecom": [
            {"system": "sms", "value": p.phone, "use": "mobile", "rank": 1},
            {"system": "phone", "value": p.phone, "use": "mobile", "rank": 2},
        ],
        "communication": [
            {
                "language": {
                    "coding": [{"system": BCP47, "code": language, "display": LANGUAGE_NAMES[language]}],
                    "text": LANGUAGE_NAMES[language],
                },
                "preferred": True,
            }
        ],
    }


# ------------------------------------------------------------------------------------------ Questionnaire
def questionnaire_url(code: str) -> str:
    return QUESTIONNAIRE_URL_PREFIX + code


def questionnaire_id(code: str, version: int) -> str:
    return f"{code}-{version}"


def parse_questionnaire_id(ident: str) -> tuple[str, int] | None:
    """`sre-weekly-1` → ("sre-weekly", 1); None when it is not of that shape."""
    code, sep, version = ident.rpartition("-")
    if not sep or not code or not version.isdigit() or len(version) > 9:
        return None
    return code, int(version)


def answer_system(instrument_code: str, item_code: str) -> str:
    """The code system of one multi-choice item's options (their meaning is the item's)."""
    return f"{questionnaire_url(instrument_code)}:{item_code}"


def _computable_name(code: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", code) if part) or "Questionnaire"


def _option_display(item: Item, choice: int) -> str:
    if choice == 0:
        return "None of these"
    label = CHOICE_LABELS.get(item.code, {}).get(choice)
    return label[:1].upper() + label[1:] if label else f"Option {choice}"


def _questionnaire_item(instrument: Instrument, item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {"linkId": item.code, "prefix": str(instrument.item_codes.index(item.code) + 1)}
    out["text"] = item.text["en"]
    if extra := _translations(item.text):
        out["_text"] = extra
    out["type"] = ITEM_TYPES[item.kind]
    if item.kind == "integer":
        out["extension"] = [
            {"url": url, "valueInteger": bound}
            for url, bound in ((EXT_MIN_VALUE, item.minimum), (EXT_MAX_VALUE, item.maximum))
            if bound is not None
        ]
    if item.skip_if is not None:
        equals = item.skip_if.equals
        key = "answerBoolean" if isinstance(equals, bool) else "answerInteger"
        out["enableWhen"] = [{"question": item.skip_if.item, "operator": "!=", key: equals}]
    if item.kind == "multi_choice":
        out["repeats"] = True
        system = answer_system(instrument.code, item.code)
        options: list[dict[str, Any]] = [
            {"valueCoding": {"system": system, "code": str(c), "display": _option_display(item, c)}}
            for c in item.choices
        ]
        if item.none_allowed:
            none: dict[str, Any] = {
                "extension": [{"url": EXT_OPTION_EXCLUSIVE, "valueBoolean": True}],
                "valueCoding": {"system": system, "code": "0", "display": _option_display(item, 0)},
            }
            options.append(none)
        out["answerOption"] = options
    return out


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(instrument.code, instrument.version),
        "language": "en",
        "text": _narrative(instrument.title["en"], f"{len(instrument.items)} questions, sent by SMS"),
        "url": questionnaire_url(instrument.code),
        "version": str(instrument.version),
        "name": _computable_name(instrument.code),
        "title": instrument.title.get("en") or instrument.code,
    }
    if extra := _translations(instrument.title):
        out["_title"] = extra
    out.update(
        status="active",
        subjectType=["Patient"],
        publisher="pro-service",
        item=[_questionnaire_item(instrument, item) for item in instrument.items],
    )
    return out


# ------------------------------------------------------------------------------ QuestionnaireResponse
def authored(check_in: CheckIn) -> datetime:
    """When the set of answers was last authored: closed, else started, else created (the search uses it)."""
    return check_in.closed_at or check_in.started_at or check_in.created_at


def _choice_answers(system: str | None, item: Item | None, values: Sequence[Any]) -> list[dict[str, Any]]:
    codes = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if not codes:
        codes = [0]  # "none of these" (an empty list is how the parser says it)
    answers = []
    for code in codes:
        coding: dict[str, Any] = {"code": str(code)}
        if system is not None:
            coding = {"system": system, **coding}
        if item is not None:
            coding["display"] = _option_display(item, code)
        answers.append({"valueCoding": coding})
    return answers


def _answer_values(check_in: CheckIn, item: Item | None, answer: Answer) -> list[dict[str, Any]]:
    """The FHIR answer[] for one answered item ([] when there is nothing to say)."""
    value = answer.value
    kind = item.kind if item is not None else None
    if kind == "multi_choice" or (kind is None and isinstance(value, list)):
        system = answer_system(check_in.instrument_code, answer.item_code)
        return _choice_answers(system, item, value if isinstance(value, list) else [value])
    if isinstance(value, bool):
        return [{"valueBoolean": value}]
    if isinstance(value, int):
        return [{"valueInteger": value}]
    if isinstance(value, float):
        return [{"valueInteger": int(value)}] if value.is_integer() else [{"valueDecimal": value}]
    if isinstance(value, str) and value:
        return [{"valueString": value}]
    if value is None and kind == "free_text" and answer.raw_text and answer.raw_text.strip():
        # "No" / "nothing else": the parser keeps no value; the patient's words are the answer.
        return [{"valueString": answer.raw_text.strip()}]
    return []


def _answer_words(answers: Iterable[dict[str, Any]]) -> str:
    words = []
    for a in answers:
        if "valueBoolean" in a:
            words.append("Yes" if a["valueBoolean"] else "No")
        elif "valueCoding" in a:
            coding = a["valueCoding"]
            words.append(coding.get("display") or coding["code"])
        else:
            words.append(str(next(iter(a.values()))))
    return ", ".join(words)


def questionnaire_response(check_in: CheckIn, instrument: Instrument | None) -> dict[str, Any]:
    """`instrument`: the check-in's own version (None if that definition is gone: values keep their type)."""
    by_code = {a.item_code: a for a in check_in.answers}
    order = list(instrument.item_codes) if instrument is not None else []
    order += sorted(code for code in by_code if code not in order)
    items: list[dict[str, Any]] = []
    lines: list[str] = []
    for code in order:
        answer = by_code.get(code)
        if answer is None or answer.status in (AnswerStatus.SKIPPED, AnswerStatus.MISSING):
            continue
        item = instrument.item(code) if instrument is not None and code in instrument.item_codes else None
        out: dict[str, Any] = {"linkId": code}
        if item is not None:
            out["text"] = item.text["en"]
        question = item.text["en"] if item is not None else code
        if answer.status == AnswerStatus.UNREADABLE:
            raw = (answer.raw_text or "").strip()
            out["extension"] = [
                {"url": EXT_DATA_ABSENT_REASON, "valueCode": "as-text"},
                *([{"url": EXT_UNREADABLE_REPLY, "valueString": raw}] if raw else []),
            ]
            lines.append(f"{question} — reply not understood: “{raw}”")
        else:
            values = _answer_values(check_in, item, answer)
            if values:
                out["answer"] = values
            lines.append(f"{question} — {_answer_words(values) or 'no answer'}")
        items.append(out)

    status = QR_STATUS[check_in.status]
    out_qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(check_in.id),
        **_meta(
            _latest(
                check_in.created_at,
                check_in.started_at,
                check_in.closed_at,
                *(a.answered_at for a in check_in.answers),
            )
        ),
        "text": _narrative(
            f"Check-in {check_in.instrument_code} v{check_in.instrument_version}: {status}", *lines
        ),
        "extension": [{"url": EXT_CHECK_IN_STATUS, "valueCode": check_in.status.value}],
        "questionnaire": f"{questionnaire_url(check_in.instrument_code)}|{check_in.instrument_version}",
        "status": status,
        "subject": reference("Patient", check_in.patient_id),
        "authored": instant(authored(check_in)),
        "source": reference("Patient", check_in.patient_id),
    }
    if items:
        out_qr["item"] = items
    return out_qr


# ------------------------------------------------------------------------------------------------ Flag
def flag(alert: Alert) -> dict[str, Any]:
    label = category_label(alert.category)
    urgency_words = URGENCY_LABELS.get(alert.urgency, alert.urgency.replace("_", " ").capitalize())
    priority_code, priority_display = FLAG_PRIORITY.get(alert.urgency, ("PL", "Low priority"))
    period: dict[str, str] = {"start": instant(alert.opened_at)}
    if alert.resolved_at is not None:
        period["end"] = instant(alert.resolved_at)
    extensions: list[dict[str, Any]] = [
        {
            "url": EXT_FLAG_PRIORITY,
            "valueCodeableConcept": {
                "coding": [
                    {"system": FLAG_PRIORITY_SYSTEM, "code": priority_code, "display": priority_display},
                    {"system": ALERT_URGENCY_SYSTEM, "code": alert.urgency, "display": urgency_words},
                ],
                "text": urgency_words,
            },
        },
        {"url": EXT_ALERT_STATUS, "valueCode": alert.status.value},
    ]
    if alert.check_in_id is not None:
        extensions.append(
            {"url": EXT_FLAG_DETAIL, "valueReference": reference("QuestionnaireResponse", alert.check_in_id)}
        )
    return {
        "resourceType": "Flag",
        "id": str(alert.id),
        **_meta(_latest(alert.opened_at, alert.updated_at, alert.acknowledged_at, alert.resolved_at)),
        "text": _narrative(f"{urgency_words}: {label}", f"Alert {alert.ref}, {alert.status.value}"),
        "extension": extensions,
        "identifier": [{"system": ALERT_REF_SYSTEM, "value": alert.ref}],
        "status": FLAG_STATUS[alert.status],
        "category": [
            {"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": "clinical", "display": "Clinical"}]}
        ],
        "code": {
            "coding": [{"system": ALERT_CATEGORY_SYSTEM, "code": alert.category, "display": label}],
            "text": label,
        },
        "subject": reference("Patient", alert.patient_id),
        "period": period,
    }


# ----------------------------------------------------------------------------------------- Observation
def _number_text(value: float) -> str:
    return format(value, ".6g")


def observation(row: LabResult) -> dict[str, Any]:
    """One stored version of a lab result."""
    withdrawn = row.status == LabStatus.ENTERED_IN_ERROR
    value_words = "withdrawn (entered in error)"
    if not withdrawn and row.canonical_value is not None:
        value_words = f"{_number_text(row.canonical_value)} {row.canonical_unit}"
        if row.value is not None and row.unit and row.unit != row.canonical_unit:
            value_words += f" (reported {_number_text(row.value)} {row.unit})"
    lines = [f"{row.display}: {value_words}", f"{row.status.value}, sample taken {instant(row.effective_at)}"]
    if row.derived:
        lines.append("Computed by pro-service: " + str(row.raw.get("formula", "")))
    extensions: list[dict[str, Any]] = []
    if row.value is not None and row.unit and not row.derived:
        extensions.append(
            {"url": EXT_REPORTED_VALUE, "valueQuantity": {"value": row.value, "unit": row.unit}}
        )
    if row.replaced_by_id is not None:
        extensions.append(
            {"url": EXT_REPLACED_BY, "valueReference": reference("Observation", row.replaced_by_id)}
        )
    identifiers = [{"system": LAB_RESULT_KEY_SYSTEM, "value": f"{row.source.value}|{row.source_key}"}]
    system, sep, value = row.source_key.partition("|")
    if row.source == LabSource.FHIR and not row.derived and sep and system and value:
        identifiers.insert(0, {"system": system, "value": value})
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(row.id),
        **_meta(_latest(row.received_at, row.withdrawn_at)),
        "text": _narrative(*lines),
    }
    if extensions:
        out["extension"] = extensions
    out.update(
        identifier=identifiers,
        status=row.status.value,
        category=[
            {
                "coding": [
                    {"system": OBSERVATION_CATEGORY_SYSTEM, "code": "laboratory", "display": "Laboratory"}
                ]
            }
        ],
        code={
            "coding": [{"system": LOINC_SYSTEM, "code": row.code, "display": row.display}],
            "text": row.display,
        },
        subject=reference("Patient", row.patient_id),
        effectiveDateTime=instant(row.effective_at),
        issued=instant(row.issued_at or row.received_at),
    )
    if not withdrawn and row.canonical_value is not None:
        out["valueQuantity"] = {
            "value": row.canonical_value,
            "unit": row.canonical_unit,
            "system": UCUM_SYSTEM,
            "code": row.canonical_unit,
        }
    if row.interpretation:
        code = row.interpretation.upper()
        coding = (
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": code}], "text": row.interpretation}
            if code in INTERPRETATION_CODES
            else {"text": row.interpretation}
        )
        out["interpretation"] = [coding]
    if row.derived:
        inputs = [i for i in row.raw.get("derived_from", []) if isinstance(i, int)]
        out["method"] = {"text": f"{row.raw.get('formula', '')} ({row.raw.get('source', '')})"}
        if inputs:
            out["derivedFrom"] = [reference("Observation", i) for i in inputs]
    if row.reference_range:
        out["referenceRange"] = [{"text": row.reference_range}]
    return out


def transaction_response(entries: Sequence[tuple[str, str, datetime]]) -> dict[str, Any]:
    """The answer to a transaction Bundle: per entry, its HTTP status, location and last update."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": status, "location": location, "lastModified": instant(modified)}}
            for status, location, modified in entries
        ],
    }


# -------------------------------------------------------------------------------------------- Bundles
def searchset(
    base: str, resources: Sequence[dict[str, Any]], total: int, links: Mapping[str, str]
) -> dict[str, Any]:
    """A search result: `base` is the server's absolute FHIR base (…/fhir); links by relation (self, next)."""
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
    }
    if resources:
        out["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    return out


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """`code` from http://hl7.org/fhir/issue-type (invalid, not-found, login, forbidden, not-supported…)."""
    return {
        "resourceType": "OperationOutcome",
        "text": _narrative(diagnostics),
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


# ------------------------------------------------------------------------------- CapabilityStatement
_COMMON_SEARCH = "_count (max 100) and _offset page every search; `next` links carry them."
_DATE_DOC = (
    "Prefixes eq (default), gt, ge, lt, le; precision year, month, day or dateTime with a time zone "
    "(none = UTC)."
)
SEARCH_PARAMS: dict[str, list[dict[str, str]]] = {
    "Patient": [
        {"name": "_id", "type": "token", "documentation": "Logical id(s), comma-separated."},
        {"name": "identifier", "type": "token", "documentation": f"MRN as {MRN_SYSTEM}|<mrn> (or <mrn>)."},
    ],
    "Questionnaire": [
        {"name": "_id", "type": "token", "documentation": "<code>-<version>, e.g. sre-weekly-1."},
        {"name": "url", "type": "uri", "documentation": f"{QUESTIONNAIRE_URL_PREFIX}<code> (|<version>)."},
        {"name": "version", "type": "token", "documentation": "The instrument version."},
        {"name": "status", "type": "token", "documentation": "active."},
    ],
    "QuestionnaireResponse": [
        {"name": "_id", "type": "token", "documentation": "Logical id(s) (the check-in id)."},
        {"name": "patient", "type": "reference", "documentation": "Patient/<id> or <id>."},
        {"name": "subject", "type": "reference", "documentation": "Patient/<id>."},
        {"name": "authored", "type": "date", "documentation": "When closed, else started. " + _DATE_DOC},
        {"name": "status", "type": "token", "documentation": "in-progress | completed | stopped."},
    ],
    "Flag": [
        {"name": "_id", "type": "token", "documentation": "Logical id(s) (the alert id)."},
        {"name": "patient", "type": "reference", "documentation": "Patient/<id> or <id>."},
        {"name": "subject", "type": "reference", "documentation": "Patient/<id>."},
        {
            "name": "date",
            "type": "date",
            "documentation": "Flag.period (ongoing flags have no end): ge/gt = active at or after, lt/le = "
            "opened before, eq = the whole period inside. " + _DATE_DOC,
        },
        {"name": "status", "type": "token", "documentation": "active | inactive."},
    ],
    "Observation": [
        {"name": "_id", "type": "token", "documentation": "Logical id(s) (a stored lab result version)."},
        {"name": "patient", "type": "reference", "documentation": "Patient/<id> or <id>."},
        {"name": "subject", "type": "reference", "documentation": "Patient/<id>."},
        {"name": "code", "type": "token", "documentation": f"LOINC: {LOINC_SYSTEM}|<code> (or <code>)."},
        {"name": "date", "type": "date", "documentation": "When the sample was taken. " + _DATE_DOC},
        {
            "name": "status",
            "type": "token",
            "documentation": "preliminary | final | amended | corrected | entered-in-error.",
        },
    ],
}
# What each resource type answers beyond read and search.
WRITES: dict[str, list[str]] = {"Observation": ["create"]}


def capability_statement(base: str, software_version: str, now: datetime) -> dict[str, Any]:
    resources = []
    for resource_type, params in SEARCH_PARAMS.items():
        resources.append(
            {
                "type": resource_type,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
                "interaction": [
                    {"code": code} for code in ("read", "search-type", *WRITES.get(resource_type, []))
                ],
                "versioning": "no-version",
                "readHistory": False,
                "searchParam": params,
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "text": _narrative(
            "pro-service FHIR R4 API: read Patient, Questionnaire, QuestionnaireResponse, Flag and "
            "Observation; lab results in as Observation (create, transaction)."
        ),
        "status": "active",
        "date": instant(now),
        "publisher": "pro-service",
        "kind": "instance",
        "software": {"name": "pro-service", "version": software_version},
        "implementation": {"description": "pro-service FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [MEDIA_TYPE, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read and search (GET, or POST …/_search with a form body). "
                + _COMMON_SEARCH
                + " Unknown search parameters are refused (400), never ignored. Lab results are written as"
                " Observation (POST /Observation, or a transaction Bundle POSTed to the base).",
                "security": {
                    "cors": False,
                    "description": "Authorization: Bearer <pro-service API token> on every request except "
                    "/metadata: nurse or admin to read; integration (or admin) to write lab results, and an "
                    "integration token reads nothing. Every read of a patient's data is written to the audit "
                    "log.",
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}],
            }
        ],
    }


# ---------------------------------------------------------------------------------- search parameters
class SearchError(ValueError):
    """A search parameter we cannot honour: the server answers 400 with an OperationOutcome."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DateParam:
    """A FHIR date search value: prefix and the half-open UTC range [start, end) its precision covers."""

    prefix: str
    start: datetime
    end: datetime


_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d{1,6})?)?(?P<tz>Z|[+\- ]\d{2}:\d{2})?)?)?)?$"
)
DATE_PREFIXES = ("eq", "gt", "lt", "ge", "le")


def parse_date(raw: str) -> DateParam:
    match = _DATE.match(raw.strip())
    if match is None:
        raise SearchError(f"{raw!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)")
    prefix = match["prefix"] or "eq"
    if prefix not in DATE_PREFIXES:
        raise SearchError(
            f"date prefix {prefix!r} is not supported (use {', '.join(DATE_PREFIXES)})", "not-supported"
        )
    try:
        year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
        if match["H"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            if match["m"] is None:
                end = (
                    datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else datetime.max.replace(tzinfo=UTC)
                )
            elif match["d"] is None:
                end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            else:
                end = start + timedelta(days=1)
            return DateParam(prefix, start, end)
        hour, minute = int(match["H"]), int(match["M"])
        second = int(match["S"] or 0)
        fraction = match["f"] or ""
        micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
        tz = match["tz"] or "Z"
        offset = timedelta(0)
        if tz != "Z":
            sign = -1 if tz[0] == "-" else 1  # a "+" arrives as a space when the client forgot to encode it
            offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        start = local - offset
        if fraction:
            step = timedelta(microseconds=10 ** (6 - min(len(fraction) - 1, 6)))
        else:
            step = timedelta(seconds=1) if match["S"] is not None else timedelta(minutes=1)
        return DateParam(prefix, start, start + step)
    except (ValueError, OverflowError):
        raise SearchError(f"{raw!r} is not a valid date") from None


def parse_patient_reference(raw: str) -> int:
    """`123`, `Patient/123` or an absolute URL ending in Patient/123."""
    value = raw.strip()
    match = re.fullmatch(r"(?:(?:.*/)?Patient/)?(\d{1,10})", value)
    if match is None or int(match[1]) > 2**31 - 1:
        raise SearchError(f"{raw!r} is not a Patient reference (Patient/<id> or <id>)")
    return int(match[1])


def parse_token(raw: str) -> tuple[str | None, str]:
    """`system|code` → (system, code); `|code` → ("", code); `code` → (None, code)."""
    if "|" in raw:
        system, _, code = raw.partition("|")
        return system, code
    return None, raw


def split_or(raw: str) -> list[str]:
    """A search value's comma-separated alternatives (`\\,` is a literal comma)."""
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",") for p in parts]
