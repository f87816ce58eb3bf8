"""Lab conditions in the ruleset (issue 17, item 3): the shipped sre v2 lab rules, their boundaries,
unknown and withdrawn results, lab_missing windows, derived adjusted calcium, the ALP rise, the evidence a
result raises, sre v2 answering exactly as sre v1 without labs, and the loader's errors."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.labs import (
    ADJUSTED_CALCIUM,
    ALBUMIN,
    ALKALINE_PHOSPHATASE,
    CANONICAL_UNIT,
    CREATININE,
    IONISED_CALCIUM,
    TOTAL_CALCIUM,
    TOTAL_CALCIUM_MASS,
    LabView,
)
from alerts.rules import (
    AnswerView,
    Finding,
    History,
    LabMissing,
    LabRise,
    LabThreshold,
    Rule,
    Urgency,
    evaluate,
    evaluate_labs,
)
from alerts.ruleset import Ruleset, RulesetError, load_ruleset, load_rulesets
from pro_service.instruments import load_instruments
from tests.unit.test_rules import (
    KNOWN_ITEMS,
    RULES_DIR,
    TABLE,
    answered,
    base_data,
    checkin,
    complete_answers,
    histories,
    missing,
    only,
    rule,
    skipped,
    summary,
    unreadable,
    write,
)

SRE1 = load_ruleset(RULES_DIR / "sre-v1.yaml", KNOWN_ITEMS)
SRE2 = load_ruleset(RULES_DIR / "sre-v2.yaml", KNOWN_ITEMS)
URGENT, SAME_DAY, ROUTINE = Urgency.URGENT, Urgency.SAME_DAY, Urgency.ROUTINE

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
CALCIUM_ANY = (ADJUSTED_CALCIUM, TOTAL_CALCIUM_MASS, TOTAL_CALCIUM, IONISED_CALCIUM)
LAB_ONLY_RULES = {"hypercalcemia-lab-above-3", "hypercalcemia-lab-2.6-to-3", "alp-rising"}
CHECK_IN_LAB_RULES = {"hypercalcemia-confused-with-calcium-result", "hypercalcemia-check-calcium"}
REFERENCE = {ADJUSTED_CALCIUM: "2.20-2.60", ALKALINE_PHOSPHATASE: "30-130"}


def lab(
    value: float | None = 2.4,
    code: str = ADJUSTED_CALCIUM,
    *,
    days_ago: float = 1,
    status: str = "final",
    derived: bool = False,
    result_id: int | None = 1,
    unit: str | None = None,
    at: datetime | None = None,
) -> LabView:
    return LabView(
        code=code,
        value=value,
        unit=unit or CANONICAL_UNIT[code],
        taken_at=at or NOW - timedelta(days=days_ago),
        status=status,
        reference_range=REFERENCE.get(code),
        derived=derived,
        result_id=result_id,
    )


def on_result(*labs: LabView, ruleset: Ruleset = SRE2, now: datetime = NOW) -> list[Finding]:
    return evaluate_labs(labs, History(), ruleset, now=now)


def at_check_in(
    answers: dict[str, AnswerView],
    *labs: LabView,
    now: datetime | None = NOW,
    complete: bool = True,
    ruleset: Ruleset = SRE2,
) -> list[Finding]:
    return evaluate(answers, History(labs=labs, now=now), ruleset, complete=complete)


def rule_ids(finding: Finding) -> set[str]:
    return {finding.rule_id, *finding.other_rule_ids}


def lab_values(finding: Finding) -> list[dict[str, Any]]:
    return [e.value for e in finding.evidence if e.item_code is None and isinstance(e.value, dict)]


# --- calcium thresholds, when a result arrives ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(3.8, ("hypercalcemia-lab-above-3", URGENT), id="3.8"),
        pytest.param(3.01, ("hypercalcemia-lab-above-3", URGENT), id="3.01"),
        pytest.param(3.0, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="exactly-3.0"),
        # 12.02 mg/dL x 0.2495 and friends: conversion noise must not cross the threshold.
        pytest.param(3.0000000000000004, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="3.0-plus-noise"),
        pytest.param(2.9999999999999996, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="3.0-minus-noise"),
        pytest.param(2.8, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="2.8"),
        pytest.param(2.6, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="exactly-2.6"),
        pytest.param(2.5999999999999996, ("hypercalcemia-lab-2.6-to-3", SAME_DAY), id="2.6-minus-noise"),
        pytest.param(2.59, None, id="2.59"),
        pytest.param(2.4, None, id="normal"),
        pytest.param(1.9, None, id="low-not-covered"),
    ],
)
def test_adjusted_calcium_bands(value: float, expected: tuple[str, Urgency] | None) -> None:
    findings = on_result(lab(value))
    if expected is None:
        assert findings == []
        return
    finding = only(findings, "hypercalcemia")
    assert (finding.rule_id, finding.urgency) == expected
    assert finding.other_rule_ids == ()
    assert (finding.ruleset, finding.ruleset_version) == ("sre", 2)
    assert [v["value"] for v in lab_values(finding)] == [value]


def test_a_derived_adjusted_calcium_fires_and_says_it_was_derived() -> None:
    finding = only(on_result(lab(3.2, derived=True, result_id=7)), "hypercalcemia")
    assert finding.urgency == URGENT
    (value,) = lab_values(finding)
    assert (value["derived"], value["result_id"], value["code"]) == (True, 7, ADJUSTED_CALCIUM)


def test_for_one_sample_the_labs_adjusted_calcium_beats_the_derived_one() -> None:
    taken = NOW - timedelta(hours=3)
    lab_reported = lab(2.5, at=taken, result_id=1)
    derived = lab(3.2, at=taken, derived=True, result_id=2)
    assert on_result(derived, lab_reported) == []
    assert on_result(lab_reported, derived) == []


def test_total_calcium_alone_is_not_read_as_adjusted() -> None:
    # The service derives adjusted calcium when albumin is known; the rules never guess it.
    assert on_result(lab(3.4, TOTAL_CALCIUM), lab(3.4, TOTAL_CALCIUM_MASS), lab(1.6, IONISED_CALCIUM)) == []


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        pytest.param(
            [lab(3.3, days_ago=5), lab(2.4, days_ago=1, result_id=2)], None, id="treated-newer-normal"
        ),
        pytest.param([lab(2.4, days_ago=5), lab(3.3, days_ago=1, result_id=2)], URGENT, id="newer-high"),
        pytest.param(
            [lab(2.7, days_ago=5), lab(3.3, days_ago=9, result_id=2)], SAME_DAY, id="order-of-input"
        ),
    ],
)
def test_the_latest_result_in_the_window_is_read(labs: list[LabView], expected: Urgency | None) -> None:
    assert summary(on_result(*labs)).get("hypercalcemia") == expected


# --- unknown and withdrawn results never fire and never count as normal --------------------------

UNUSABLE = [
    pytest.param(lab(3.5, status="entered-in-error"), id="entered-in-error"),
    pytest.param(lab(None, status="final"), id="no-value"),
    pytest.param(lab(None, status="entered-in-error"), id="withdrawn-no-value"),
    pytest.param(lab(12.5, unit="mg/dL"), id="wrong-unit"),
    pytest.param(lab(math.nan), id="nan"),
    pytest.param(lab(math.inf), id="infinite"),
    pytest.param(lab(3.5, days_ago=14.01), id="outside-window"),
]


@pytest.mark.parametrize("result", UNUSABLE)
def test_an_unusable_result_never_fires(result: LabView) -> None:
    assert on_result(result) == []


def test_a_withdrawn_result_is_no_result_the_one_before_stands() -> None:
    earlier = lab(3.2, days_ago=4, result_id=1)
    withdrawn = lab(None, days_ago=1, status="entered-in-error", result_id=2)
    finding = only(on_result(earlier, withdrawn), "hypercalcemia")
    assert finding.urgency == URGENT
    assert [v["result_id"] for v in lab_values(finding)] == [1]


def test_an_amended_or_preliminary_result_is_read() -> None:
    assert summary(on_result(lab(3.2, status="amended"))) == {"hypercalcemia": URGENT}
    assert summary(on_result(lab(3.2, status="preliminary"))) == {"hypercalcemia": URGENT}


def test_the_window_includes_its_first_instant_and_results_timed_a_little_after_now() -> None:
    assert summary(on_result(lab(3.5, days_ago=14))) == {"hypercalcemia": URGENT}
    # A lab clock ahead of ours must never hide a result.
    assert summary(on_result(lab(3.5, at=NOW + timedelta(minutes=5)))) == {"hypercalcemia": URGENT}


@pytest.fixture(scope="module")
def negated(tmp_path_factory: pytest.TempPathFactory) -> Ruleset:
    """A test ruleset whose rule fires when calcium is known NOT to be above 3.0."""
    data = base_data()
    data["rules"][0] = rule(
        "reassured",
        urgency="routine",
        when={"not": {"lab": ADJUSTED_CALCIUM, "above": 3.0, "unit": "mmol/L", "within_days": 14}},
    )
    return load_ruleset(write(tmp_path_factory.mktemp("negated"), data), KNOWN_ITEMS)


@pytest.mark.parametrize("result", UNUSABLE)
def test_an_unusable_result_is_not_normal_either(negated: Ruleset, result: LabView) -> None:
    assert summary(on_result(lab(2.4), ruleset=negated)) == {"cat_a": ROUTINE}  # known normal
    assert on_result(result, ruleset=negated) == []
    assert on_result(ruleset=negated) == []  # no result at all


# --- lab_missing: calcium symptoms with no calcium result in 14 days -> "check calcium" ------------


@pytest.mark.parametrize("symptoms", [[4], [5], [1, 2], [3, 6], [1, 3]])
def test_thirst_confusion_or_two_symptoms_without_a_result_ask_for_calcium(symptoms: list[int]) -> None:
    finding = only(at_check_in(checkin(calcium_sx=symptoms)), "hypercalcemia")
    assert "hypercalcemia-check-calcium" in rule_ids(finding)
    if symptoms == [4]:
        assert (finding.rule_id, finding.urgency) == ("hypercalcemia-check-calcium", SAME_DAY)


@pytest.mark.parametrize("symptoms", [[], [1], [2], [3], [6]])
def test_one_non_specific_symptom_does_not_ask_for_calcium(symptoms: list[int]) -> None:
    """Tiredness alone is near universal in advanced cancer: asking for calcium on it would page weekly."""
    findings = at_check_in(checkin(calcium_sx=symptoms))
    assert all("hypercalcemia-check-calcium" not in rule_ids(f) for f in findings)


def test_check_calcium_evidence_is_the_answer_and_the_missing_result() -> None:
    last = lab(2.5, days_ago=40, result_id=3)
    finding = only(at_check_in(checkin(calcium_sx=[4]), last), "hypercalcemia")
    answer, fact = finding.evidence
    assert (answer.item_code, answer.value) == ("calcium_sx", [4])
    assert fact.item_code is None and fact.question is None and fact.raw_text is None
    assert fact.value == {
        "lab_missing": ["adjusted calcium", "calcium (total, mass)", "calcium (total)", "ionised calcium"],
        "codes": list(CALCIUM_ANY),
        "within_days": 14,
        "since": (NOW - timedelta(days=14)).isoformat(),
        "last_result": fact.value["last_result"],
    }
    assert fact.value["last_result"]["result_id"] == 3  # the last calcium, older than the window


@pytest.mark.parametrize(
    ("result", "asks"),
    [
        pytest.param(None, True, id="no-result"),
        pytest.param(lab(2.4, days_ago=13), False, id="13-days"),
        pytest.param(lab(2.4, days_ago=14), False, id="exactly-14-days"),
        pytest.param(lab(2.4, days_ago=14.01), True, id="just-over-14-days"),
        pytest.param(lab(2.4, TOTAL_CALCIUM, days_ago=2), False, id="total-calcium-counts"),
        pytest.param(lab(2.4, TOTAL_CALCIUM_MASS, days_ago=2), False, id="total-calcium-mass-counts"),
        pytest.param(lab(1.2, IONISED_CALCIUM, days_ago=2), False, id="ionised-counts"),
        pytest.param(lab(2.4, derived=True, days_ago=2), False, id="derived-counts"),
        pytest.param(lab(2.4, status="entered-in-error", days_ago=2), True, id="withdrawn-is-no-result"),
        pytest.param(lab(None, days_ago=2), True, id="no-value-is-no-result"),
        pytest.param(lab(9.6, unit="mg/dL", days_ago=2), True, id="wrong-unit-is-no-result"),
        pytest.param(lab(38, ALBUMIN, days_ago=2), True, id="albumin-is-not-calcium"),
        pytest.param(lab(90, ALKALINE_PHOSPHATASE, days_ago=2), True, id="alp-is-not-calcium"),
        pytest.param(lab(80, CREATININE, days_ago=2), True, id="creatinine-is-not-calcium"),
    ],
)
def test_lab_missing_window(result: LabView | None, asks: bool) -> None:
    findings = at_check_in(checkin(calcium_sx=[4]), *([result] if result else []))
    assert ("hypercalcemia" in summary(findings)) is asks


@pytest.mark.parametrize("unknown", [missing, unreadable, skipped])
def test_an_unknown_symptom_answer_does_not_ask_for_calcium(unknown: Callable[[str], AnswerView]) -> None:
    findings = at_check_in(checkin(calcium_sx=unknown("calcium_sx")))
    assert all("hypercalcemia-check-calcium" not in rule_ids(f) for f in findings)


def test_without_an_evaluation_time_a_missing_result_is_unknown() -> None:
    assert at_check_in(checkin(calcium_sx=[1]), now=None) == []


def test_several_symptoms_keep_the_v1_rule_first_and_add_check_calcium() -> None:
    finding = only(at_check_in(checkin(calcium_sx=[1, 6])), "hypercalcemia")
    assert (finding.rule_id, finding.urgency) == ("hypercalcemia-several-symptoms", SAME_DAY)
    assert finding.other_rule_ids == ("hypercalcemia-check-calcium",)


# --- new confusion with a calcium result ---------------------------------------------------------


@pytest.mark.parametrize("value", [2.3, 2.7, 3.4])
def test_confusion_with_any_calcium_result_is_urgent_and_shows_it(value: float) -> None:
    finding = only(at_check_in(checkin(calcium_sx=[5]), lab(value, days_ago=3, result_id=9)), "hypercalcemia")
    assert finding.urgency == URGENT
    assert finding.rule_id == "hypercalcemia-confused-or-drowsy"  # the v1 rule stays first
    assert finding.other_rule_ids == ("hypercalcemia-confused-with-calcium-result",)
    assert (finding.evidence[0].item_code, finding.evidence[0].value) == ("calcium_sx", [5])
    assert [(v["value"], v["result_id"]) for v in lab_values(finding)] == [(value, 9)]


def test_confusion_without_a_calcium_result_is_urgent_and_asks_for_calcium() -> None:
    finding = only(at_check_in(checkin(calcium_sx=[5])), "hypercalcemia")
    assert finding.urgency == URGENT
    assert rule_ids(finding) == {"hypercalcemia-confused-or-drowsy", "hypercalcemia-check-calcium"}


def test_confusion_with_a_result_alerts_while_the_check_in_is_in_progress() -> None:
    partial = {"calcium_sx": answered("calcium_sx", [5])}
    finding = only(at_check_in(partial, lab(2.7), complete=False), "hypercalcemia")
    assert finding.urgency == URGENT
    assert "hypercalcemia-confused-with-calcium-result" in rule_ids(finding)
    # Same-day rules wait for the complete check-in.
    assert at_check_in({"calcium_sx": answered("calcium_sx", [1])}, complete=False) == []


def test_calcium_result_without_confusion_fires_nothing_at_check_in() -> None:
    # Result-only rules ran when the result arrived; a check-in never raises them again.
    assert at_check_in(checkin(), lab(3.6, days_ago=2)) == []
    assert at_check_in(checkin(calcium_sx=[1]), lab(3.6, days_ago=2)) == []


# --- ALP rising ------------------------------------------------------------------------------------


def alp(value: float | None, days_ago: float, result_id: int, **fields: Any) -> LabView:
    return lab(value, ALKALINE_PHOSPHATASE, days_ago=days_ago, result_id=result_id, **fields)


@pytest.mark.parametrize(
    ("results", "fires"),
    [
        pytest.param([alp(100, 80, 1), alp(126, 0, 2)], True, id="26%"),
        pytest.param([alp(100, 80, 1), alp(125, 0, 2)], True, id="exactly-25%"),
        pytest.param([alp(100, 80, 1), alp(124, 0, 2)], False, id="24%"),
        pytest.param([alp(160, 1, 1)], False, id="one-result"),
        pytest.param([alp(100, 91, 1), alp(200, 0, 2)], False, id="baseline-older-than-90-days"),
        pytest.param([alp(150, 60, 1), alp(100, 30, 2), alp(130, 1, 3)], True, id="rise-from-the-lowest"),
        pytest.param([alp(100, 60, 1), alp(150, 30, 2), alp(110, 1, 3)], False, id="fell-back"),
        pytest.param(
            [alp(100, 60, 1), alp(200, 1, 2, status="entered-in-error")], False, id="rise-withdrawn"
        ),
        pytest.param([alp(None, 60, 1), alp(200, 1, 2)], False, id="baseline-without-value"),
        pytest.param([alp(0, 60, 1), alp(200, 1, 2)], False, id="zero-baseline"),
        pytest.param([alp(100, 60, 1), alp(200, 1, 2, unit="ukat/L")], False, id="wrong-unit"),
    ],
)
def test_alp_rise(results: list[LabView], fires: bool) -> None:
    findings = on_result(*results)
    assert (summary(findings).get("bone_marker_rise") == ROUTINE) is fires


def test_alp_rise_evidence_shows_the_lowest_earlier_and_the_latest_result() -> None:
    finding = only(on_result(alp(150, 60, 1), alp(100, 30, 2), alp(130, 1, 3)), "bone_marker_rise")
    assert finding.rule_id == "alp-rising"
    low, latest = lab_values(finding)
    assert (low["result_id"], low["value"], low["role"]) == (2, 100, "lowest_earlier")
    assert (latest["result_id"], latest["value"], latest["role"]) == (3, 130, "latest")
    assert latest["rise_fraction"] == 0.3


def test_alp_rise_does_not_run_with_a_check_in() -> None:
    assert at_check_in(checkin(), alp(100, 60, 1), alp(200, 1, 2)) == []


# --- evaluate_labs: what a result's alert carries ----------------------------------------------------


def test_evaluate_labs_evidence_has_value_unit_range_time_and_result_id() -> None:
    taken = datetime(2025, 3, 9, 8, 30, tzinfo=UTC)
    finding = only(on_result(lab(3.21, at=taken, result_id=42)), "hypercalcemia")
    (evidence,) = finding.evidence
    assert (evidence.item_code, evidence.question, evidence.raw_text) == (None, None, None)
    assert evidence.value == {
        "code": ADJUSTED_CALCIUM,
        "name": "adjusted calcium",
        "value": 3.21,
        "unit": "mmol/L",
        "reference_range": "2.20-2.60",
        "taken_at": "2025-03-09T08:30:00+00:00",
        "status": "final",
        "derived": False,
        "result_id": 42,
    }
    json.dumps(dataclasses.asdict(evidence))  # stored as JSON on the alert


def test_evaluate_labs_gives_one_finding_per_category_most_urgent_first() -> None:
    findings = on_result(lab(3.3, result_id=1), alp(100, 60, 2), alp(140, 1, 3))
    assert [(f.category, f.urgency) for f in findings] == [
        ("hypercalcemia", URGENT),
        ("bone_marker_rise", ROUTINE),
    ]


def test_evaluate_labs_ignores_the_historys_own_labs_and_time() -> None:
    stale = History(labs=(lab(3.9),), now=NOW - timedelta(days=365))
    assert evaluate_labs([lab(2.4)], stale, SRE2, now=NOW) == []
    assert summary(evaluate_labs([lab(3.9)], stale, SRE2, now=NOW)) == {"hypercalcemia": URGENT}


def test_evaluate_labs_under_v1_finds_nothing() -> None:
    assert on_result(lab(3.9), alp(100, 60, 2), alp(300, 1, 3), ruleset=SRE1) == []


def test_evaluate_labs_with_no_results_finds_nothing() -> None:
    assert on_result() == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: evaluate_labs([], History(), SRE2, now=datetime(2025, 3, 10)), id="naive-now"),
        pytest.param(
            lambda: evaluate_labs([lab(at=datetime(2025, 3, 9))], History(), SRE2, now=NOW), id="naive-result"
        ),
        pytest.param(lambda: evaluate_labs([], History(), SRE2, now=None), id="no-now"),  # type: ignore[arg-type]
        pytest.param(
            lambda: evaluate(checkin(), History(now=datetime(2025, 3, 10)), SRE2, complete=True),
            id="naive-now-at-check-in",
        ),
    ],
)
def test_times_must_be_timezone_aware(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


# --- sre v2 without labs is sre v1 ----------------------------------------------------------------


def as_v1(findings: list[Finding]) -> list[Finding]:
    return [dataclasses.replace(f, ruleset_version=1) for f in findings]


def test_v2_is_v1_plus_lab_rules() -> None:
    assert SRE2.rules[: len(SRE1.rules) - 1] == SRE1.rules[:-1]  # every v1 rule, in order
    assert SRE2.rules[-1] == SRE1.rules[-1]  # the free-text message rule, still last
    added = {r.id for r in SRE2.rules} - {r.id for r in SRE1.rules}
    assert added == LAB_ONLY_RULES | CHECK_IN_LAB_RULES
    assert SRE2.combinations == SRE1.combinations
    same = ("warning_phrases", "not_warning_words", "message_urgency", "message_warning_urgency")
    for name in (*same, "callback_urgency", "message_rationale", "callback_rationale", "instrument"):
        assert getattr(SRE2, name) == getattr(SRE1, name), name
    assert SRE2.categories == SRE1.categories | {"bone_marker_rise"}


@pytest.mark.parametrize(("overrides", "history", "expected"), TABLE)
def test_v1_table_gives_identical_findings_under_v2_without_lab_context(
    overrides: dict[str, Any], history: History | None, expected: dict[str, Urgency]
) -> None:
    answers = checkin(**overrides)
    v1 = evaluate(answers, history or History(), SRE1, complete=True)
    v2 = evaluate(answers, history or History(), SRE2, complete=True)
    assert summary(v1) == expected
    assert as_v1(v2) == v1
    assert as_v1(evaluate(answers, history or History(), SRE2, complete=False)) == evaluate(
        answers, history or History(), SRE1, complete=False
    )


LAB_CONTEXTS = [
    pytest.param((), id="no-results"),
    pytest.param((lab(2.4),), id="normal-calcium-yesterday"),
    pytest.param((lab(3.6), alp(100, 60, 2), alp(200, 1, 3)), id="high-calcium-and-alp-rise"),
    pytest.param((lab(2.4, days_ago=30),), id="old-calcium"),
]


@pytest.mark.parametrize("labs", LAB_CONTEXTS)
@pytest.mark.parametrize(("overrides", "history", "expected"), TABLE)
def test_v1_table_every_v1_rule_fires_identically_under_v2_with_lab_context(
    overrides: dict[str, Any],
    history: History | None,
    expected: dict[str, Urgency],
    labs: tuple[LabView, ...],
) -> None:
    """Every v1 finding is in v2 with the same urgency, the same primary rule and (outside hypercalcaemia)
    nothing else; v2 only adds its two check-in lab rules to the hypercalcaemia finding."""
    answers = checkin(**overrides)
    context = dataclasses.replace(history or History(), labs=labs, now=NOW)
    v1 = {f.category: f for f in evaluate(answers, history or History(), SRE1, complete=True)}
    v2 = {f.category: f for f in evaluate(answers, context, SRE2, complete=True)}
    assert set(v1) <= set(v2) <= {*v1, "hypercalcemia"}
    for category, finding in v1.items():
        assert (v2[category].urgency, v2[category].rule_id) == (finding.urgency, finding.rule_id)
        if category != "hypercalcemia":
            assert as_v1([v2[category]]) == [finding]
    for category, finding in v2.items():
        added = rule_ids(finding) - (rule_ids(v1[category]) if category in v1 else set())
        assert added <= CHECK_IN_LAB_RULES


@settings(max_examples=300, deadline=None)
@given(values=complete_answers, history=histories)
def test_property_v2_without_lab_context_is_v1(values: dict[str, Any], history: History) -> None:
    answers = {code: answered(code, value) for code, value in values.items()}
    for complete in (True, False):
        v1 = evaluate(answers, history, SRE1, complete=complete)
        assert as_v1(evaluate(answers, history, SRE2, complete=complete)) == v1


# --- properties of the lab conditions ---------------------------------------------------------------

calcium_results = st.builds(
    lambda value, hours, status, derived, rid: lab(
        value, at=NOW - timedelta(hours=hours), status=status, derived=derived, result_id=rid
    ),
    st.none() | st.floats(1.0, 5.0) | st.sampled_from([2.6, 3.0, math.nan]),
    st.integers(-2, 24 * 30),
    st.sampled_from(["final", "amended", "corrected", "preliminary", "entered-in-error"]),
    st.booleans(),
    st.none() | st.integers(1, 50),
)


@settings(max_examples=300, deadline=None)
@given(results=st.lists(calcium_results, max_size=6))
def test_property_calcium_urgency_follows_the_latest_usable_result(results: list[LabView]) -> None:
    findings = on_result(*results)
    usable = [
        r
        for r in results
        if r.status != "entered-in-error"
        and r.value is not None
        and math.isfinite(r.value)
        and r.taken_at >= NOW - timedelta(days=14)
    ]
    if not usable:
        assert findings == []
        return
    latest = max(usable, key=lambda r: (r.taken_at, not r.derived, r.result_id or -1))
    assert latest.value is not None
    expected = URGENT if latest.value > 3.0 else SAME_DAY if latest.value >= 2.6 else None
    assert summary(findings).get("hypercalcemia") == expected
    for finding in findings:
        assert [v["result_id"] for v in lab_values(finding)] == [latest.result_id]


# --- the shipped ruleset ---------------------------------------------------------------------------


def test_shipped_rulesets_load_together_each_against_its_own_questionnaire() -> None:
    installed = load_instruments(RULES_DIR.parent / "instruments").items_by_version()
    rulesets = load_rulesets(RULES_DIR, KNOWN_ITEMS, instrument_items=installed)
    assert rulesets[("sre", 1)] == SRE1
    assert rulesets[("sre", 2)] == SRE2
    assert (rulesets[("sre", 3)].instrument, rulesets[("sre", 3)].instrument_version) == ("sre-weekly", 2)
    assert (SRE1.instrument_version, SRE2.instrument_version) == (1, 1)


def test_shipped_v2_lab_rules() -> None:
    rules = {r.id: r for r in SRE2.rules if isinstance(r, Rule)}
    assert {i for i, r in rules.items() if r.lab_only} == LAB_ONLY_RULES
    check_in_rules = [r for r in rules.values() if not r.lab_only]
    assert {r.id for r in check_in_rules if r.early} == {r.id for r in check_in_rules if r.urgency == URGENT}
    assert rules["hypercalcemia-lab-above-3"].when == LabThreshold(
        (ADJUSTED_CALCIUM,), "above", 3.0, "mmol/L", 14
    )
    assert rules["hypercalcemia-lab-2.6-to-3"].when == LabThreshold(
        (ADJUSTED_CALCIUM,), "between", 2.6, "mmol/L", 14, upper=3.0
    )
    assert rules["alp-rising"].when == LabRise(ALKALINE_PHOSPHATASE, 0.25, 90)
    assert LabMissing(CALCIUM_ANY, 14) in rules["hypercalcemia-check-calcium"].when.conditions  # type: ignore[union-attr]
    assert SRE2.lab_codes == {*CALCIUM_ANY, ALKALINE_PHOSPHATASE}
    assert SRE2.lab_lookback_days == 90
    assert (SRE1.lab_codes, SRE1.lab_lookback_days) == (frozenset(), 0)


@pytest.mark.parametrize(
    ("rule_id", "cites"),
    [
        ("hypercalcemia-lab-above-3", "NICE CKS"),
        ("hypercalcemia-lab-above-3", "Society for Endocrinology"),
        ("hypercalcemia-lab-2.6-to-3", "NICE CKS"),
        ("hypercalcemia-lab-2.6-to-3", "UKONS"),
        ("hypercalcemia-confused-with-calcium-result", "NICE CKS"),
        ("hypercalcemia-check-calcium", "Scottish Palliative Care Guidelines"),
        ("alp-rising", "clinical lead to confirm"),
    ],
)
def test_shipped_lab_rationales_cite_their_source(rule_id: str, cites: str) -> None:
    assert cites in next(r for r in SRE2.rules if r.id == rule_id).rationale


# --- the loader's errors for lab conditions ----------------------------------------------------------


def lab_rule(when: dict[str, Any], **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["rules"][0].update(when=when, **fields)


CA = {"lab": ADJUSTED_CALCIUM, "above": 3.0, "unit": "mmol/L", "within_days": 14}

LAB_LOADER_ERRORS = [
    pytest.param(lab_rule({**CA, "lab": "12345-6"}), ["unknown LOINC code '12345-6'", "29265-6"], id="code"),
    pytest.param(lab_rule({**CA, "lab": 2000}), ["must be text", "quote it"], id="code-number"),
    pytest.param(lab_rule({**CA, "lab": []}), ["at least one LOINC code"], id="no-codes"),
    pytest.param(
        lab_rule({**CA, "lab": [ADJUSTED_CALCIUM, ADJUSTED_CALCIUM]}), ["lists a code twice"], id="dup-code"
    ),
    pytest.param(
        lab_rule({k: v for k, v in CA.items() if k != "unit"}), ["needs `unit: mmol/L`"], id="no-unit"
    ),
    pytest.param(
        lab_rule({**CA, "unit": "mg/dL"}), ["unit 'mg/dL'", "29265-6 (adjusted calcium)", "mmol/L"], id="unit"
    ),
    pytest.param(
        lab_rule({**CA, "lab": [ADJUSTED_CALCIUM, ALKALINE_PHOSPHATASE]}),
        ["compared in different units"],
        id="mixed-units",
    ),
    pytest.param(lab_rule({**CA, "below": 2.0}), ["exactly one of above"], id="two-operators"),
    pytest.param(
        lab_rule({k: v for k, v in CA.items() if k != "above"}), ["exactly one of above", "none"], id="no-op"
    ),
    pytest.param(lab_rule({**CA, "above": True}), ["above must be a number"], id="threshold-bool"),
    pytest.param(lab_rule({**CA, "above": "3.0"}), ["above must be a number"], id="threshold-text"),
    pytest.param(
        lab_rule({**{k: v for k, v in CA.items() if k != "above"}, "between": [3.0, 2.6]}),
        ["low must be below high"],
        id="between-reversed",
    ),
    pytest.param(
        lab_rule({**{k: v for k, v in CA.items() if k != "above"}, "between": 2.6}),
        ["between takes [low, high]"],
        id="between-shape",
    ),
    pytest.param(
        lab_rule({k: v for k, v in CA.items() if k != "within_days"}),
        ["needs `within_days:`"],
        id="no-window",
    ),
    pytest.param(lab_rule({**CA, "within_days": 0}), ["within_days", "1 or more"], id="window-zero"),
    pytest.param(lab_rule({**CA, "within_days": 1.5}), ["within_days", "whole number"], id="window-float"),
    pytest.param(lab_rule({**CA, "within_day": 14}), ["unknown key 'within_day'"], id="typo"),
    pytest.param(
        lab_rule({"lab_missing": [ADJUSTED_CALCIUM], "within_days": 14, "unit": "mmol/L"}),
        ["unknown key 'unit'"],
        id="missing-with-unit",
    ),
    pytest.param(
        lab_rule({"lab_rise": [ALKALINE_PHOSPHATASE], "by_fraction": 0.25, "within_days": 90}),
        ["takes one LOINC code"],
        id="rise-codes",
    ),
    pytest.param(
        lab_rule({"lab_rise": ALKALINE_PHOSPHATASE, "within_days": 90}),
        ["needs `by_fraction:`"],
        id="rise-no-by",
    ),
    pytest.param(
        lab_rule({"lab_rise": ALKALINE_PHOSPHATASE, "by_fraction": 25, "within_days": 90}),
        ["by_fraction", "0.25 is a rise of 25%"],
        id="rise-percent",
    ),
    pytest.param(
        lab_rule({"lab_rise": ALKALINE_PHOSPHATASE, "by_fraction": 0, "within_days": 90}),
        ["by_fraction must be above 0"],
        id="rise-zero",
    ),
    pytest.param(
        lab_rule({**CA, "lab_missing": [ADJUSTED_CALCIUM]}), ["one condition per mapping"], id="two-lab-kinds"
    ),
    pytest.param(lab_rule({**CA, "any": [CA]}), ["one condition per mapping"], id="lab-and-any"),
    pytest.param(lab_rule(CA, early=True), ["early: true has no effect"], id="early-lab-only"),
    pytest.param(
        lab_rule({"lab": {"code": ADJUSTED_CALCIUM, "above": 3.0}}),
        ["takes a LOINC code or a list of codes", "settings go beside it"],
        id="nested-shape",
    ),
    pytest.param(
        lab_rule({"labs": ADJUSTED_CALCIUM}), ["unknown operator 'labs'", "lab_missing:"], id="labs"
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), LAB_LOADER_ERRORS)
def test_lab_loader_errors_name_the_file_the_rule_and_the_problem(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    data = base_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(RulesetError) as error:
        load_ruleset(path, KNOWN_ITEMS)
    message = str(error.value)
    assert path.name in message
    assert "rule 'r1'" in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    "when",
    [
        CA,
        {**CA, "lab": [ADJUSTED_CALCIUM, TOTAL_CALCIUM]},
        {"lab": ALKALINE_PHOSPHATASE, "at_least": 500, "unit": "U/L", "within_days": 30},
        {"lab": ADJUSTED_CALCIUM, "below": 2.0, "unit": "mmol/L", "within_days": 7},
        {"lab": ADJUSTED_CALCIUM, "at_most": 2.0, "unit": "mmol/L", "within_days": 7},
        {"lab_missing": ADJUSTED_CALCIUM, "within_days": 30},
        {
            "all": [
                {"item": "neuro", "is": True},
                {"not": {"lab_missing": [ADJUSTED_CALCIUM], "within_days": 3}},
            ]
        },
    ],
)
def test_lab_conditions_the_loader_accepts(tmp_path: Path, when: dict[str, Any]) -> None:
    data = base_data()
    data["rules"][0]["when"] = when
    ruleset = load_ruleset(write(tmp_path, data), KNOWN_ITEMS)
    assert ruleset.rules[0].id == "r1"


def test_other_lab_operators() -> None:
    # below / at_most / at_least, read through a test ruleset's rules (evaluate_labs runs lab-only rules).
    data_rules = [
        Rule("low", "cat_low", ROUTINE, "x", LabThreshold((ADJUSTED_CALCIUM,), "below", 2.0, "mmol/L", 7)),
        Rule(
            "at-most",
            "cat_most",
            ROUTINE,
            "x",
            LabThreshold((ADJUSTED_CALCIUM,), "at_most", 2.0, "mmol/L", 7),
        ),
        Rule(
            "at-least",
            "cat_least",
            ROUTINE,
            "x",
            LabThreshold((ADJUSTED_CALCIUM,), "at_least", 2.0, "mmol/L", 7),
        ),
    ]
    ruleset = dataclasses.replace(SRE2, rules=tuple(data_rules))
    assert set(summary(on_result(lab(1.9), ruleset=ruleset))) == {"cat_low", "cat_most"}
    assert set(summary(on_result(lab(2.0), ruleset=ruleset))) == {"cat_most", "cat_least"}
    assert set(summary(on_result(lab(2.1), ruleset=ruleset))) == {"cat_least"}
