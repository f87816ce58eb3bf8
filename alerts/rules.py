"""Pure evaluation of clinical red-flag rules against one check-in's answers.

No I/O, no clock, no framework imports: the same answers, history and ruleset always give the same
findings, so every alert can be replayed and audited against the ruleset version that raised it.

Unknown is never "fine". Conditions use three-valued (Kleene) logic: an item that is missing,
unreadable, skipped, absent or malformed is UNKNOWN; a rule fires only when its condition is TRUE.
So an unknown answer can never fire a rule, ``not`` of an unknown stays unknown (a negated rule
never fires on a missing answer), while ``any`` still fires on one TRUE branch even if other branches
are unknown (a "yes" to the neuro question is an emergency whatever else is missing). Unreadable
replies are surfaced separately by the ruleset's ``kind: message`` rule.

Lab results (alerts.labs.LabView) are read the same way. A threshold test reads the latest usable result
of its codes taken within its window; a withdrawn result (entered in error, no value), a result in the
wrong unit or no result at all is UNKNOWN, never normal. ``lab_missing`` is TRUE when no usable result was
taken within its window: the absence of a test is a fact the rules may act on ("check calcium"). Without
an evaluation time (History.now is None) every lab condition is UNKNOWN, so a caller that passes no lab
context gets exactly the findings it got before lab rules existed.

A rule whose condition reads only lab results runs when a result arrives (``evaluate_labs``); a rule that
also reads answers or history runs with the check-in (``evaluate``), with the patient's results in History.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, TypeAlias, assert_never

from alerts.labs import CANONICAL_UNIT, LAB_NAMES, LabView
from alerts.reading import NOT_FORMS, fold

if TYPE_CHECKING:
    from alerts.ruleset import Ruleset


class Urgency(StrEnum):
    URGENT = "urgent"
    SAME_DAY = "same_day"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return _RANKS[self]

    @classmethod
    def max(cls, first: Urgency, *rest: Urgency) -> Urgency:
        return max((first, *rest), key=lambda urgency: urgency.rank)


_RANKS = {Urgency.ROUTINE: 1, Urgency.SAME_DAY: 2, Urgency.URGENT: 3}

# Answer statuses (AnswerView.status). Only "answered" carries a value the rules may read.
ANSWERED = "answered"
UNREADABLE = "unreadable"
MISSING = "missing"
SKIPPED = "skipped"

# Categories produced outside the condition rules; findings merge per category, so they are fixed names.
MESSAGE_CATEGORY = "patient_message"
CALLBACK_CATEGORY = "callback_request"

# rise_from_previous compares with the patient's previous completed check-in; History only carries
# the previous value of these items (item code -> History attribute).
PREVIOUS_VALUE_FIELDS: Mapping[str, str] = {"pain_worst": "previous_pain_worst"}
CONTINENCE_STATES = ("continent", "bladder_problem", "bowel_problem", "bladder_and_bowel_problem", "catheter")
# Item code -> the Baseline field an answer is compared with (`above_baseline`).
BASELINE_VALUE_FIELDS: Mapping[str, str] = {"pain_worst": "usual_pain"}
# Baseline facts a rule may test, and the values each may take.
BASELINE_FACTS: Mapping[str, tuple[bool | str, ...]] = {
    "chronic_neuropathy": (True, False),
    "continence": CONTINENCE_STATES,
}
# History counters a `history:` condition may test with at_least.
HISTORY_COUNTERS = frozenset({"consecutive_expired_unanswered"})
# How many completed check-ins before this one History.recent_values holds ("worse than recently").
RECENT_CHECK_INS = 3

# Where a free-text message came from: outside a check-in, the anything_else item, an unreadable reply.
_MESSAGE_SOURCES: frozenset[str] = frozenset({"message", "anything_else", "unreadable"})


@dataclass(frozen=True)
class AnswerView:
    item_code: str
    status: str  # "answered" | "unreadable" | "missing" | "skipped"
    value: bool | int | list[int] | str | None
    raw_text: str | None  # the patient's reply as received
    question: str | None  # the question text as the patient saw it


@dataclass(frozen=True)
class Baseline:
    """What is usual for this patient, recorded by the care team. None is "not recorded": unknown, so a
    rule that compares with the baseline cannot fire on it and a rule that would be silenced by it is
    not silenced."""

    chronic_neuropathy: bool | None = None  # known long-standing numbness/tingling (e.g. after chemotherapy)
    continence: str | None = None  # one of CONTINENCE_STATES
    usual_pain: int | None = None  # the patient's usual worst pain, 0-10
    spinal_levels: str | None = None  # known spinal metastases, e.g. "T8, L2" (shown to nurses, not read)


@dataclass(frozen=True)
class History:
    previous_pain_worst: int | None = None  # from the patient's previous COMPLETED check-in
    consecutive_expired_unanswered: int = 0  # in a row, including this one, expired with no answer at all
    # The patient's lab results known at `now` (canonical units; withdrawn ones may be included, they are
    # never read as values). Load at least Ruleset.lab_lookback_days back, for Ruleset.lab_codes.
    labs: tuple[LabView, ...] = ()
    # The evaluation time (timezone-aware) that lab windows count back from. None: no lab context, and
    # every lab condition is unknown.
    now: datetime | None = None
    # The patient's recorded baseline (None: none recorded, every baseline condition is unknown).
    baseline: Baseline | None = None
    # Integer answers of the patient's last completed check-ins before this one, newest first (up to
    # RECENT_CHECK_INS of them), by item code: what "worse than recently" is judged against.
    recent_values: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """One answer (or history fact or lab result, item_code None) that made a rule fire.

    A lab result's value is a JSON-ready dict: code, name, value, unit, reference_range, taken_at (ISO
    8601), status, derived, result_id (see `lab_evidence_value`).
    """

    item_code: str | None
    question: str | None
    raw_text: str | None
    value: object


@dataclass(frozen=True)
class Finding:
    category: str
    urgency: Urgency
    rule_id: str  # the most urgent rule that fired in this category (first in file order on a tie)
    rationale: str
    ruleset: str
    ruleset_version: int
    evidence: tuple[Evidence, ...]
    # Other rules (and combination policies) that also fired into this finding, for the audit trail.
    other_rule_ids: tuple[str, ...] = ()
    domain: str | None = None  # the category's clinical domain, when the ruleset names domains


# --- The condition model, built by alerts.ruleset from YAML --------------------------------------


@dataclass(frozen=True)
class Is:
    item: str
    value: bool


@dataclass(frozen=True)
class Compare:
    item: str
    op: Literal["gte", "lte", "eq"]
    value: int


@dataclass(frozen=True)
class Includes:
    """`includes: 5` is Includes(values=(5,)); `includes_any: [..]` any of several."""

    item: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class CountOf:
    item: str
    values: tuple[int, ...]
    at_least: int


@dataclass(frozen=True)
class RiseFromPrevious:
    item: str
    by: int


@dataclass(frozen=True)
class RiseOverRecent:
    """The answer is at least `by` above the LOWEST of the same item in the patient's last completed
    check-ins (History.recent_values, up to RECENT_CHECK_INS): a rise over weeks, not only since last week."""

    item: str
    by: int


@dataclass(frozen=True)
class AboveBaseline:
    """The answer is at least `by` above the patient's recorded usual value (Baseline, BASELINE_FIELDS)."""

    item: str
    by: int


@dataclass(frozen=True)
class BaselineIs:
    """A recorded baseline fact: `{baseline: chronic_neuropathy, is: true}` or `{baseline: continence,
    in: [catheter]}`. Unknown when nothing is recorded."""

    field: str
    values: tuple[bool | str, ...]


@dataclass(frozen=True)
class BaselineRecorded:
    """`{baseline: chronic_neuropathy, recorded: false}`: TRUE when the care team has not recorded it. Lets
    a rule say "unless the baseline says otherwise" without reading a missing baseline as normal."""

    field: str
    expected: bool


@dataclass(frozen=True)
class HistoryAtLeast:
    counter: str
    at_least: int


LabOperator: TypeAlias = Literal["above", "at_least", "below", "at_most", "between"]


@dataclass(frozen=True)
class LabThreshold:
    """The latest usable result of `codes` taken within `within_days` compared with a threshold.

    above: value > threshold; at_least: >=; below: <; at_most: <=; between: threshold <= value <= upper.
    Values equal to the threshold within 1e-9 count as equal (3.0000000000000004 after a unit
    conversion is 3.0). `unit` is the codes' canonical unit, checked by the loader.
    """

    codes: tuple[str, ...]
    op: LabOperator
    threshold: float
    unit: str
    within_days: int
    upper: float | None = None  # only for between


@dataclass(frozen=True)
class LabMissing:
    """TRUE when no usable result of `codes` was taken within `within_days` before the evaluation time."""

    codes: tuple[str, ...]
    within_days: int


@dataclass(frozen=True)
class LabRise:
    """TRUE when the latest usable result of `code` within `within_days` is at least `by_fraction`
    above the lowest earlier result in the same window (a rise from the nadir)."""

    code: str
    by_fraction: float
    within_days: int


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


ItemCondition: TypeAlias = (
    Is | Compare | Includes | CountOf | RiseFromPrevious | RiseOverRecent | AboveBaseline
)
LabCondition: TypeAlias = LabThreshold | LabMissing | LabRise
Condition: TypeAlias = (
    ItemCondition | HistoryAtLeast | BaselineIs | BaselineRecorded | LabCondition | AnyOf | AllOf | Not
)


def walk(condition: Condition) -> Iterator[Condition]:
    """The condition and every condition inside it, depth first."""
    yield condition
    match condition:
        case AnyOf(conditions) | AllOf(conditions):
            for inner in conditions:
                yield from walk(inner)
        case Not(inner):
            yield from walk(inner)
        case _:
            pass


def reads(condition: Condition) -> frozenset[Literal["answers", "history", "labs"]]:
    """What a condition needs to be judged: the check-in's answers, the history counters, lab results."""
    found: set[Literal["answers", "history", "labs"]] = set()
    for part in walk(condition):
        if isinstance(part, LabThreshold | LabMissing | LabRise):
            found.add("labs")
        elif isinstance(part, HistoryAtLeast | BaselineIs | BaselineRecorded):
            found.add("history")
        elif not isinstance(part, AnyOf | AllOf | Not):
            found.add("answers")
    return frozenset(found)


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    urgency: Urgency
    rationale: str
    when: Condition
    early: bool = False
    domain: str | None = None  # UKONS-style clinical domain (alerts.ruleset.DOMAINS), for combinations

    @property
    def lab_only(self) -> bool:
        """Reads only lab results: runs when a result arrives (evaluate_labs), not with a check-in."""
        return reads(self.when) == {"labs"}


@dataclass(frozen=True)
class MessageRule:
    """Reads free-text answers and unreadable replies as messages for a nurse (category patient_message).

    Urgency comes from the ruleset's `messages:` section: routine, or the warning urgency when the
    text contains a warning phrase.
    """

    id: str
    category: str
    rationale: str
    items: tuple[str, ...]  # free_text items whose non-empty text is a message
    unreadable: bool  # every unreadable answer, whatever the item
    early: bool = False


@dataclass(frozen=True)
class Combination:
    """Policy over a complete check-in's findings: when at least `min_categories` distinct categories
    (count="domains": distinct clinical domains) are at `of_urgency`, each of those findings is raised
    in place to `raise_to`."""

    id: str
    enabled: bool
    min_categories: int
    of_urgency: Urgency
    raise_to: Urgency
    rationale: str
    categories: tuple[str, ...] | None = None  # None: every category counts
    count: Literal["categories", "domains"] = "categories"


# --- Evaluation ---------------------------------------------------------------------------------

# Three-valued truth: True, False, or None for UNKNOWN.
_Truth: TypeAlias = bool | None


@dataclass(frozen=True)
class _Outcome:
    truth: _Truth
    evidence: tuple[Evidence, ...] = ()


_UNKNOWN = _Outcome(None)


@dataclass(frozen=True)
class _Fired:
    rule_id: str
    urgency: Urgency
    rationale: str
    evidence: tuple[Evidence, ...]


def evaluate(
    answers: Mapping[str, AnswerView], history: History, ruleset: Ruleset, *, complete: bool
) -> list[Finding]:
    """Findings for one check-in, one per category, most urgent first then by category.

    complete=False (check-in in progress) runs only `early` rules, so urgent red flags alert as soon as
    the answer arrives; complete=True runs every rule and then the enabled combination policies.
    Rules that read only lab results are not run here: they ran when each result arrived (evaluate_labs),
    and running them again with every check-in would re-raise a result a nurse has already handled.
    Rules that combine answers and labs read history.labs at history.now.
    """
    _check_times(history.now, history.labs)
    fired: dict[str, list[_Fired]] = {}
    for rule in ruleset.rules:
        if not complete and not rule.early:
            continue
        if isinstance(rule, Rule) and rule.lab_only:
            continue
        if isinstance(rule, MessageRule):
            hit = _run_message_rule(rule, answers, ruleset)
        else:
            hit = _run_rule(rule, answers, history)
        if hit is not None:
            fired.setdefault(rule.category, []).append(hit)

    findings = [_merge(category, hits, ruleset) for category, hits in fired.items()]
    if complete:
        for combination in ruleset.combinations:
            if combination.enabled:
                findings = _apply_combination(combination, findings)
    return sorted(findings, key=lambda f: (-f.urgency.rank, f.category))


def evaluate_labs(
    labs: Iterable[LabView], history: History, ruleset: Ruleset, *, now: datetime
) -> list[Finding]:
    """Findings when a lab result arrives: the rules that read only lab results, one finding per category,
    most urgent first then by category.

    labs: the patient's results known at `now` (the new one included), in canonical units; they replace
    history.labs, and `now` replaces history.now. Each finding's evidence is the result(s) that decided
    it (Evidence.item_code None, value from `lab_evidence_value`), so the caller can tell which results an
    alert is about (value["result_id"]). No combination policy runs: that is a check-in's. Pure: the same
    results, time and ruleset give the same findings.
    """
    if not isinstance(now, datetime):
        raise ValueError("evaluate_labs needs the evaluation time `now` (a timezone-aware datetime)")
    context = replace(history, labs=tuple(labs), now=now)
    _check_times(context.now, context.labs)
    fired: dict[str, list[_Fired]] = {}
    for rule in ruleset.rules:
        if isinstance(rule, Rule) and rule.lab_only:
            hit = _run_rule(rule, {}, context)
            if hit is not None:
                fired.setdefault(rule.category, []).append(hit)
    findings = [_merge(category, hits, ruleset) for category, hits in fired.items()]
    return sorted(findings, key=lambda f: (-f.urgency.rank, f.category))


def lab_evidence_value(view: LabView, **extra: object) -> dict[str, object]:
    """A lab result as alert evidence: JSON-ready (taken_at as ISO 8601), what a nurse needs to judge it."""
    return {
        "code": view.code,
        "name": LAB_NAMES.get(view.code, view.code),
        "value": view.value,
        "unit": view.unit,
        "reference_range": view.reference_range,
        "taken_at": view.taken_at.isoformat(),
        "status": view.status,
        "derived": view.derived,
        "result_id": view.result_id,
        **extra,
    }


def evaluate_message(text: str, ruleset: Ruleset, *, source: str) -> Finding:
    """A free-text message for a nurse to read: routine, or sooner when it contains a warning phrase.

    source: "message" (outside a check-in), "anything_else" or "unreadable" (a reply that could not be read).
    """
    if source not in _MESSAGE_SOURCES:
        raise ValueError(f"unknown message source {source!r}; expected one of {sorted(_MESSAGE_SOURCES)}")
    matches = _warning_matches(text, ruleset)
    urgency = ruleset.message_warning_urgency if matches else ruleset.message_urgency
    item_code = "anything_else" if source == "anything_else" else None
    return Finding(
        category=MESSAGE_CATEGORY,
        urgency=urgency,
        rule_id="messages",
        rationale=f"{ruleset.message_rationale} (Source: {source}.) {_describe_matches(matches)}",
        ruleset=ruleset.name,
        ruleset_version=ruleset.version,
        evidence=(Evidence(item_code=item_code, question=None, raw_text=text, value=text),),
    )


def callback_request(ruleset: Ruleset, raw_text: str) -> Finding:
    """The patient texted NURSE/CALL. A warning phrase in the same text can only raise the urgency."""
    matches = _warning_matches(raw_text, ruleset)
    urgency = ruleset.callback_urgency
    if matches:
        urgency = Urgency.max(urgency, ruleset.message_warning_urgency)
    return Finding(
        category=CALLBACK_CATEGORY,
        urgency=urgency,
        rule_id="messages.callback",
        rationale=f"{ruleset.callback_rationale} {_describe_matches(matches)}",
        ruleset=ruleset.name,
        ruleset_version=ruleset.version,
        evidence=(Evidence(item_code=None, question=None, raw_text=raw_text, value=raw_text),),
    )


def _run_rule(rule: Rule, answers: Mapping[str, AnswerView], history: History) -> _Fired | None:
    outcome = _check(rule.when, answers, history)
    if outcome.truth is not True:
        return None
    return _Fired(rule.id, rule.urgency, rule.rationale, outcome.evidence)


def _run_message_rule(
    rule: MessageRule, answers: Mapping[str, AnswerView], ruleset: Ruleset
) -> _Fired | None:
    views: list[AnswerView] = []
    for item in rule.items:
        view = _answered(answers, item)
        if view is not None and isinstance(view.value, str) and view.value.strip():
            views.append(view)
    if rule.unreadable:
        views.extend(v for v in answers.values() if v.status == UNREADABLE and v not in views)
    if not views:
        return None

    matches: list[tuple[str, str]] = []
    for view in views:
        text = view.value if isinstance(view.value, str) and view.status == ANSWERED else view.raw_text
        matches.extend(m for m in _warning_matches(text or "", ruleset) if m not in matches)
    urgency = ruleset.message_warning_urgency if matches else ruleset.message_urgency
    unreadable = [v.item_code for v in views if v.status == UNREADABLE]
    detail = f" Unreadable reply to: {', '.join(unreadable)}." if unreadable else ""
    rationale = f"{rule.rationale}{detail} {_describe_matches(matches)}"
    return _Fired(rule.id, urgency, rationale, tuple(_evidence(v) for v in views))


def _merge(category: str, hits: list[_Fired], ruleset: Ruleset) -> Finding:
    urgency = Urgency.max(*(h.urgency for h in hits))
    primary = next(h for h in hits if h.urgency == urgency)  # file order breaks ties
    return Finding(
        category=category,
        urgency=urgency,
        rule_id=primary.rule_id,
        rationale=primary.rationale,
        ruleset=ruleset.name,
        ruleset_version=ruleset.version,
        evidence=_ordered_evidence((e for h in hits for e in h.evidence), ruleset),
        other_rule_ids=tuple(h.rule_id for h in hits if h is not primary),
        domain=ruleset.category_domains.get(category),
    )


def _ordered_evidence(evidence: Iterable[Evidence], ruleset: Ruleset) -> tuple[Evidence, ...]:
    unique: list[Evidence] = []
    for e in evidence:
        if e not in unique:  # equality, not hashing: values may be lists
            unique.append(e)
    order = {code: i for i, code in enumerate(ruleset.item_kinds)}

    def position(e: Evidence) -> int:
        if e.item_code is None:
            return len(order) + 1  # history facts after the answers
        return order.get(e.item_code, len(order))

    return tuple(sorted(unique, key=position))  # stable: ties keep first-seen order


def _apply_combination(combination: Combination, findings: list[Finding]) -> list[Finding]:
    eligible = [
        f
        for f in findings
        if f.urgency == combination.of_urgency
        and (combination.categories is None or f.category in combination.categories)
        and (combination.count == "categories" or f.domain is not None)
    ]
    # A finding without a domain never counts towards domains (a free-text message, say).
    counted = {f.domain if combination.count == "domains" else f.category for f in eligible}
    if len(counted) < combination.min_categories:
        return findings
    raised = {f.category for f in eligible}
    note = (
        f" Raised from {combination.of_urgency} to {combination.raise_to} by policy '{combination.id}': "
        f"{len(counted)} {combination.of_urgency} {combination.count} in one check-in "
        f"({', '.join(sorted(str(c) for c in counted))}). {combination.rationale}"
    )
    return [
        replace(
            f,
            urgency=combination.raise_to,
            rationale=f.rationale + note,
            other_rule_ids=(*f.other_rule_ids, combination.id),
        )
        if f.category in raised
        else f
        for f in findings
    ]


# --- Conditions ---------------------------------------------------------------------------------


def _answered(answers: Mapping[str, AnswerView], item: str) -> AnswerView | None:
    view = answers.get(item)
    return view if view is not None and view.status == ANSWERED else None


def _evidence(view: AnswerView) -> Evidence:
    return Evidence(view.item_code, view.question, view.raw_text, view.value)


def _as_int(value: object) -> int | None:
    # bool is an int subclass; a True must never read as pain score 1.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_choices(value: object) -> frozenset[int] | None:
    if not isinstance(value, list | tuple):
        return None
    choices = [_as_int(v) for v in value]
    return None if any(c is None for c in choices) else frozenset(c for c in choices if c is not None)


def _check(condition: Condition, answers: Mapping[str, AnswerView], history: History) -> _Outcome:
    """Three-valued check; evidence is the answers that decided a True or False outcome."""
    match condition:
        case AnyOf(conditions):
            outcomes = [_check(c, answers, history) for c in conditions]
            if any(o.truth is True for o in outcomes):
                return _Outcome(True, _join(o for o in outcomes if o.truth is True))
            if any(o.truth is None for o in outcomes):
                return _UNKNOWN
            return _Outcome(False, _join(outcomes))
        case AllOf(conditions):
            outcomes = [_check(c, answers, history) for c in conditions]
            if any(o.truth is False for o in outcomes):
                return _Outcome(False, _join(o for o in outcomes if o.truth is False))
            if any(o.truth is None for o in outcomes):
                return _UNKNOWN
            return _Outcome(True, _join(outcomes))
        case Not(inner):
            outcome = _check(inner, answers, history)
            return _UNKNOWN if outcome.truth is None else _Outcome(not outcome.truth, outcome.evidence)
        case BaselineIs(fact, values):
            recorded = getattr(history.baseline, fact, None) if history.baseline is not None else None
            if recorded is None:
                return _UNKNOWN  # not recorded: never read as "no neuropathy" or "continent"
            return _Outcome(recorded in values, (_history_evidence(f"baseline.{fact}", recorded),))
        case BaselineRecorded(fact, expected):
            recorded = getattr(history.baseline, fact, None) if history.baseline is not None else None
            return _Outcome(
                (recorded is not None) is expected, (_history_evidence(f"baseline.{fact}", recorded),)
            )
        case HistoryAtLeast(counter, at_least):
            count = _as_int(getattr(history, counter, None))
            if count is None:
                return _UNKNOWN
            return _Outcome(count >= at_least, (_history_evidence(counter, count),))
        case LabThreshold() | LabMissing() | LabRise():
            return _check_lab(condition, history)
        case _:
            return _check_item(condition, answers, history)


def _check_item(condition: ItemCondition, answers: Mapping[str, AnswerView], history: History) -> _Outcome:
    view = _answered(answers, condition.item)
    if view is None:
        return _UNKNOWN
    truth: _Truth
    extra: tuple[Evidence, ...] = ()
    match condition:
        case Is(_, expected):
            truth = view.value is expected if isinstance(view.value, bool) else None
        case Compare(_, op, threshold):
            number = _as_int(view.value)
            truth = None if number is None else _compare(op, number, threshold)
        case Includes(_, values):
            choices = _as_choices(view.value)
            truth = None if choices is None else bool(choices.intersection(values))
        case CountOf(_, values, at_least):
            choices = _as_choices(view.value)
            truth = None if choices is None else len(choices.intersection(values)) >= at_least
        case RiseFromPrevious(item, by):
            number = _as_int(view.value)
            attribute = PREVIOUS_VALUE_FIELDS.get(item)
            previous = _as_int(getattr(history, attribute)) if attribute else None
            # No previous completed check-in: a rise cannot be judged, so the rule cannot fire.
            truth = None if number is None or previous is None else number - previous >= by
            if previous is not None and attribute is not None:
                extra = (_history_evidence(attribute, previous),)
        case RiseOverRecent(item, by):
            number = _as_int(view.value)
            recent = history.recent_values.get(item, ())
            # No earlier completed check-in answered it: a rise cannot be judged.
            truth = None if number is None or not recent else number - min(recent) >= by
            if recent:
                extra = (_history_evidence(f"recent.{item}", list(recent)),)
        case AboveBaseline(item, by):
            number = _as_int(view.value)
            field_name = BASELINE_VALUE_FIELDS.get(item)
            usual = getattr(history.baseline, field_name, None) if history.baseline and field_name else None
            usual = _as_int(usual)
            truth = None if number is None or usual is None else number - usual >= by
            if usual is not None:
                extra = (_history_evidence(f"baseline.{field_name}", usual),)
        case _:
            assert_never(condition)
    return _UNKNOWN if truth is None else _Outcome(truth, (_evidence(view), *extra))


# --- Lab conditions -----------------------------------------------------------------------------


def _check_times(now: datetime | None, labs: Iterable[LabView]) -> None:
    # Naive and aware datetimes cannot be compared; a naive one is the caller's bug, so say which.
    if now is not None and now.utcoffset() is None:
        raise ValueError(f"the evaluation time must be timezone-aware, got {now!r}")
    for view in labs:
        if view.taken_at.utcoffset() is None:
            raise ValueError(
                f"lab result {view.result_id} ({view.code}) has a naive taken_at {view.taken_at!r}; "
                "results must carry timezone-aware times"
            )


def _usable(view: LabView) -> bool:
    """A value the rules may read: not withdrawn, a finite number, in its code's canonical unit."""
    value = view.value
    return (
        not view.withdrawn
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and view.unit == CANONICAL_UNIT.get(view.code)
    )


def _value(view: LabView) -> float:
    assert view.value is not None  # only called on usable results
    return float(view.value)


def _recent(labs: Iterable[LabView], codes: tuple[str, ...], now: datetime, days: int) -> list[LabView]:
    """Usable results of these codes taken within `days` before `now`. A result timed after `now` counts
    too: a lab clock a little ahead of ours must never hide a result (the caller passes only results it
    knows at `now`)."""
    since = now - timedelta(days=days)
    return [v for v in labs if v.code in codes and _usable(v) and v.taken_at >= since]


def _recency(view: LabView) -> tuple[datetime, bool, int]:
    # Latest sample first; for one sample the lab's own adjusted calcium beats the service's derived one.
    return (view.taken_at, not view.derived, -1 if view.result_id is None else view.result_id)


def _latest(views: Iterable[LabView]) -> LabView | None:
    return max(views, key=_recency, default=None)


def _order(value: float, threshold: float) -> int:
    """-1, 0 or 1; equal within 1e-9 so that unit conversion noise never crosses a threshold."""
    if math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-9):
        return 0
    return 1 if value > threshold else -1


def _passes(condition: LabThreshold, value: float) -> bool:
    match condition.op:
        case "above":
            return _order(value, condition.threshold) > 0
        case "at_least":
            return _order(value, condition.threshold) >= 0
        case "below":
            return _order(value, condition.threshold) < 0
        case "at_most":
            return _order(value, condition.threshold) <= 0
        case "between":
            assert condition.upper is not None  # the loader requires both bounds
            return _order(value, condition.threshold) >= 0 and _order(value, condition.upper) <= 0
        case _:
            assert_never(condition.op)


def _lab_evidence(view: LabView, **extra: object) -> Evidence:
    return Evidence(item_code=None, question=None, raw_text=None, value=lab_evidence_value(view, **extra))


def _check_lab(condition: LabCondition, history: History) -> _Outcome:
    now = history.now
    if now is None:  # no lab context: cannot tell, so never fires and never reassures
        return _UNKNOWN
    match condition:
        case LabThreshold(codes=codes, within_days=days):
            latest = _latest(_recent(history.labs, codes, now, days))
            if latest is None:
                return _UNKNOWN
            return _Outcome(_passes(condition, _value(latest)), (_lab_evidence(latest),))
        case LabMissing(codes, days):
            latest = _latest(_recent(history.labs, codes, now, days))
            if latest is not None:
                return _Outcome(False, (_lab_evidence(latest),))
            earlier = _latest(v for v in history.labs if v.code in codes and _usable(v))
            fact = {
                "lab_missing": [LAB_NAMES.get(code, code) for code in codes],
                "codes": list(codes),
                "within_days": days,
                "since": (now - timedelta(days=days)).isoformat(),
                "last_result": None if earlier is None else lab_evidence_value(earlier),
            }
            return _Outcome(True, (Evidence(item_code=None, question=None, raw_text=None, value=fact),))
        case LabRise(code, by_fraction, days):
            recent = _recent(history.labs, (code,), now, days)
            latest = _latest(recent)
            if latest is None:
                return _UNKNOWN
            before = [v for v in recent if v.taken_at < latest.taken_at]
            if not before:  # one result: a rise cannot be judged
                return _UNKNOWN
            nadir = min(before, key=lambda v: (_value(v), v.taken_at))
            if _value(nadir) <= 0:
                return _UNKNOWN
            fraction = (_value(latest) - _value(nadir)) / _value(nadir)
            evidence = (
                _lab_evidence(nadir, role="lowest_earlier"),
                _lab_evidence(latest, role="latest", rise_fraction=round(fraction, 4)),
            )
            return _Outcome(_order(fraction, by_fraction) >= 0, evidence)
        case _:
            assert_never(condition)


def _compare(op: Literal["gte", "lte", "eq"], number: int, threshold: int) -> bool:
    if op == "gte":
        return number >= threshold
    if op == "lte":
        return number <= threshold
    return number == threshold


def _history_evidence(name: str, value: object) -> Evidence:
    return Evidence(item_code=None, question=None, raw_text=None, value={name: value})


def _join(outcomes: Iterable[_Outcome]) -> tuple[Evidence, ...]:
    return tuple(e for o in outcomes for e in o.evidence)


# --- Warning phrases ----------------------------------------------------------------------------
#
# Matching is on words after normalisation (below). A phrase matches where its words appear in order;
# the phrase's LAST word may run on, so "numb" matches "numbness", "fall" matches "falling" and the
# Spanish stem "entumecid" matches "entumecido/a". That is where prefix matching goes wrong: "numb"
# also matches "number", "fell" matches "fellow", "fall" matches "fallopian". We keep prefix matching
# because a missed warning (silent) is worse than an extra same-day read (visible), and the ruleset
# lists such words under `not_warning_words` so that they alone never match. Earlier words of a
# phrase must match whole. Negation is not understood: "no numbness" still matches "numb" (errs safe).

_WORD = re.compile(r"[^\W_]+")
_CONTRACTED = frozenset(NOT_FORMS.values())


def _normalise(text: str) -> tuple[str, ...]:
    """Lower-case, accent-folded words with apostrophes removed and "X not" joined to "Xnt"."""
    words = _WORD.findall(fold(text))
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else None
        if word == "cannot":
            out.append("cant")
        elif following == "not" and word in NOT_FORMS:
            out.append(NOT_FORMS[word])
            i += 1
        elif following == "t" and word + "t" in _CONTRACTED:  # "can t": apostrophe typed as a space
            out.append(word + "t")
            i += 1
        else:
            out.append(word)
        i += 1
    return tuple(out)


def phrase_problem(phrase: str, *, single_word: bool = False) -> str | None:
    """Why a configured phrase could never match as intended, or None if it is fine (for the loader)."""
    words = _normalise(phrase)
    if not words:
        return f"phrase {phrase!r} has no letters or digits left after normalisation"
    if single_word and len(words) != 1:
        return f"{phrase!r} must be a single word"
    return None


def not_warning_word_problem(word: str, phrases: Iterable[str]) -> str | None:
    """Why a not-warning word would have no effect (it extends no phrase's last word), or None."""
    problem = phrase_problem(word, single_word=True)
    if problem:
        return problem
    (normalised,) = _normalise(word)
    for phrase in phrases:
        words = _normalise(phrase)
        if words and normalised != words[-1] and normalised.startswith(words[-1]):
            return None
    return f"{word!r} does not extend the last word of any warning phrase, so it has no effect"


def _contains(words: tuple[str, ...], phrase: tuple[str, ...], not_warning: frozenset[str]) -> bool:
    if not phrase:
        return False
    *head, last = phrase
    width = len(phrase)
    for start in range(len(words) - width + 1):
        if list(words[start : start + width - 1]) != head:
            continue
        word = words[start + width - 1]
        if word == last or (word.startswith(last) and word not in not_warning):
            return True
    return False


def _warning_matches(text: str, ruleset: Ruleset) -> list[tuple[str, str]]:
    """(language, phrase) for every configured phrase in the text; every language is checked."""
    words = _normalise(text)
    matches: list[tuple[str, str]] = []
    for language, phrases in ruleset.warning_phrases.items():
        exempt = ruleset.not_warning_words.get(language, ())
        not_warning = frozenset(w for word in exempt for w in _normalise(word))
        matches.extend((language, p) for p in phrases if _contains(words, _normalise(p), not_warning))
    return matches


def _describe_matches(matches: list[tuple[str, str]]) -> str:
    if not matches:
        return "No warning phrase matched."
    listed = ", ".join(f'"{phrase}" ({language})' for language, phrase in matches)
    return f"Warning phrase matched: {listed}."
