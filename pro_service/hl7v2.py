"""HL7 v2 lab results in (pure): an ORU^R01 message → IncomingResults, and the ACK that answers it.

Parsed with `hl7` (python-hl7): segments in order, each OBX belongs to the OBR and PID above it.

- Patient: PID-3, the repetition whose identifier type (CX-5) is MR, else the one with no type; several
  different MRNs in one PID are refused rather than guessed between.
- Result identity (idempotency, corrections): OBR-3 filler order number (else OBR-2 placer order number)
  with OBX-3 and OBX-4 (sub-id). OBX-1, the set id, is positional and may change between an original and
  its correction, so it is not part of the identity.
- Code: the OBX-3 triplet (CWE-1..3 or CWE-4..6) whose coding system is LN (LOINC).
- Value: OBX-2 NM (or SN with no comparator), OBX-5; unit OBX-6 (CWE-1: UCUM or the lab's spelling); range
  OBX-7; abnormal flag OBX-8; sample time OBX-14, else OBR-7; release time OBR-22.
- Status, OBX-11 (HL7 table 0085) → FHIR: F final, C corrected, P/R/S preliminary, W/D entered-in-error
  (as HL7's v2-to-FHIR mapping does). I, O, X, N and U carry no result to record and are refused.
- A time without an offset takes MSH-7's offset; when MSH-7 has none either, it is left local and the
  service reads it in the patient's care team's time zone.

Content problems raise the service's LabErrors (the ACK is AE); a message we cannot read, or that is not an
ORU^R01, raises `Reject` (the ACK is AR). Nothing here touches the database or Flask.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import hl7

from pro_service.models import LabSource, LabStatus
from pro_service.services.labs import (
    BadUnit,
    IncomingResult,
    InvalidResult,
    LabError,
    PatientRef,
    UnknownCode,
    UnknownPatient,
)

SENDING_APPLICATION: Final = "PRO-SERVICE"
OBX_STATUS: Final = {
    "F": LabStatus.FINAL,
    "C": LabStatus.CORRECTED,
    "P": LabStatus.PRELIMINARY,
    "R": LabStatus.PRELIMINARY,
    "S": LabStatus.PRELIMINARY,
    "W": LabStatus.ENTERED_IN_ERROR,
    "D": LabStatus.ENTERED_IN_ERROR,
}
LOINC_SYSTEMS: Final = frozenset({"LN", "LOINC"})
# HL7 table 0357 (message error condition codes) for the ERR segment.
ERROR_CODES: Final = {
    "required": ("101", "Required field missing"),
    "data": ("102", "Data type error"),
    "table": ("103", "Table value not found"),
    "type": ("200", "Unsupported message type"),
    "event": ("201", "Unsupported event code"),
    "version": ("203", "Unsupported version id"),
    "key": ("204", "Unknown key identifier"),
    "internal": ("207", "Application internal error"),
}
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?$")


class Reject(Exception):
    """The message cannot be processed at all (AR): unreadable, or not an ORU^R01 of HL7 v2."""

    def __init__(self, message: str, error: str = "type") -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class Oru:
    control_id: str  # MSH-10
    results: list[IncomingResult]


def parse_message(text: str) -> Any:
    """The message as python-hl7 reads it, after MLLP framing and line endings are normalised."""
    body = text.strip("\x0b\x1c\r\n \t")
    body = body.replace("\r\n", "\r").replace("\n", "\r")
    if not body.startswith("MSH"):
        raise Reject("the body is not an HL7 v2 message (it must start with MSH)", "required")
    try:
        return hl7.parse(body)
    except Exception as exc:  # python-hl7 raises ParseException, and IndexError on a truncated MSH
        raise Reject(f"the message cannot be parsed: {type(exc).__name__}", "data") from None


def _field(segment: Any, number: int, component: int = 1, repeat: int = 1) -> str:
    try:
        value = segment.extract_field(field_num=number, repeat_num=repeat, component_num=component)
    except (IndexError, KeyError, ValueError):
        return ""
    return str(value or "").strip()


def _repeats(segment: Any, number: int) -> int:
    try:
        return max(1, len(segment[number]))
    except (IndexError, TypeError):
        return 1


def _timestamp(raw: str, fallback_offset: timezone | None, where: str, name: str) -> datetime | None:
    """HL7 TS/DTM (YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]) → datetime; minutes are required for a sample time."""
    if not raw:
        return None
    match = _TS.match(raw.split("^")[0])
    if match is None or match.group(5) is None:
        raise InvalidResult(
            f"{name} {raw!r} is not a date and time to the minute (YYYYMMDDHHMM[SS][+ZZZZ])", where
        )
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    seconds = float(match.group(6) or 0)
    try:
        value = datetime(
            year, month, day, hour, minute, int(seconds), min(999_999, round((seconds % 1) * 1e6))
        )
    except ValueError:
        raise InvalidResult(f"{name} {raw!r} is not a valid date", where) from None
    if match.group(7):
        sign = -1 if match.group(7)[0] == "-" else 1
        offset = timedelta(hours=int(match.group(7)[1:3]), minutes=int(match.group(7)[3:5]))
        return value.replace(tzinfo=timezone(sign * offset))
    return value.replace(tzinfo=fallback_offset) if fallback_offset is not None else value


def _offset(raw: str) -> timezone | None:
    match = _TS.match(raw.split("^")[0]) if raw else None
    if match is None or not match.group(7):
        return None
    sign = -1 if match.group(7)[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(match.group(7)[1:3]), minutes=int(match.group(7)[3:5])))


def _mrn(pid: Any, where: str) -> PatientRef:
    typed: list[str] = []
    untyped: list[str] = []
    for repeat in range(1, _repeats(pid, 3) + 1):
        value = _field(pid, 3, 1, repeat)
        kind = _field(pid, 3, 5, repeat).upper()
        if value and kind == "MR":
            typed.append(value)
        elif value and not kind:
            untyped.append(value)
    candidates = sorted(set(typed or untyped))
    if not candidates:
        raise UnknownPatient("PID-3 has no MRN (an identifier of type MR)", where)
    if len(candidates) > 1:
        raise InvalidResult("PID-3 has several different MRNs; send the one this service enrolled", where)
    return PatientRef(mrn=candidates[0])


def _loinc(obx: Any, where: str) -> tuple[str, str]:
    """(LOINC code, the OBX-3 text as sent)."""
    from pro_service.lab_units import ANALYTES

    pairs = [(_field(obx, 3, 1), _field(obx, 3, 3)), (_field(obx, 3, 4), _field(obx, 3, 6))]
    loinc = [code for code, system in pairs if code and system.upper() in LOINC_SYSTEMS]
    for code in loinc:
        if code in ANALYTES:
            return code, _field(obx, 3, 2)
    known = ", ".join(ANALYTES)
    if loinc:
        raise UnknownCode(f"LOINC {', '.join(loinc)} is not a code this service monitors ({known})", where)
    raise UnknownCode(f"OBX-3 has no LOINC code (coding system LN); send one of {known}", where)


def _number(obx: Any, status: LabStatus, where: str) -> float | None:
    kind = _field(obx, 2).upper()
    raw = _field(obx, 5)
    if kind == "SN":
        comparator, number, separator = _field(obx, 5, 1), _field(obx, 5, 2), _field(obx, 5, 3)
        if comparator not in ("", "=") or separator:
            raise InvalidResult(
                f"OBX-5 {raw!r}: a bound or a ratio is not a result a threshold can be compared with", where
            )
        raw = number
    elif kind not in ("NM", ""):
        raise InvalidResult(f"OBX-2 {kind!r}: send the result as a number (NM)", where)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        if status == LabStatus.ENTERED_IN_ERROR:
            return None
        raise InvalidResult(f"OBX-5 {raw!r} is not a number", where) from None


def oru_r01(message: Any) -> Oru:
    """The results of an ORU^R01 message (Reject for a message that is not one; LabError for content)."""
    msh = message.segment("MSH")
    control_id = _field(msh, 10)
    if not control_id:
        raise Reject("MSH-10 (message control id) is required", "required")
    version = _field(msh, 12)
    if not version.startswith("2."):
        raise Reject(f"MSH-12 version {version!r}: HL7 v2 (2.x) only", "version")
    kind, event = _field(msh, 9, 1), _field(msh, 9, 2)
    if kind != "ORU":
        raise Reject(f"MSH-9 {kind}^{event}: only ORU^R01 (observation results) is accepted", "type")
    if event != "R01":
        raise Reject(f"MSH-9 {kind}^{event}: only ORU^R01 (observation results) is accepted", "event")
    fallback = _offset(_field(msh, 7))

    results: list[IncomingResult] = []
    patient: PatientRef | None = None
    order: tuple[str, datetime | None, datetime | None, Any] | None = None
    obx_number = 0
    for segment in message:
        name = str(segment[0])
        if name == "PID":
            patient = _mrn(segment, "PID-3")
            order = None
        elif name == "OBR":
            where = f"OBR {_field(segment, 1) or '?'}"
            filler = "^".join(p for p in (_field(segment, 3, 1), _field(segment, 3, 2)) if p)
            placer = "^".join(p for p in (_field(segment, 2, 1), _field(segment, 2, 2)) if p)
            if not filler and not placer:
                raise InvalidResult("OBR-3 (filler order number) is required", where)
            key = filler or f"placer:{placer}"
            observed = _timestamp(_field(segment, 7), fallback, where, "OBR-7")
            issued = _timestamp(_field(segment, 22), fallback, where, "OBR-22")
            order = (key, observed, issued, segment)
        elif name == "OBX":
            obx_number += 1
            where = f"OBX {_field(segment, 1) or obx_number}"
            if patient is None or order is None:
                raise InvalidResult("an OBX must follow a PID and an OBR", where)
            results.append(_result(message, msh, patient, order, segment, where))
    if not results:
        raise InvalidResult("the message has no OBX (no results)", "ORU^R01")
    return Oru(control_id, results)


def _result(
    message: Any,
    msh: Any,
    patient: PatientRef,
    order: tuple[str, datetime | None, datetime | None, Any],
    obx: Any,
    where: str,
) -> IncomingResult:
    key, observed, issued, obr = order
    flag = _field(obx, 11).upper()
    status = OBX_STATUS.get(flag)
    if status is None:
        raise InvalidResult(
            f"OBX-11 {flag or '(empty)'!r}: only F, C, P, R, S (a result) and W, D (withdraw one) "
            "are recorded",
            where,
        )
    code, _ = _loinc(obx, where)
    value = _number(obx, status, where)
    taken = _timestamp(_field(obx, 14), _offset(_field(msh, 7)), where, "OBX-14") or observed
    if taken is None:
        raise InvalidResult("the sample time is required (OBX-14 or OBR-7)", where)
    unit = message.unescape(_field(obx, 6, 1)) or None
    if status != LabStatus.ENTERED_IN_ERROR and value is not None and unit is None:
        raise BadUnit(
            "OBX-6 (units) is empty; send the unit (UCUM, e.g. mg/dL or mmol/L)", where, missing=True
        )
    reference = message.unescape(_field(obx, 7)) or None
    if reference and unit and unit not in reference:
        reference = f"{reference} {unit}"
    segments = [str(msh), str(obr), str(obx)]
    return IncomingResult(
        source=LabSource.HL7,
        source_key=f"{key}|{_field(obx, 3, 1)}^{_field(obx, 3, 3)}|{_field(obx, 4)}",
        patient=patient,
        code=code,
        status=status,
        value=value,
        unit=unit,
        effective_at=taken,
        issued_at=issued if issued is not None and issued.tzinfo is not None else None,
        reference_range=reference,
        interpretation=_field(obx, 8) or None,
        raw={"hl7": "\r".join(segments), "control_id": _field(msh, 10)},
        where=where,
    )


# ------------------------------------------------------------------------------------------------ ACK
def error_kind(exc: LabError) -> str:
    if isinstance(exc, UnknownPatient):
        return "key"
    if isinstance(exc, UnknownCode):
        return "table"
    if isinstance(exc, BadUnit):
        return "required" if exc.missing else "data"
    return "data"


def _escape(text: str) -> str:
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
    return out.replace("~", "\\R\\").replace("\r", " ").replace("\n", " ")


def _location(where: str) -> str:
    """ "OBX 3" → "OBX^3" (ERR-2, the segment and its set id)."""
    segment, _, number = where.partition(" ")
    if len(segment) == 3 and segment.isalnum() and segment.isupper():
        return f"{segment}^{number}" if number.isdigit() else segment
    if segment.startswith(("PID", "MSH")):
        return segment[:3]
    return ""


def ack(message: Any | None, code: str, text: str = "", *, error: str | None = None, where: str = "") -> str:
    """An ACK (MSA-1 AA, AE or AR) for `message` (None when it could not be parsed), with the reason in
    MSA-3 and an ERR segment. Segments end with CR, as HL7 requires."""
    control = secrets.token_hex(10)
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S%z")
    if message is not None:
        msh = message.segment("MSH")
        header = (
            f"MSH|^~\\&|{SENDING_APPLICATION}|{_escape(_field(msh, 6))}|{_escape(_field(msh, 3))}|"
            f"{_escape(_field(msh, 4))}|{now}||ACK^{_escape(_field(msh, 9, 2))}^ACK|{control}|"
            f"{_escape(_field(msh, 11) or 'P')}|{_escape(_field(msh, 12) or '2.5.1')}"
        )
        referred = _escape(_field(msh, 10))
    else:
        header = f"MSH|^~\\&|{SENDING_APPLICATION}||||{now}||ACK|{control}|P|2.5.1"
        referred = ""
    segments = [header, f"MSA|{code}|{referred}|{_escape(text)[:80]}"]
    if error is not None:
        number, name = ERROR_CODES[error]
        severity = "E"
        segments.append(f"ERR||{_location(where)}|{number}^{name}^HL70357|{severity}||||{_escape(text)}")
    return "\r".join(segments) + "\r"
