"""FHIR R4 lab results in (pure): an Observation, or a transaction Bundle of Observations → IncomingResults.

Each resource is validated with `fhir.resources` (its R4B models: R4B changed nothing in Observation or
Bundle, and the library has no R4 models for pydantic 2; see tests/unit/test_fhir_mapping.py), then checked
for what the models leave to the server: a status we can act on, a LOINC code, a numeric valueQuantity
without a comparator, a sample time to the second with a time zone, and a subject we can match:

- `subject.reference` "Patient/<id>" (the service's id, as /fhir/Patient exports it; an absolute URL ending
  so is accepted) or "Patient?identifier=urn:pro-service:mrn|<mrn>" (a conditional reference);
- `subject.identifier` with the MRN: system `urn:pro-service:mrn`, or a type coded MR (v2-0203), as our
  Patient resources carry it. An identifier of any other kind is refused rather than matched on its value.

The result's identity (for idempotency and amendments) is its first identifier ("<system>|<value>"), else
its id, else its content (then it cannot be amended). Nothing here touches the database or Flask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import parse_qsl

from pydantic import ValidationError

from pro_service import fhir
from pro_service.models import LabSource, LabStatus
from pro_service.services.labs import IncomingResult, InvalidResult, PatientRef, UnknownCode

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
MR_TYPE: Final = (fhir.IDENTIFIER_TYPE_SYSTEM, "MR")
STATUSES: Final = {s.value: s for s in LabStatus}
_LOCAL_PATIENT: Final = re.compile(r"Patient/([1-9][0-9]{0,9})")


def _errors(exc: ValidationError) -> str:
    """The model's complaints by path, without the values (they may carry patient data into logs)."""
    parts = []
    for error in exc.errors()[:5]:
        path = ".".join(str(p) for p in error["loc"]) or "resource"
        parts.append(f"{path}: {error['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _validate(model: Any, data: Mapping[str, Any], where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidResult(
            f"not a valid FHIR R4 {data.get('resourceType')}: {_errors(exc)}", where
        ) from None


def resource_type(body: Any) -> str:
    if not isinstance(body, dict):
        raise InvalidResult("the body is not a FHIR resource (a JSON object with resourceType)")
    kind = body.get("resourceType")
    if not isinstance(kind, str) or not kind:
        raise InvalidResult("the body has no resourceType")
    return kind


def observation(resource: Mapping[str, Any], where: str = "Observation") -> IncomingResult:
    """One Observation → an IncomingResult (InvalidResult / UnknownCode otherwise)."""
    from fhir.resources.R4B.observation import Observation

    if resource.get("resourceType") != "Observation":
        raise InvalidResult(f"expected an Observation, got {resource.get('resourceType')!r}", where)
    obs = _validate(Observation, resource, where)
    status = STATUSES.get(str(obs.status))
    if status is None:
        raise InvalidResult(
            f"status {obs.status!r}: only {', '.join(STATUSES)} results are recorded (send the result "
            "once it has a value, or entered-in-error to withdraw one)",
            where,
        )
    value, unit = _value(obs, status, where)
    return IncomingResult(
        source=LabSource.FHIR,
        source_key=_key(obs),
        patient=_subject(obs, where),
        code=_loinc(obs, where),
        status=status,
        value=value,
        unit=unit,
        effective_at=_effective(obs, where),
        issued_at=obs.issued if isinstance(obs.issued, datetime) else None,
        reference_range=_reference_range(obs),
        interpretation=_interpretation(obs),
        raw=dict(resource),
        where=where,
    )


def transaction(bundle: Mapping[str, Any]) -> list[IncomingResult]:
    """A transaction Bundle whose entries each POST an Observation → one IncomingResult per entry."""
    from fhir.resources.R4B.bundle import Bundle

    if bundle.get("type") != "transaction":
        raise InvalidResult(f"Bundle.type {bundle.get('type')!r}: send a transaction Bundle", "Bundle")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidResult("Bundle.entry must be a list", "Bundle")
    # The Bundle itself (type, request elements); each resource is validated with its own position below.
    shell = {**bundle, "entry": [_without_resource(e) for e in entries]}
    _validate(Bundle, shell, "Bundle")
    results = []
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        request = entry.get("request") or {}
        url = str(request.get("url") or "").split("?")[0].strip("/")
        if request.get("method") != "POST" or url != "Observation":
            raise InvalidResult(
                "each entry must POST an Observation (request.method POST, url Observation)", where
            )
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise InvalidResult("the entry has no resource", where)
        results.append(observation(resource, where))
    return results


def _without_resource(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry


def _key(obs: Any) -> str | None:
    for identifier in obs.identifier or []:
        if identifier.value:
            return f"{identifier.system or ''}|{identifier.value}"
    return f"id:{obs.id}" if obs.id else None


def _loinc(obs: Any, where: str) -> str:
    codes = [c.code for c in (obs.code.coding or []) if c.system == LOINC_SYSTEM and c.code]
    from pro_service.lab_units import ANALYTES

    for code in codes:
        if code in ANALYTES:
            return str(code)
    known = ", ".join(ANALYTES)
    if codes:
        raise UnknownCode(f"LOINC {', '.join(codes)} is not a code this service monitors ({known})", where)
    raise UnknownCode(f"code has no LOINC coding (system {LOINC_SYSTEM}); send one of {known}", where)


def _subject(obs: Any, where: str) -> PatientRef:
    subject = obs.subject
    if subject is None:
        raise InvalidResult("subject is required: Patient/<id> or the patient's MRN", where)
    patient_id: int | None = None
    mrn: str | None = None
    if subject.reference:
        reference = str(subject.reference).strip()
        if reference.startswith("Patient?"):
            mrn = _conditional_mrn(reference, where)
        elif match := _LOCAL_PATIENT.fullmatch(reference):
            patient_id = int(match[1])
        else:
            # An absolute URL may name another server's Patient/<id>: matching its number to ours would put
            # the result on the wrong patient. Only this server's relative reference, or the MRN.
            raise InvalidResult(
                f"subject.reference {reference!r}: send Patient/<id> (this server's id), "
                f"Patient?identifier={fhir.MRN_SYSTEM}|<mrn>, or subject.identifier with the MRN",
                where,
            )
    if subject.identifier is not None:
        identifier = subject.identifier
        codings = [(c.system, c.code) for c in (identifier.type.coding or [])] if identifier.type else []
        if not identifier.value or (identifier.system != fhir.MRN_SYSTEM and MR_TYPE not in codings):
            raise InvalidResult(
                f"subject.identifier must be the patient's MRN: system {fhir.MRN_SYSTEM}, or type MR "
                f"({fhir.IDENTIFIER_TYPE_SYSTEM})",
                where,
            )
        if mrn is not None and mrn != identifier.value:
            raise InvalidResult("subject.reference and subject.identifier name different MRNs", where)
        mrn = str(identifier.value)
    if patient_id is None and mrn is None:
        raise InvalidResult("subject must give Patient/<id> or the patient's MRN", where)
    return PatientRef(patient_id, mrn)


def _conditional_mrn(reference: str, where: str) -> str:
    params = parse_qsl(reference.partition("?")[2])
    if len(params) == 1 and params[0][0] == "identifier":
        system, sep, value = params[0][1].partition("|")
        if sep and system == fhir.MRN_SYSTEM and value:
            return value
    raise InvalidResult(f"subject.reference: use Patient?identifier={fhir.MRN_SYSTEM}|<mrn>", where)


def _effective(obs: Any, where: str) -> datetime:
    when = obs.effectiveDateTime or obs.effectiveInstant
    if when is None and obs.effectivePeriod is not None:
        when = obs.effectivePeriod.start
    if when is None:
        raise InvalidResult("effectiveDateTime (when the sample was taken) is required", where)
    if not isinstance(when, datetime):  # a date alone (fhir.resources gives a `date`)
        raise InvalidResult(
            "effectiveDateTime must be a date and time with a time zone, not a date alone", where
        )
    if when.tzinfo is None:
        raise InvalidResult("effectiveDateTime needs a time zone", where)
    return when


def _value(obs: Any, status: LabStatus, where: str) -> tuple[float | None, str | None]:
    others = [
        name
        for name in ("valueCodeableConcept", "valueString", "valueBoolean", "valueInteger", "valueRange")
        if getattr(obs, name, None) is not None
    ]
    if others:
        raise InvalidResult(
            f"{others[0]}: send the result as a valueQuantity (a number and a UCUM unit)", where
        )
    quantity = obs.valueQuantity
    if quantity is None:
        return None, None  # the service refuses it unless the result is withdrawn (entered-in-error)
    if quantity.comparator:
        raise InvalidResult(
            f"valueQuantity.comparator {quantity.comparator!r}: a bound is not a result a threshold can be "
            "compared with",
            where,
        )
    value = float(quantity.value) if isinstance(quantity.value, Decimal | int | float) else None
    if value is None and status != LabStatus.ENTERED_IN_ERROR:
        raise InvalidResult("valueQuantity.value is required", where)
    unit = quantity.code if quantity.system == UCUM_SYSTEM and quantity.code else quantity.unit
    return value, (str(unit) if unit else None)


def _quantity_text(quantity: Any) -> str:
    if quantity is None or quantity.value is None:
        return ""
    return (
        format(quantity.value, "f").rstrip("0").rstrip(".")
        if "." in str(quantity.value)
        else str(quantity.value)
    )


def _reference_range(obs: Any) -> str | None:
    ranges: Sequence[Any] = obs.referenceRange or []
    if not ranges:
        return None
    first = ranges[0]
    if first.text:
        return str(first.text)
    low, high = _quantity_text(first.low), _quantity_text(first.high)
    unit = next(
        (q.code or q.unit for q in (first.low, first.high) if q is not None and (q.code or q.unit)), ""
    )
    if low and high:
        text = f"{low}-{high}"
    elif low:
        text = f">={low}"
    elif high:
        text = f"<={high}"
    else:
        return None
    return f"{text} {unit}".strip()


def _interpretation(obs: Any) -> str | None:
    for concept in obs.interpretation or []:
        for coding in concept.coding or []:
            if coding.code:
                return str(coding.code)
        if concept.text:
            return str(concept.text)
    return None
