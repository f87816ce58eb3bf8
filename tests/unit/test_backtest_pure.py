"""The rules backtest's counting (alerts/backtest.py), checked on hand-made findings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from alerts.backtest import (
    Replayed,
    compare,
    fits,
    naming_result,
    not_comparable_reason,
    render_text,
    rule_changes,
)
from alerts.rules import Evidence, Finding, Urgency
from alerts.ruleset import Ruleset, load_rulesets

ROOT = Path(__file__).resolve().parents[2]
U, S, R = Urgency.URGENT, Urgency.SAME_DAY, Urgency.ROUTINE


def finding(
    category: str, urgency: Urgency, rule_id: str = "", *others: str, result: int | None = None
) -> Finding:
    evidence = (Evidence(None, None, None, {"result_id": result}),) if result is not None else ()
    return Finding(category, urgency, rule_id or f"{category}-rule", "why", "sre", 2, evidence, others)


def one(reference: list[Finding], candidate: list[Finding]) -> Replayed:
    return Replayed(reference=reference, candidate=candidate)


@pytest.mark.parametrize(
    ("reference", "candidate", "outcome"),
    [
        ([], [finding("pain", S)], "more"),
        ([finding("pain", S)], [], "fewer"),
        ([finding("pain", S)], [finding("pain", U)], "higher"),
        ([finding("pain", S)], [finding("pain", R)], "lower"),
        ([finding("pain", S)], [finding("pain", S)], "same"),
    ],
)
def test_each_difference_is_counted_once_in_its_column(
    reference: list[Finding], candidate: list[Finding], outcome: str
) -> None:
    summary = compare([one(reference, candidate)])
    (row,) = summary.categories
    columns = {name: getattr(row, name) for name in ("more", "fewer", "higher", "lower", "same")}
    assert columns == {name: int(name == outcome) for name in columns}
    assert (row.reference, row.candidate) == (len(reference), len(candidate))
    assert summary.changed == int(outcome != "same")
    assert summary.total.more + summary.total.fewer + summary.total.higher + summary.total.lower == int(
        outcome != "same"
    )


def test_categories_are_compared_within_one_replay_not_across_replays() -> None:
    # Reference raises pain in replay 1, the candidate in replay 2: one fewer and one more, not "same".
    summary = compare([one([finding("pain", S)], []), one([], [finding("pain", S)])])
    (row,) = summary.categories
    assert (row.reference, row.candidate, row.more, row.fewer, row.same) == (1, 1, 1, 1, 0)
    assert summary.replayed == 2 and summary.changed == 2


def test_urgency_counts_per_side_and_totals_add_up() -> None:
    summary = compare(
        [
            one([finding("scc", U), finding("pain", R)], [finding("scc", U), finding("pain", S)]),
            one([finding("calcium", S)], [finding("calcium", U), finding("pain", R)]),
            one([], []),
        ]
    )
    rows = {r.category: r for r in summary.categories}
    assert rows["pain"].reference_by_urgency == {"urgent": 0, "same_day": 0, "routine": 1}
    assert rows["pain"].candidate_by_urgency == {"urgent": 0, "same_day": 1, "routine": 1}
    assert (rows["pain"].higher, rows["pain"].more) == (1, 1)
    assert rows["scc"].same == 1 and rows["calcium"].higher == 1
    assert summary.total.reference_by_urgency == {"urgent": 1, "same_day": 1, "routine": 1}
    assert summary.total.candidate_by_urgency == {"urgent": 2, "same_day": 1, "routine": 1}
    assert (summary.total.reference, summary.total.candidate) == (3, 4)
    assert (summary.replayed, summary.changed) == (3, 2)


def test_two_findings_of_one_category_count_once_at_the_higher_urgency() -> None:
    summary = compare([one([finding("pain", R), finding("pain", S)], [finding("pain", S)])])
    (row,) = summary.categories
    assert (row.reference, row.same, row.higher) == (1, 1, 0)


def test_rules_count_the_deciding_rule_and_those_beside_it() -> None:
    # A tie: two rules fired into one finding; the candidate adds a combination policy and drops one rule.
    reference = [finding("pain", S, "severe-pain", "new-pain")]
    candidate = [finding("pain", U, "severe-pain", "two-ambers")]
    summary = compare([one(reference, candidate)])
    rules = {r.rule_id: (r.reference, r.candidate, r.more, r.fewer) for r in summary.rules}
    assert rules == {
        "severe-pain": (1, 1, 0, 0),
        "new-pain": (1, 0, 0, 1),
        "two-ambers": (0, 1, 1, 0),
    }


def test_not_comparable_is_reported_and_zero_rows_are_listed() -> None:
    summary = compare(
        [],
        not_comparable={"asked v2": 3, "asked other": 1},
        categories=["pain", "scc"],
        rule_changes={"new-rule": "new"},
    )
    assert summary.replayed == 0 and summary.not_comparable_total == 4
    assert list(summary.not_comparable) == ["asked other", "asked v2"]
    assert [(r.category, r.reference, r.candidate) for r in summary.categories] == [
        ("pain", 0, 0),
        ("scc", 0, 0),
    ]
    assert [(r.rule_id, r.candidate, r.change) for r in summary.rules] == [("new-rule", 0, "new")]
    text = render_text(summary, [("window", "90 days")])
    assert "window: 90 days" in text and "not comparable: 4" in text and "     3  asked v2" in text


def test_a_lab_arrival_counts_only_findings_about_that_result() -> None:
    about_new = finding("hypercalcemia", U, result=7)
    about_old = finding("bone_marker_rise", R, result=3)
    missing = finding("hypercalcemia_check", S)  # a missing result names none
    assert naming_result([about_new, about_old, missing], 7) == [about_new, missing]


def test_rule_changes_name_what_changed_in_each_rule() -> None:
    rulesets = _installed()
    v1, v2 = rulesets[("sre", 1)], rulesets[("sre", 2)]
    severe = next(r for r in v2.rules if r.id == "severe-pain")
    changed = replace(
        v2,
        rules=tuple(
            replace(r, urgency=U, rationale="reworded") if r.id == "severe-pain" else r
            for r in v2.rules
            if r.id != "worsening-pain"
        ),
        combinations=tuple(replace(c, enabled=True) for c in v2.combinations),
    )
    notes = rule_changes([v2], changed)
    assert notes["severe-pain"] == f"urgency {severe.urgency.value} → urgent"
    assert notes["worsening-pain"] == "removed"
    assert notes["two-ambers-make-a-red"] == "enabled"
    assert notes["scc-neuro-or-bladder"] == ""
    against_both = rule_changes([v1, v2], v2)
    assert against_both["alp-rising"] == "new vs sre-v1"
    assert against_both["scc-neuro-or-bladder"] == ""


def test_a_ruleset_fits_only_the_questionnaire_version_it_is_written_for() -> None:
    v2 = _installed()[("sre", 2)]
    assert fits(v2, "sre-weekly", 1)
    assert not fits(v2, "sre-weekly", 2)
    assert not fits(v2, "other", 1)
    assert not_comparable_reason(v2, "sre-weekly", 2, "candidate") == (
        "asked sre-weekly v2; the candidate sre-v2 is written for sre-weekly v1"
    )


def _installed() -> dict[tuple[str, int], Ruleset]:
    from pro_service.instruments import load_instruments

    instruments = load_instruments(ROOT / "config" / "instruments")
    return load_rulesets(
        ROOT / "config" / "rules", instruments.item_kinds(), instrument_items=instruments.items_by_version()
    )
