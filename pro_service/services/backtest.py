"""The rules backtest (issue 16): replay stored history through a candidate ruleset, read-only.

Each closed check-in (completed or expired) in the window is scored twice from the same inputs, built as
scoring builds them (`triage.scoring_inputs` at the check-in's close): once by the candidate, once by the
reference (each patient's own ruleset, or one named ruleset). Lab-only rules run when a result arrives, so
each lab result received in the window is replayed at its arrival with the results known then. The counting
is pure (alerts/backtest.py); the CLI (`pro-service rules backtest`) and the admin configuration page are
thin callers of `run_backtest`.

Not replayed: free-text messages sent outside a check-in and callback requests (they do not depend on the
rules' conditions), and early findings while a check-in was open (the complete replay runs early rules too).
Known approximations: a lab result amended after the check-in is seen in its first version only until the
amendment arrived (replaced versions are followed by arrival time), but a result withdrawn later is replayed
as withdrawn (its value is not kept).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, selectinload

from alerts.backtest import (
    Replayed,
    Summary,
    compare,
    fits,
    label,
    naming_result,
    not_comparable_reason,
    rule_changes,
)
from alerts.labs import LabView
from alerts.rules import History, evaluate, evaluate_labs
from alerts.ruleset import Ruleset, RulesetError, load_ruleset
from pro_service.models import Alert, CheckIn, CheckInStatus, LabResult, Patient
from pro_service.runtime import Runtime
from pro_service.services import triage
from pro_service.services.labs import hide_derived_beside_lab, lab_view

DEFAULT_LIMIT = 20_000
MAX_WINDOW_DAYS = 3650
_CHUNK = 500  # check-ins whose patients' histories are loaded together (memory stays flat)
_CLOSED = (CheckInStatus.COMPLETED, CheckInStatus.EXPIRED)
_WINDOW = re.compile(r"^\s*(\d{1,5})\s*([dw])\s*$", re.IGNORECASE)
_SPEC = re.compile(r"^([a-z0-9][a-z0-9_.-]*)-v(\d{1,6})$")


class BacktestError(ValueError):
    """A request the backtest cannot run; `option` names what to correct (e.g. "--since")."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option, self.message = option, message


def parse_window(raw: str) -> timedelta:
    """ "90d", "12w" → a window; anything else is a BacktestError naming --since."""
    found = _WINDOW.match(raw or "")
    if not found:
        raise BacktestError("--since", f"{raw!r} is not a window such as 90d or 12w (days or weeks)")
    days = int(found.group(1)) * (7 if found.group(2).lower() == "w" else 1)
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise BacktestError("--since", f"{raw!r}: the window must be 1 to {MAX_WINDOW_DAYS} days")
    return timedelta(days=days)


def installed_ruleset(rt: Runtime, spec: str, *, option: str = "--ruleset") -> Ruleset:
    """An installed ruleset by its name and version, written as in alerts: "sre-v2"."""
    found = _SPEC.match((spec or "").strip())
    ruleset = rt.rulesets.get((found.group(1), int(found.group(2)))) if found else None
    if ruleset is None:
        installed = ", ".join(sorted(label(r) for r in rt.rulesets.values()))
        raise BacktestError(option, f"no installed ruleset {spec!r}; installed: {installed}")
    return ruleset


def draft_ruleset(rt: Runtime, path: Path) -> Ruleset:
    """A ruleset file not yet installed, validated as start-up validates installed ones."""
    try:
        return load_ruleset(
            path, rt.instruments.item_kinds(), instrument_items=rt.instruments.items_by_version()
        )
    except RulesetError as exc:
        raise BacktestError("--file", str(exc)) from None


@dataclass(frozen=True)
class Report:
    summary: Summary
    candidate: str
    reference: str  # a ruleset, or "each patient's own ruleset"
    reference_rulesets: dict[str, int]  # ruleset -> check-ins it scored as the reference
    since: datetime
    until: datetime
    check_ins: int  # closed check-ins in the window that were looked at (replayed or not comparable)
    lab_results: int  # lab results received in the window, replayed at their arrival
    limit: int
    truncated: bool  # more check-ins (or lab results) than the limit: the oldest were left out
    stored_alerts: dict[str, dict[str, int]]  # category -> urgency -> alerts opened in the window
    seconds: float

    @property
    def stored_total(self) -> int:
        return sum(sum(by.values()) for by in self.stored_alerts.values())

    def stored(self, category: str) -> int:
        return sum(self.stored_alerts.get(category, {}).values())

    def header(self) -> list[tuple[str, str]]:
        used = ", ".join(f"{name} ({count})" for name, count in self.reference_rulesets.items())
        stored = self.stored_total
        return [
            ("candidate", self.candidate),
            ("reference", self.reference + (f": {used}" if used else "")),
            (
                "window",
                f"{self.since.isoformat(timespec='minutes')} to {self.until.isoformat(timespec='minutes')}",
            ),
            (
                "closed check-ins",
                str(self.check_ins) + (f" (limit {self.limit} reached)" if self.truncated else ""),
            ),
            ("lab results replayed at arrival", str(self.lab_results)),
            ("alerts stored in the window", f"{stored} (episodes: one alert can span several check-ins)"),
        ]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"], out["until"] = self.since.isoformat(), self.until.isoformat()
        out["summary"]["not_comparable_total"] = self.summary.not_comparable_total
        out["seconds"] = round(self.seconds, 3)
        return out


def run_backtest(
    rt: Runtime,
    candidate: Ruleset,
    *,
    window: timedelta,
    against: Ruleset | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Report:
    """Replay the window's closed check-ins and lab arrivals; read-only, one consistent snapshot."""
    if limit < 1:
        raise BacktestError("--limit", "the limit must be 1 or more")
    started = time.perf_counter()
    with rt.unit_of_work() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One snapshot for the many reads, and a guard that the replay writes nothing.
            session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        until = rt.now()
        since = until - window
        walk = _Walk(session, rt, candidate, against)
        check_ins = _closed_check_ins(session, since, until, limit + 1)
        replays = list(walk.check_ins(check_ins[:limit]))
        arrivals = _lab_arrivals(session, since, until, limit + 1)
        replays += walk.lab_arrivals(arrivals[:limit])
        stored = _stored_alerts(session, since, until)
        session.rollback()
    references = [against] if against is not None else walk.reference_used
    summary = compare(
        replays,
        not_comparable=walk.not_comparable,
        categories=candidate.categories.union(*(r.categories for r in references)),
        rule_changes=rule_changes(references, candidate) if references else None,
    )
    return Report(
        summary=summary,
        candidate=label(candidate)
        + (f" ({candidate.source})" if candidate not in rt.rulesets.values() else ""),
        reference=label(against) if against is not None else "each patient's own ruleset",
        reference_rulesets=dict(sorted(walk.reference_counts.items())),
        since=since,
        until=until,
        check_ins=min(len(check_ins), limit),
        lab_results=min(len(arrivals), limit),
        limit=limit,
        truncated=len(check_ins) > limit or len(arrivals) > limit,
        stored_alerts=stored,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _Row:
    id: int
    patient_id: int
    pinned: int | None  # Patient.ruleset_version


def _closed_check_ins(session: Session, since: datetime, until: datetime, limit: int) -> list[_Row]:
    """The newest `limit` closed check-ins in the window (ids only; bodies are loaded a chunk at a time)."""
    query = (
        select(CheckIn.id, CheckIn.patient_id, Patient.ruleset_version)
        .join(Patient, Patient.id == CheckIn.patient_id)
        .where(CheckIn.status.in_(_CLOSED), CheckIn.closed_at >= since, CheckIn.closed_at <= until)
        .order_by(CheckIn.closed_at.desc(), CheckIn.id.desc())
        .limit(limit)
    )
    return [_Row(*row) for row in session.execute(query)]


def _lab_arrivals(session: Session, since: datetime, until: datetime, limit: int) -> list[_Row]:
    query = (
        select(LabResult.id, LabResult.patient_id, Patient.ruleset_version)
        .join(Patient, Patient.id == LabResult.patient_id)
        .where(LabResult.received_at >= since, LabResult.received_at <= until)
        .order_by(LabResult.received_at.desc(), LabResult.id.desc())
        .limit(limit)
    )
    return [_Row(*row) for row in session.execute(query)]


def _stored_alerts(session: Session, since: datetime, until: datetime) -> dict[str, dict[str, int]]:
    query = (
        select(Alert.category, Alert.urgency, func.count())
        .where(Alert.opened_at >= since, Alert.opened_at <= until)
        .group_by(Alert.category, Alert.urgency)
    )
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for category, urgency, count in session.execute(query):
        out[category][urgency] = count
    return dict(sorted(out.items()))


def _chunks(rows: Sequence[_Row]) -> Iterator[list[_Row]]:
    # By patient, so that a patient's history is loaded once for all their check-ins.
    ordered = sorted(rows, key=lambda r: (r.patient_id, r.id))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


class _Walk:
    """Replays rows through both sides, counting what could not be compared and which references ran."""

    def __init__(self, session: Session, rt: Runtime, candidate: Ruleset, against: Ruleset | None) -> None:
        self.session, self.rt, self.candidate, self.against = session, rt, candidate, against
        self.not_comparable: Counter[str] = Counter()
        self.reference_counts: Counter[str] = Counter()
        self.reference_used: list[Ruleset] = []

    def _reference(self, ruleset: Ruleset) -> Ruleset:
        if ruleset not in self.reference_used:
            self.reference_used.append(ruleset)
        return ruleset

    # --- check-ins ---

    def check_ins(self, rows: Sequence[_Row]) -> Iterator[Replayed]:
        for chunk in _chunks(rows):
            patients = sorted({r.patient_id for r in chunk})
            # Every closed check-in of these patients with its answers, held for the chunk: the history
            # queries inside scoring_inputs then find them (and their answers) already loaded.
            loaded = {
                c.id: c
                for c in self.session.scalars(
                    select(CheckIn)
                    .where(CheckIn.patient_id.in_(patients), CheckIn.status.in_(_CLOSED))
                    .options(selectinload(CheckIn.answers))
                )
            }
            received = self._received(patients)
            for row in chunk:
                replayed = self._check_in(loaded[row.id], row.pinned, received)
                if replayed is not None:
                    yield replayed
            self.session.expunge_all()  # read-only: nothing to flush, and memory stays flat

    def _received(self, patients: Sequence[int]) -> dict[int, datetime]:
        query = select(LabResult.id, LabResult.received_at).where(LabResult.patient_id.in_(patients))
        return dict(self.session.execute(query).tuples().all())

    def _check_in(
        self, check_in: CheckIn, pinned: int | None, received: dict[int, datetime]
    ) -> Replayed | None:
        code, version = check_in.instrument_code, check_in.instrument_version
        # As triage.ruleset_for_check_in, with the patient's pinned version read once with the row.
        reference = self.against or self.rt.ruleset_for_check_in(pinned, code, version)
        for side, ruleset in (("candidate", self.candidate), ("reference", reference)):
            if not fits(ruleset, code, version):
                self.not_comparable[not_comparable_reason(ruleset, code, version, side)] += 1
                return None
        self.reference_counts[label(self._reference(reference))] += 1
        closed = check_in.closed_at
        assert closed is not None  # selected on closed_at
        # Lab windows count back from `now`, so the wider lookback loads every result either side reads.
        wider = max(self.candidate, reference, key=lambda r: r.lab_lookback_days)
        answers, history = triage.scoring_inputs(self.session, check_in, wider, now=closed)
        # Only results that had arrived when the check-in closed (scoring saw no later ones).
        known = tuple(v for v in history.labs if _arrived(v, received, closed))
        history = replace(history, labs=known)
        return Replayed(
            reference=evaluate(answers, history, reference, complete=True),
            candidate=evaluate(answers, history, self.candidate, complete=True),
        )

    # --- lab results ---

    def lab_arrivals(self, rows: Sequence[_Row]) -> list[Replayed]:
        out: list[Replayed] = []
        for chunk in _chunks(rows):
            by_patient: dict[int, list[LabResult]] = defaultdict(list)
            query = select(LabResult).where(LabResult.patient_id.in_(sorted({r.patient_id for r in chunk})))
            for result in self.session.scalars(query):
                by_patient[result.patient_id].append(result)
            for row in chunk:
                results = by_patient[row.patient_id]
                arrived = next(r for r in results if r.id == row.id)
                reference = self._reference(self.against or self.rt.ruleset_for(row.pinned))
                out.append(self._lab_arrival(arrived, results, reference))
            self.session.expunge_all()
        return out

    def _lab_arrival(self, arrived: LabResult, results: Sequence[LabResult], reference: Ruleset) -> Replayed:
        at = arrived.received_at
        wider = max(self.candidate, reference, key=lambda r: r.lab_lookback_days)
        views = _known_at(results, at, since=at - timedelta(days=wider.lab_lookback_days))
        sides = [
            naming_result(evaluate_labs(views, History(labs=views, now=at), ruleset, now=at), arrived.id)
            for ruleset in (reference, self.candidate)
        ]
        return Replayed(reference=sides[0], candidate=sides[1])


def _arrived(view: LabView, received: dict[int, datetime], at: datetime) -> bool:
    arrived = received.get(view.result_id) if view.result_id is not None else None
    return arrived is None or arrived <= at


def _known_at(results: Sequence[LabResult], at: datetime, *, since: datetime) -> tuple[LabView, ...]:
    """The patient's current results as they stood at `at`: arrived by then, and not yet replaced by a
    version that had arrived by then (as services.labs.lab_views reads them at that moment)."""
    by_id = {r.id: r for r in results}

    def current(result: LabResult) -> bool:
        newer = by_id.get(result.replaced_by_id) if result.replaced_by_id is not None else None
        return result.received_at <= at and (newer is None or newer.received_at > at)

    rows = [r for r in results if current(r) and r.effective_at >= since]
    rows.sort(key=lambda r: (r.effective_at, r.id), reverse=True)
    return tuple(lab_view(r) for r in hide_derived_beside_lab(rows))
