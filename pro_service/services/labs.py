"""Lab results from the hospital's systems: record them (idempotently, amendments and withdrawals included)
and read them back, for the rules (`lab_views`), the API (`patient_labs`) and FHIR.

The edges (web/fhir.py, web/hl7.py) turn what they receive into `IncomingResult`s with pure parsers
(`pro_service.fhir_intake`, `pro_service.hl7v2`) and call `record_results` once per request: every result in
it is stored, or none is (the caller commits the one unit of work, or rolls it back on a `LabError`).
The service holds each patient's row lock while it records, the same lock the patient's replies are processed
under (ARCHITECTURE.md, "one patient, one line"), so a result has one current version and a result recorded
and the alerts it raises (wired by the caller) see the same history.

Versions (models.LabResult): the same content for the same result is a duplicate, stored once; a new version
replaces the current one when its status is at least as far along (preliminary < final < amended, corrected,
entered-in-error), otherwise it is kept as history ("superseded"); entered-in-error withdraws the value.

Adjusted calcium: when a lab sends total calcium and albumin for the same sample but no adjusted calcium,
the service computes it (lab_units.adjusted_calcium) and stores it as a derived result that names its inputs;
it follows them (an amended input recomputes it, a withdrawn input withdraws it). The lab's own adjusted
calcium for the sample is always preferred: `lab_views` hides a derived one beside it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from alerts.labs import (
    ADJUSTED_CALCIUM,
    ALBUMIN,
    CANONICAL_UNIT,
    TOTAL_CALCIUM,
    TOTAL_CALCIUM_MASS,
    LabView,
)
from pro_service import lab_units
from pro_service.db import ROW_LOCK
from pro_service.models import LabResult, LabSource, LabStatus, Patient
from pro_service.runtime import Runtime

TOTAL_CALCIUM_CODES: Final = frozenset({TOTAL_CALCIUM, TOTAL_CALCIUM_MASS})
# Total calcium and albumin taken within this of each other are one sample (separate tubes of one draw
# may carry collection times minutes apart); the nearest albumin is used.
SAME_SAMPLE: Final = timedelta(hours=1)
# A sample time further ahead than this is a data error (often a time zone sent wrong), never a result.
FUTURE_TOLERANCE: Final = timedelta(hours=1)
MAX_KEY: Final = 255
MAX_ID: Final = 2**31 - 1
DERIVED_SUFFIX: Final = "#adjusted"


# ------------------------------------------------------------------------------------------- errors
class LabError(Exception):
    """A result that cannot be recorded: nothing of the request is stored. `where` names the part of the
    request (e.g. "Bundle.entry[1]", "OBX 2"); the message says what to send instead."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message, self.where = message, where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class UnknownPatient(LabError):
    """No enrolled patient has this MRN or id."""


class UnknownCode(LabError):
    """A code the service does not monitor (or no LOINC code at all)."""


class BadUnit(LabError):
    """A unit missing, not UCUM, or of the wrong kind for the code."""

    def __init__(self, message: str, where: str = "", *, missing: bool = False) -> None:
        super().__init__(message, where)
        self.missing = missing


class InvalidResult(LabError):
    """Anything else wrong with a result: no value, no sample time, a status we cannot act on, a result
    identifier already used for another patient."""


# -------------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class PatientRef:
    """Who a result is for: the service's patient id, the MRN, or both (then they must agree)."""

    patient_id: int | None = None
    mrn: str | None = None

    def __str__(self) -> str:
        parts = [f"Patient/{self.patient_id}" if self.patient_id is not None else "", self.mrn or ""]
        return " / MRN ".join(p for p in parts if p) or "no patient"


@dataclass(frozen=True)
class IncomingResult:
    """One result as a sender reported it, parsed but not yet checked (services own the checks)."""

    source: LabSource
    source_key: str | None  # None: no identifier was sent (the content identifies the result)
    patient: PatientRef
    code: str  # LOINC
    status: LabStatus
    value: float | None
    unit: str | None
    effective_at: datetime  # the sample time, timezone-aware
    issued_at: datetime | None = None
    reference_range: str | None = None
    interpretation: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    where: str = ""


class Outcome(StrEnum):
    """What recording did. stored: a new result. duplicate: this content was already stored (nothing
    changed). replaced: a new version (amended, corrected, or a newer report) is now current. withdrawn: an
    entered-in-error version withdrew the value. superseded: an older version arrived late (a preliminary
    after the final, say): kept as history, the current version is unchanged."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class RecordOutcome:
    outcome: Outcome
    result: LabResult  # the row stored; for a duplicate, the row already stored with that content
    previous: LabResult | None = None  # the version replaced or withdrawn (or, superseded, the current one)
    # Adjusted calcium computed (or withdrawn) because of this result.
    derived: tuple[RecordOutcome, ...] = ()

    @property
    def changed(self) -> bool:
        """The patient's current results changed: what the rules read is different now."""
        return self.outcome in (Outcome.STORED, Outcome.REPLACED, Outcome.WITHDRAWN)

    @property
    def created(self) -> bool:
        """A row was written (everything but a duplicate)."""
        return self.outcome != Outcome.DUPLICATE

    def views(self) -> list[LabView]:
        """The current results this changed (this one and any derived), for the rules."""
        return [lab_view(o.result) for o in (self, *self.derived) if o.changed]


def lab_view(row: LabResult) -> LabView:
    withdrawn = row.status == LabStatus.ENTERED_IN_ERROR or row.withdrawn_at is not None
    return LabView(
        code=row.code,
        value=None if withdrawn else row.canonical_value,
        unit=row.canonical_unit,
        taken_at=row.effective_at,
        status=row.status.value,
        reference_range=row.reference_range,
        derived=row.derived,
        result_id=row.id,
    )


# ------------------------------------------------------------------------------------------ recording
@dataclass(frozen=True)
class _Checked:
    item: IncomingResult
    source_key: str
    canonical: float | None
    display: str


def _check(item: IncomingResult, now: datetime) -> _Checked:
    """Everything that can be said about a result without the database (code, value, unit, time, key)."""
    where = item.where
    try:
        found = lab_units.analyte(item.code)
    except lab_units.UnknownCodeError as exc:
        raise UnknownCode(str(exc), where) from None
    if item.effective_at.tzinfo is None:
        raise InvalidResult("the sample time has no time zone", where)
    if item.effective_at > now + FUTURE_TOLERANCE:
        raise InvalidResult(
            f"the sample time {item.effective_at.isoformat()} is in the future (check its time zone)", where
        )
    canonical: float | None = None
    if item.status != LabStatus.ENTERED_IN_ERROR:
        if item.value is None:
            raise InvalidResult("a numeric value is required (unless the status is entered-in-error)", where)
        if item.value < 0:
            raise InvalidResult(f"{item.value} is not a possible {found.display}", where)
        try:
            canonical = lab_units.to_canonical(item.code, item.value, item.unit).value
        except lab_units.UnitError as exc:
            raise BadUnit(str(exc), where, missing=not (item.unit or "").strip()) from None
    key = item.source_key
    if key is None:
        if item.status in (LabStatus.AMENDED, LabStatus.CORRECTED, LabStatus.ENTERED_IN_ERROR):
            raise InvalidResult(
                f"an {item.status.value} result must carry the identifier of the result it replaces", where
            )
        key = "content:" + _digest(
            str(item.patient), item.code, _instant(item.effective_at), _number(item.value), item.unit or ""
        )
    if not key.strip() or len(key) > MAX_KEY:
        raise InvalidResult(f"the result identifier must be 1 to {MAX_KEY} characters", where)
    return _Checked(item, key, canonical, found.display)


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


def _instant(value: datetime) -> str:
    """The same instant, however its offset was written, is the same content."""
    return value.astimezone(UTC).isoformat()


def _number(value: float | None) -> str:
    return "" if value is None else format(value, ".12g")


def _resolve(session: Session, refs: Iterable[tuple[PatientRef, str]]) -> dict[PatientRef, Patient]:
    found: dict[PatientRef, Patient] = {}
    for ref, where in refs:
        if ref in found:
            continue
        in_range = ref.patient_id is not None and 0 < ref.patient_id <= MAX_ID
        by_id = session.get(Patient, ref.patient_id) if in_range else None
        by_mrn = (
            session.scalar(select(Patient).where(Patient.mrn == ref.mrn)) if ref.mrn is not None else None
        )
        if ref.patient_id is not None and by_id is None:
            raise UnknownPatient(f"no patient Patient/{ref.patient_id}", where)
        if ref.mrn is not None and by_mrn is None:
            raise UnknownPatient(f"no enrolled patient has the MRN {ref.mrn!r}", where)
        if by_id is not None and by_mrn is not None and by_id.id != by_mrn.id:
            raise InvalidResult(f"Patient/{ref.patient_id} and MRN {ref.mrn!r} are different patients", where)
        patient = by_id or by_mrn
        if patient is None:
            raise UnknownPatient("the result names no patient (an MRN or Patient/<id>)", where)
        found[ref] = patient
    return found


def _localised(item: IncomingResult, patient: Patient) -> IncomingResult:
    """An HL7 v2 time sent without an offset is local time where the lab is: the care team's zone."""
    if item.effective_at.tzinfo is not None and (item.issued_at is None or item.issued_at.tzinfo is not None):
        return item
    zone = ZoneInfo(patient.care_team.timezone)
    issued = item.issued_at
    return replace(
        item,
        effective_at=item.effective_at
        if item.effective_at.tzinfo
        else item.effective_at.replace(tzinfo=zone),
        issued_at=issued.replace(tzinfo=zone) if issued is not None and issued.tzinfo is None else issued,
    )


def record_result(session: Session, rt: Runtime, item: IncomingResult) -> RecordOutcome:
    """Record one result (see `record_results`)."""
    return record_results(session, rt, [item])[0]


def record_results(session: Session, rt: Runtime, items: Sequence[IncomingResult]) -> list[RecordOutcome]:
    """Record results, all or nothing: a LabError for any of them is raised before anything is written
    that the caller would keep (the caller rolls back on it and commits otherwise). One outcome per item,
    in order; each names the row stored (or, for a duplicate, the row already stored)."""
    now = rt.now()
    patients = _resolve(session, ((item.patient, item.where) for item in items))
    checked = [_check(_localised(item, patients[item.patient]), now) for item in items]
    # Every patient's row lock, in id order (two requests naming the same patients cannot deadlock).
    ids = sorted({p.id for p in patients.values()})
    if ids:
        session.scalars(
            select(Patient.id).where(Patient.id.in_(ids)).order_by(Patient.id).with_for_update(**ROW_LOCK)
        ).all()
    outcomes = []
    for c in checked:
        outcome = _record(session, patients[c.item.patient], c, now)
        # The lab's own adjusted calcium too: when it is withdrawn, the one derived from total calcium and
        # albumin must stand in for it, or a high total calcium would be silent.
        if outcome.changed and c.item.code in TOTAL_CALCIUM_CODES | {ALBUMIN, ADJUSTED_CALCIUM}:
            outcome = replace(outcome, derived=tuple(_refresh_adjusted(session, outcome.result, now)))
        outcomes.append(outcome)
    return outcomes


def _record(session: Session, patient: Patient, c: _Checked, now: datetime) -> RecordOutcome:
    item = c.item
    content = _digest(
        str(patient.id),
        item.status.value,
        _number(item.value),
        item.unit or "",
        _instant(item.effective_at),
        item.reference_range or "",
        item.interpretation or "",
    )
    row = LabResult(
        patient_id=patient.id,
        source=item.source,
        source_key=c.source_key,
        code=item.code,
        display=c.display,
        status=item.status,
        value=item.value,
        unit=(item.unit or "").strip()[:64] or None,
        canonical_value=c.canonical,
        canonical_unit=CANONICAL_UNIT[item.code],
        reference_range=(item.reference_range or "").strip()[:120] or None,
        interpretation=(item.interpretation or "").strip()[:16] or None,
        effective_at=item.effective_at,
        issued_at=item.issued_at,
        received_at=now,
        derived=False,
        content_hash=content,
        raw=item.raw,
    )
    return _store(session, row, now, item.where)


def _chain(session: Session, source: LabSource, source_key: str, code: str) -> list[LabResult]:
    query = select(LabResult).where(
        LabResult.source == source, LabResult.source_key == source_key, LabResult.code == code
    )
    return list(session.scalars(query.order_by(LabResult.id)))


def _store(session: Session, row: LabResult, now: datetime, where: str) -> RecordOutcome:
    """Add `row` as a version of its result (source, source_key, code), or find it already stored."""
    chain = _chain(session, row.source, row.source_key, row.code)
    for earlier in chain:
        if earlier.content_hash == row.content_hash:
            return RecordOutcome(Outcome.DUPLICATE, earlier)
    if any(earlier.patient_id != row.patient_id for earlier in chain):
        raise InvalidResult(
            "a result with this identifier was recorded for another patient; if it was sent for the wrong "
            "patient, withdraw it there (entered-in-error) and send it under a new identifier",
            where,
        )
    current = next((earlier for earlier in chain if earlier.replaced_by_id is None), None)
    withdrawing = row.status == LabStatus.ENTERED_IN_ERROR
    if withdrawing:
        row.canonical_value = None
        row.withdrawn_at = now
    session.add(row)
    session.flush()
    if current is None:
        return RecordOutcome(Outcome.STORED, row)
    if row.status.rank < current.status.rank:
        row.replaced_by_id = current.id
        return RecordOutcome(Outcome.SUPERSEDED, row, current)
    current.replaced_by_id = row.id
    if withdrawing:
        for earlier in chain:
            if earlier.withdrawn_at is None:
                earlier.withdrawn_at = now
        return RecordOutcome(Outcome.WITHDRAWN, row, current)
    return RecordOutcome(Outcome.REPLACED, row, current)


# ---------------------------------------------------------------------------------- adjusted calcium
def _current(patient_id: int) -> Select[tuple[LabResult]]:
    return select(LabResult).where(LabResult.patient_id == patient_id, LabResult.replaced_by_id.is_(None))


def _near(session: Session, patient_id: int, codes: Iterable[str], at: datetime) -> list[LabResult]:
    """The patient's current measured (not derived) results of `codes` from the same sample as `at`."""
    query = _current(patient_id).where(
        LabResult.code.in_(list(codes)),
        LabResult.derived.is_(False),
        LabResult.effective_at >= at - SAME_SAMPLE,
        LabResult.effective_at <= at + SAME_SAMPLE,
    )
    rows = list(session.scalars(query.order_by(LabResult.id)))
    return sorted(rows, key=lambda r: (abs((r.effective_at - at).total_seconds()), -r.id))


def _usable(row: LabResult | None) -> bool:
    return (
        row is not None
        and row.canonical_value is not None
        and row.withdrawn_at is None
        and row.status != LabStatus.ENTERED_IN_ERROR
    )


def _refresh_adjusted(session: Session, trigger: LabResult, now: datetime) -> Iterator[RecordOutcome]:
    """After total calcium or albumin changed: compute, recompute or withdraw the derived adjusted calcium of
    each total calcium of that sample."""
    if trigger.code in TOTAL_CALCIUM_CODES:
        calciums = [trigger]
    else:
        calciums = _near(session, trigger.patient_id, TOTAL_CALCIUM_CODES, trigger.effective_at)
    for calcium in calciums:
        outcome = _adjust(session, calcium, now)
        if outcome is not None and outcome.outcome != Outcome.DUPLICATE:
            yield outcome


def _adjust(session: Session, calcium: LabResult, now: datetime) -> RecordOutcome | None:
    key = calcium.source_key[: MAX_KEY - len(DERIVED_SUFFIX)] + DERIVED_SUFFIX
    chain = _chain(session, calcium.source, key, ADJUSTED_CALCIUM)
    previous = next((r for r in chain if r.replaced_by_id is None), None)
    # The nearest albumin of the sample that still has a value (a withdrawn one is no albumin at all).
    albumins = [r for r in _near(session, calcium.patient_id, [ALBUMIN], calcium.effective_at) if _usable(r)]
    albumin = albumins[0] if albumins else None
    lab_adjusted = [
        r for r in _near(session, calcium.patient_id, [ADJUSTED_CALCIUM], calcium.effective_at) if _usable(r)
    ]
    value: float | None = None
    inputs = [calcium.id]
    if _usable(calcium) and albumin is not None:
        if lab_adjusted and previous is None:
            return None  # the lab adjusted this sample itself: nothing to compute
        assert calcium.canonical_value is not None and albumin.canonical_value is not None
        value = lab_units.adjusted_calcium(calcium.canonical_value, albumin.canonical_value)
        inputs.append(albumin.id)
        statuses = {calcium.status, albumin.status}
        if LabStatus.PRELIMINARY in statuses:
            status = LabStatus.PRELIMINARY
        else:
            status = LabStatus.AMENDED if previous is not None else LabStatus.FINAL
    elif previous is not None and previous.status != LabStatus.ENTERED_IN_ERROR:
        status = LabStatus.ENTERED_IN_ERROR  # an input was withdrawn: so is what was computed from it
        if albumin is not None:
            inputs.append(albumin.id)
    else:
        return None
    row = LabResult(
        patient_id=calcium.patient_id,
        source=calcium.source,
        source_key=key,
        code=ADJUSTED_CALCIUM,
        display=lab_units.analyte(ADJUSTED_CALCIUM).display,
        status=status,
        value=value,
        unit=CANONICAL_UNIT[ADJUSTED_CALCIUM],
        canonical_value=value,
        canonical_unit=CANONICAL_UNIT[ADJUSTED_CALCIUM],
        effective_at=calcium.effective_at,
        issued_at=calcium.issued_at,
        received_at=now,
        derived=True,
        content_hash=_digest(str(calcium.patient_id), status.value, _number(value), *map(str, inputs)),
        raw={
            "derived_from": inputs,
            "formula": lab_units.ADJUSTED_CALCIUM_FORMULA,
            "source": lab_units.ADJUSTED_CALCIUM_SOURCE,
        },
    )
    return _store(session, row, now, "adjusted calcium")


# ---------------------------------------------------------------------------------------------- reads
def hide_derived_beside_lab(rows: Sequence[LabResult]) -> list[LabResult]:
    """Drop a derived adjusted calcium when the lab's own adjusted calcium for that sample is among `rows`."""
    measured = [r.effective_at for r in rows if r.code == ADJUSTED_CALCIUM and not r.derived and _usable(r)]
    return [
        r
        for r in rows
        if not (
            r.derived
            and r.code == ADJUSTED_CALCIUM
            and any(abs(r.effective_at - t) <= SAME_SAMPLE for t in measured)
        )
    ]


def lab_views(session: Session, patient_id: int, *, since: datetime | None = None) -> list[LabView]:
    """The patient's current results (no replaced versions) in canonical units, newest sample first.
    A withdrawn result is there with value None (unknown, never normal); a derived adjusted calcium is
    left out when the lab's own adjusted calcium for the same sample is there."""
    query = _current(patient_id)
    if since is not None:
        query = query.where(LabResult.effective_at >= since)
    rows = list(session.scalars(query.order_by(LabResult.effective_at.desc(), LabResult.id.desc())))
    return [lab_view(r) for r in hide_derived_beside_lab(rows)]


def patient_labs(
    session: Session,
    patient_id: int,
    *,
    code: str | None = None,
    since: datetime | None = None,
    history: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[LabResult], bool]:
    """A patient's results for the API, newest sample first: current versions only, or every version with
    `history`. Returns the page and whether there is more. Raises UnknownPatient."""
    if session.get(Patient, patient_id) is None:
        raise UnknownPatient(f"no patient {patient_id}")
    query = select(LabResult).where(LabResult.patient_id == patient_id)
    if not history:
        query = query.where(LabResult.replaced_by_id.is_(None))
    if code is not None:
        query = query.where(LabResult.code == code)
    if since is not None:
        query = query.where(LabResult.effective_at >= since)
    query = query.order_by(LabResult.effective_at.desc(), LabResult.id.desc()).offset(offset).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit
