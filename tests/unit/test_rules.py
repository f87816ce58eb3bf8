"""Clinical red-flag rules: the shipped sre v1 ruleset, the engine's unknown-answer semantics, messages,
and the ruleset loader's errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.rules import (
    AnswerView,
    Finding,
    History,
    Urgency,
    callback_request,
    evaluate,
    evaluate_message,
)
from alerts.ruleset import Ruleset, RulesetError, load_ruleset, load_rulesets
from pro_service.instruments import load_instruments

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "config" / "rules"
SHIPPED = RULES_DIR / "sre-v1.yaml"

KNOWN_ITEMS = {
    "pain_new": "yes_no",
    "pain_worst": "integer",
    "pain_site": "multi_choice",
    "pain_at_rest": "yes_no",
    "sudden_immobile": "yes_no",
    "neuro": "yes_no",
    "bladder_bowel": "yes_no",
    "calcium_sx": "multi_choice",
    "anything_else": "free_text",
}
QUESTIONS = {code: f"Question about {code}? Reply YES or NO" for code in KNOWN_ITEMS}

# Loaded once at import: hypothesis tests must not use function-scoped fixtures.
SRE = load_ruleset(SHIPPED, KNOWN_ITEMS)

URGENT, SAME_DAY, ROUTINE = Urgency.URGENT, Urgency.SAME_DAY, Urgency.ROUTINE


# --- building answers ---------------------------------------------------------------------------


def _raw(value: object) -> str | None:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return " ".join(map(str, value)) or "0"
    return "NO" if value is None else str(value)


def answered(code: str, value: Any, raw: str | None = None) -> AnswerView:
    return AnswerView(code, "answered", value, raw if raw is not None else _raw(value), QUESTIONS[code])


def unreadable(code: str, raw: str = "hmm not sure") -> AnswerView:
    return AnswerView(code, "unreadable", None, raw, QUESTIONS[code])


def missing(code: str) -> AnswerView:
    return AnswerView(code, "missing", None, None, QUESTIONS[code])


def skipped(code: str) -> AnswerView:
    return AnswerView(code, "skipped", None, None, QUESTIONS[code])


def checkin(base: Mapping[str, Any] | None = None, /, **overrides: Any) -> dict[str, AnswerView]:
    """A complete check-in where nothing is wrong (all "no", pain 0, pain follow-ups skipped by the
    instrument's skip logic), with base then overrides applied: a plain value means answered, an
    AnswerView is used as is."""
    answers = {
        "pain_new": answered("pain_new", False),
        "pain_worst": answered("pain_worst", 0),
        "pain_site": skipped("pain_site"),
        "pain_at_rest": skipped("pain_at_rest"),
        "sudden_immobile": skipped("sudden_immobile"),
        "neuro": answered("neuro", False),
        "bladder_bowel": answered("bladder_bowel", False),
        "calcium_sx": answered("calcium_sx", []),
        "anything_else": answered("anything_else", None),
    }
    for code, value in {**(base or {}), **overrides}.items():
        answers[code] = value if isinstance(value, AnswerView) else answered(code, value)
    return answers


# Some pain (3/10 in the hip, not at rest, not sudden): the pain follow-ups are answered, nothing fires.
PAIN = {"pain_worst": 3, "pain_site": [3], "pain_at_rest": False, "sudden_immobile": False}


def run(
    answers: dict[str, AnswerView],
    history: History | None = None,
    *,
    complete: bool = True,
    ruleset: Ruleset = SRE,
) -> list[Finding]:
    return evaluate(answers, history or History(), ruleset, complete=complete)


def summary(findings: list[Finding]) -> dict[str, Urgency]:
    return {f.category: f.urgency for f in findings}


def only(findings: list[Finding], category: str) -> Finding:
    matching = [f for f in findings if f.category == category]
    assert len(matching) == 1, findings
    return matching[0]


# --- every row of the sre v1 table --------------------------------------------------------------

TABLE = [
    pytest.param({"neuro": True}, None, {"spinal_cord_compression": URGENT}, id="scc-neuro"),
    pytest.param({"bladder_bowel": True}, None, {"spinal_cord_compression": URGENT}, id="scc-bladder-bowel"),
    pytest.param({**PAIN, "sudden_immobile": True}, None, {"pathologic_fracture": URGENT}, id="fracture"),
    pytest.param({"calcium_sx": [5]}, None, {"hypercalcemia": URGENT}, id="hypercalcemia-confused"),
    pytest.param({"calcium_sx": [1, 6]}, None, {"hypercalcemia": SAME_DAY}, id="hypercalcemia-two-symptoms"),
    pytest.param(
        {**PAIN, "pain_site": [1], "pain_new": True},
        None,
        {"spinal_metastasis_pain": SAME_DAY, "new_bone_pain": ROUTINE},
        id="spinal-pain-new",
    ),
    pytest.param(
        {**PAIN, "pain_site": [1, 3], "pain_at_rest": True},
        None,
        {"spinal_metastasis_pain": SAME_DAY},
        id="spinal-pain-at-rest",
    ),
    pytest.param(
        {**PAIN, "pain_site": [1], "pain_worst": 7},
        None,
        {"spinal_metastasis_pain": SAME_DAY, "severe_pain": SAME_DAY},
        id="spinal-pain-severe",
    ),
    pytest.param(
        {**PAIN, "pain_new": True, "pain_at_rest": True},
        None,
        {"new_bone_pain": SAME_DAY},
        id="new-pain-at-rest",
    ),
    pytest.param({**PAIN, "pain_worst": 7}, None, {"severe_pain": SAME_DAY}, id="severe-pain"),
    pytest.param({**PAIN, "pain_new": True}, None, {"new_bone_pain": ROUTINE}, id="new-pain"),
    pytest.param(
        {**PAIN, "pain_worst": 5}, History(previous_pain_worst=3), {"worsening_pain": ROUTINE}, id="worsening"
    ),
    pytest.param(
        {code: missing(code) for code in KNOWN_ITEMS},
        History(consecutive_expired_unanswered=2),
        {"non_response": ROUTINE},
        id="non-response",
    ),
    pytest.param(
        {"anything_else": "My daughter visited"}, None, {"patient_message": ROUTINE}, id="message-neutral"
    ),
    pytest.param(
        {"anything_else": "I can't walk far"}, None, {"patient_message": SAME_DAY}, id="message-warning"
    ),
    pytest.param(
        {"neuro": unreadable("neuro", "dunno")}, None, {"patient_message": ROUTINE}, id="message-unreadable"
    ),
]


@pytest.mark.parametrize(("overrides", "history", "expected"), TABLE)
def test_sre_v1_table(
    overrides: dict[str, Any], history: History | None, expected: dict[str, Urgency]
) -> None:
    assert summary(run(checkin(**overrides), history)) == expected


def test_callback_request_is_same_day() -> None:
    finding = callback_request(SRE, "NURSE")
    assert (finding.category, finding.urgency) == ("callback_request", SAME_DAY)
    assert finding.rationale.startswith(SRE.callback_rationale)
    assert (finding.ruleset, finding.ruleset_version) == ("sre", 1)
    assert finding.evidence[0].raw_text == "NURSE"


def test_callback_urgency_comes_from_the_ruleset() -> None:
    ruleset = dataclasses.replace(SRE, callback_urgency=URGENT)
    assert callback_request(ruleset, "CALL").urgency == URGENT


# --- between the rows ---------------------------------------------------------------------------


def test_nothing_wrong_gives_no_finding() -> None:
    assert run(checkin()) == []
    assert run(checkin(PAIN), History(previous_pain_worst=3, consecutive_expired_unanswered=0)) == []


def test_two_rules_of_one_category_give_one_finding_with_merged_evidence() -> None:
    findings = run(checkin(PAIN, pain_new=True, pain_at_rest=True))
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.category, finding.urgency) == ("new_bone_pain", SAME_DAY)
    assert finding.rule_id == "new-bone-pain-at-rest"
    assert finding.other_rule_ids == ("new-bone-pain",)
    # pain_new is evidence of both rules: kept once, in question order.
    assert [e.item_code for e in finding.evidence] == ["pain_new", "pain_at_rest"]


def test_neuro_and_bladder_give_one_urgent_finding_with_both_answers() -> None:
    findings = run(checkin(neuro=True, bladder_bowel=True))
    assert summary(findings) == {"spinal_cord_compression": URGENT}
    assert [e.item_code for e in findings[0].evidence] == ["neuro", "bladder_bowel"]


def test_evidence_lists_only_the_answers_that_fired() -> None:
    finding = only(run(checkin(neuro=True)), "spinal_cord_compression")
    assert [e.item_code for e in finding.evidence] == ["neuro"]


@pytest.mark.parametrize(("pain", "fires"), [(6, False), (7, True), (10, True)])
def test_severe_pain_threshold(pain: int, fires: bool) -> None:
    assert ("severe_pain" in summary(run(checkin(**{**PAIN, "pain_worst": pain})))) is fires


@pytest.mark.parametrize(
    ("previous", "now", "fires"),
    [(3, 5, True), (3, 4, False), (0, 10, True), (6, 3, False), (5, 5, False), (None, 9, False)],
)
def test_worsening_pain(previous: int | None, now: int, fires: bool) -> None:
    findings = run(checkin(**{**PAIN, "pain_worst": now}), History(previous_pain_worst=previous))
    assert ("worsening_pain" in summary(findings)) is fires


def test_worsening_pain_evidence_shows_both_scores() -> None:
    finding = only(
        run(checkin(**{**PAIN, "pain_worst": 5}), History(previous_pain_worst=3)), "worsening_pain"
    )
    assert [(e.item_code, e.value) for e in finding.evidence] == [
        ("pain_worst", 5),
        (None, {"previous_pain_worst": 3}),
    ]


def test_worsening_pain_cannot_fire_on_a_missing_score() -> None:
    findings = run(checkin(pain_worst=missing("pain_worst")), History(previous_pain_worst=0))
    assert "worsening_pain" not in summary(findings)


def test_one_expired_check_in_is_not_yet_non_response() -> None:
    findings = run({c: missing(c) for c in KNOWN_ITEMS}, History(consecutive_expired_unanswered=1))
    assert findings == []


def test_non_response_evidence_is_the_history() -> None:
    finding = only(run({}, History(consecutive_expired_unanswered=3)), "non_response")
    assert [(e.item_code, e.value) for e in finding.evidence] == [
        (None, {"consecutive_expired_unanswered": 3})
    ]


# --- unknown is never "no", and never fires -----------------------------------------------------

UNKNOWN_KINDS = {"missing": missing, "unreadable": unreadable, "skipped": skipped}
RED_FLAG_ITEMS = [
    ("neuro", "spinal_cord_compression"),
    ("bladder_bowel", "spinal_cord_compression"),
    ("sudden_immobile", "pathologic_fracture"),
    ("calcium_sx", "hypercalcemia"),
]


@pytest.mark.parametrize("status", list(UNKNOWN_KINDS))
@pytest.mark.parametrize(("item", "category"), RED_FLAG_ITEMS)
def test_unknown_answers_never_fire(status: str, item: str, category: str) -> None:
    answers = checkin(PAIN, **{item: UNKNOWN_KINDS[status](item)})
    findings = run(answers)
    assert category not in summary(findings)
    if status == "unreadable":
        message = only(findings, "patient_message")
        assert message.urgency == ROUTINE
        assert [(e.item_code, e.raw_text, e.question) for e in message.evidence] == [
            (item, "hmm not sure", QUESTIONS[item])
        ]
        assert item in message.rationale
    else:
        assert findings == []


@pytest.mark.parametrize("status", list(UNKNOWN_KINDS))
def test_unknown_is_not_no_for_a_negated_rule(tmp_path: Path, status: str) -> None:
    data = base_data()
    data["rules"][0] = rule("reassured", when={"not": {"item": "neuro", "is": True}}, urgency="routine")
    ruleset = load_ruleset(write(tmp_path, data), KNOWN_ITEMS)
    assert "cat_a" in summary(run(checkin(neuro=False), ruleset=ruleset))
    findings = run(checkin(neuro=UNKNOWN_KINDS[status]("neuro")), ruleset=ruleset)
    assert "cat_a" not in summary(findings)


def test_any_fires_on_one_yes_even_when_the_other_answer_is_unknown() -> None:
    findings = run(checkin(neuro=True, bladder_bowel=missing("bladder_bowel")))
    assert summary(findings) == {"spinal_cord_compression": URGENT}


@pytest.mark.parametrize("status", list(UNKNOWN_KINDS))
def test_all_needs_every_part_known(status: str) -> None:
    # Back pain, but whether it is new, at rest or severe is unknown: spinal rule cannot fire.
    unknown = UNKNOWN_KINDS[status]
    answers = checkin(
        pain_site=[1],
        pain_new=unknown("pain_new"),
        pain_at_rest=unknown("pain_at_rest"),
        pain_worst=unknown("pain_worst"),
    )
    assert "spinal_metastasis_pain" not in summary(run(answers))


def test_spinal_rule_needs_the_site_known() -> None:
    findings = run(checkin(PAIN, pain_new=True, pain_site=missing("pain_site")))
    assert summary(findings) == {"new_bone_pain": ROUTINE}


def test_unreadable_symptom_list_is_read_by_a_nurse_not_counted() -> None:
    assert summary(run(checkin(calcium_sx=unreadable("calcium_sx", "1,2?")))) == {"patient_message": ROUTINE}


@pytest.mark.parametrize("bad", ["yes", 1, [1], {"a": 1}])
def test_malformed_answered_values_are_unknown_not_errors(bad: Any) -> None:
    # bool is an int in Python: True must not read as pain score 1, nor 1 as yes.
    findings = run(checkin(neuro=AnswerView("neuro", "answered", bad, "?", QUESTIONS["neuro"])))
    assert "spinal_cord_compression" not in summary(findings)


def test_true_is_not_a_pain_score() -> None:
    answers = checkin(**{**PAIN, "pain_worst": True})
    assert run(answers, History(previous_pain_worst=0)) == []


def test_several_unreadable_answers_and_free_text_make_one_message_finding() -> None:
    answers = checkin(
        neuro=unreadable("neuro", "my legs are numb"),
        calcium_sx=unreadable("calcium_sx", "tired"),
        anything_else="see you soon",
    )
    finding = only(run(answers), "patient_message")
    assert finding.urgency == SAME_DAY  # the neuro reply has a warning phrase
    assert [e.item_code for e in finding.evidence] == ["neuro", "calcium_sx", "anything_else"]
    assert '"numb" (en)' in finding.rationale
    assert finding.evidence[2].value == "see you soon"


def test_blank_anything_else_is_not_a_message() -> None:
    assert run(checkin(anything_else="   ")) == []


# --- in progress: early (urgent) rules only -----------------------------------------------------


def test_in_progress_evaluates_only_early_urgent_rules() -> None:
    answers = checkin(
        **{**PAIN, "pain_worst": 9, "pain_site": [1], "pain_new": True, "pain_at_rest": True},
        neuro=True,
        calcium_sx=[1, 2, 5],
        anything_else="I fell",
    )
    in_progress = run(answers, History(previous_pain_worst=0), complete=False)
    assert summary(in_progress) == {"spinal_cord_compression": URGENT, "hypercalcemia": URGENT}
    complete = run(answers, History(previous_pain_worst=0), complete=True)
    assert set(summary(complete)) > set(summary(in_progress))


def test_urgent_rule_fires_as_soon_as_its_answer_arrives() -> None:
    partial = {"pain_new": answered("pain_new", False), "neuro": answered("neuro", True)}
    assert summary(run(partial, complete=False)) == {"spinal_cord_compression": URGENT}
    assert run({"pain_worst": answered("pain_worst", 9)}, complete=False) == []


def test_shipped_early_rules_are_exactly_the_urgent_ones() -> None:
    early = {r.id for r in SRE.rules if r.early}
    urgent = {r.id for r in SRE.rules if getattr(r, "urgency", None) == URGENT}
    assert (
        early
        == urgent
        == {"scc-neuro-or-bladder", "fracture-sudden-immobility", "hypercalcemia-confused-or-drowsy"}
    )


# --- combination policy -------------------------------------------------------------------------

TWO_AMBERS = {**PAIN, "pain_worst": 8, "calcium_sx": [1, 2]}


def test_two_ambers_policy_is_off_by_default() -> None:
    assert summary(run(checkin(**TWO_AMBERS))) == {"hypercalcemia": SAME_DAY, "severe_pain": SAME_DAY}


def with_policy_enabled() -> Ruleset:
    combos = tuple(dataclasses.replace(c, enabled=True) for c in SRE.combinations)
    return dataclasses.replace(SRE, combinations=combos)


def test_two_ambers_make_a_red_when_enabled() -> None:
    findings = run(checkin(**TWO_AMBERS), ruleset=with_policy_enabled())
    assert summary(findings) == {"hypercalcemia": URGENT, "severe_pain": URGENT}
    for finding in findings:
        assert "two-ambers-make-a-red" in finding.rationale
        assert finding.other_rule_ids[-1] == "two-ambers-make-a-red"
        assert finding.rule_id != "two-ambers-make-a-red"  # the rule that found it stays on record


def test_one_amber_stays_amber_with_the_policy_enabled() -> None:
    findings = run(checkin(**{**PAIN, "pain_worst": 8}, pain_new=True), ruleset=with_policy_enabled())
    assert summary(findings) == {"severe_pain": SAME_DAY, "new_bone_pain": ROUTINE}


def test_combination_policy_waits_for_the_complete_check_in(tmp_path: Path) -> None:
    data = base_data()
    data["rules"][0] = rule("a", category="cat_a", urgency="same_day", early=True)
    data["rules"].append(rule("b", category="cat_b", urgency="same_day", early=True))
    data["combinations"] = [combination(enabled=True)]
    ruleset = load_ruleset(write(tmp_path, data), KNOWN_ITEMS)
    answers = checkin(neuro=True)
    assert set(summary(run(answers, complete=False, ruleset=ruleset)).values()) == {SAME_DAY}
    assert set(summary(run(answers, complete=True, ruleset=ruleset)).values()) == {URGENT}


# --- findings carry what a nurse needs ----------------------------------------------------------


def test_every_urgent_finding_carries_item_question_raw_text_and_value() -> None:
    answers = checkin(
        **{**PAIN, "sudden_immobile": True},
        neuro=answered("neuro", True, "Yes!"),
        bladder_bowel=answered("bladder_bowel", True, "si"),
        calcium_sx=answered("calcium_sx", [2, 5], "2 and 5"),
    )
    findings = run(answers, complete=False)
    assert [f.category for f in findings] == [
        "hypercalcemia",
        "pathologic_fracture",
        "spinal_cord_compression",
    ]
    for finding in findings:
        assert finding.urgency == URGENT
        assert (finding.ruleset, finding.ruleset_version) == ("sre", 1)
        assert finding.rationale
        assert finding.evidence
        for evidence in finding.evidence:
            view = answers[evidence.item_code or ""]
            assert evidence.question == view.question == QUESTIONS[view.item_code]
            assert evidence.raw_text == view.raw_text
            assert evidence.value == view.value


def test_findings_are_sorted_most_urgent_first_then_category() -> None:
    answers = checkin(
        **{**PAIN, "pain_worst": 8, "pain_new": True}, neuro=True, calcium_sx=[1, 2], anything_else="hi"
    )
    findings = run(answers, History(previous_pain_worst=2))
    assert [(f.urgency, f.category) for f in findings] == [
        (URGENT, "spinal_cord_compression"),
        (SAME_DAY, "hypercalcemia"),
        (SAME_DAY, "severe_pain"),
        (ROUTINE, "new_bone_pain"),
        (ROUTINE, "patient_message"),
        (ROUTINE, "worsening_pain"),
    ]


def test_urgency_rank_and_max() -> None:
    assert URGENT.rank > SAME_DAY.rank > ROUTINE.rank
    assert Urgency.max(ROUTINE, URGENT, SAME_DAY) == URGENT
    assert Urgency.max(ROUTINE) == ROUTINE
    assert Urgency("same_day") is SAME_DAY


# --- free-text messages and warning phrases -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("I cant walk", "can't walk"),
        ("I can't walk", "can't walk"),
        ("I can’t walk", "can't walk"),  # curly apostrophe
        ("I CAN´T WALK", "can't walk"),  # acute accent typed as an apostrophe
        ("i cannot walk today", "can't walk"),
        ("I can not walk", "can't walk"),
        ("I can t walk", "can't walk"),
        ("Me caí en la cocina", "me caí"),
        ("me cai ayer", "me caí"),
        ("ME CAIGO mucho", "me caí"),
        ("No puedo caminar!!", "no puedo caminar"),
        ("tengo las piernas entumecidas", "entumecid"),
        ("Estoy muy confundida", "confundid"),
        ("numbness in my feet", "numb"),
        ("My legs are numb.", "numb"),
        ("I had a fall", "fall"),
        ("Sharp chest pain since last night", "chest pain"),
        ("piernas debiles", "piernas débiles"),
    ],
)
def test_warning_phrases_make_a_message_same_day(text: str, phrase: str) -> None:
    finding = evaluate_message(text, SRE, source="message")
    assert (finding.category, finding.urgency) == ("patient_message", SAME_DAY)
    assert f'"{phrase}"' in finding.rationale
    assert finding.evidence[0].raw_text == text


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, feeling fine this week",
        "Gracias, todo bien",
        "My blood test numbers were good",  # "numb" must not match "numbers"
        "Met a fellow patient at clinic",  # "fell" must not match "fellow"
        "I can walk to the shops now",
        "",
    ],
)
def test_neutral_messages_are_routine(text: str) -> None:
    finding = evaluate_message(text, SRE, source="message")
    assert finding.urgency == ROUTINE
    assert "No warning phrase" in finding.rationale


def test_known_over_trigger_is_accepted() -> None:
    # Prefix matching with no grammar: "fell" also matches hair loss. Accepted (a nurse reads every
    # message anyway; missing a fall is worse) and listed for clinical review.
    assert evaluate_message("my hair fell out", SRE, source="message").urgency == SAME_DAY
    # No negation either: "no numbness" still matches.
    assert evaluate_message("no numbness", SRE, source="message").urgency == SAME_DAY


@pytest.mark.parametrize("source", ["message", "anything_else", "unreadable"])
def test_message_sources(source: str) -> None:
    finding = evaluate_message("Feeling ok", SRE, source=source)
    assert source in finding.rationale
    assert finding.evidence[0].item_code == ("anything_else" if source == "anything_else" else None)


def test_unknown_message_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="source"):
        evaluate_message("hi", SRE, source="sms")


def test_message_urgencies_come_from_the_ruleset() -> None:
    ruleset = dataclasses.replace(SRE, message_urgency=SAME_DAY, message_warning_urgency=URGENT)
    assert evaluate_message("hello", ruleset, source="message").urgency == SAME_DAY
    assert evaluate_message("I fell", ruleset, source="message").urgency == URGENT


def test_callback_with_a_warning_phrase_names_it() -> None:
    finding = callback_request(SRE, "NURSE I cant feel my legs")
    assert finding.urgency == SAME_DAY
    assert "can't feel" in finding.rationale


# --- the shipped ruleset ------------------------------------------------------------------------


def test_shipped_ruleset_loads() -> None:
    assert (SRE.name, SRE.version, SRE.instrument) == ("sre", 1, "sre-weekly")
    # Other rulesets may be added beside it; sre v1 itself must never change.
    installed = load_instruments(RULES_DIR.parent / "instruments").items_by_version()
    assert load_rulesets(RULES_DIR, KNOWN_ITEMS, instrument_items=installed)[("sre", 1)] == SRE
    assert SRE.categories == {
        "spinal_cord_compression",
        "pathologic_fracture",
        "hypercalcemia",
        "spinal_metastasis_pain",
        "new_bone_pain",
        "severe_pain",
        "worsening_pain",
        "non_response",
        "patient_message",
    }
    assert all(r.rationale.strip() for r in SRE.rules)
    assert [(c.id, c.enabled) for c in SRE.combinations] == [("two-ambers-make-a-red", False)]
    assert (SRE.message_urgency, SRE.message_warning_urgency, SRE.callback_urgency) == (
        ROUTINE,
        SAME_DAY,
        SAME_DAY,
    )
    assert set(SRE.warning_phrases) == {"en", "es"}


@pytest.mark.parametrize(
    ("rule_id", "cites"), [("scc-neuro-or-bladder", "NICE"), ("spinal-pain-red-flags", "24 hours")]
)
def test_shipped_rationales_cite_their_source(rule_id: str, cites: str) -> None:
    assert cites in next(r for r in SRE.rules if r.id == rule_id).rationale


def test_alerts_imports_no_framework() -> None:
    code = (
        "import sys, alerts.rules, alerts.ruleset; "
        "bad = {m for m in sys.modules if m.split('.')[0] in {'flask', 'celery', 'sqlalchemy'}}; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- the loader's errors ------------------------------------------------------------------------


def rule(rule_id: str = "r1", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rule_id,
        "category": "cat_a",
        "urgency": "urgent",
        "when": {"item": "neuro", "is": True},
        "rationale": "Because the guideline says so.",
    }
    data.update(fields)
    return data


def combination(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "ambers",
        "enabled": False,
        "when_distinct_categories_at_least": 2,
        "of_urgency": "same_day",
        "raise_to": "urgent",
        "rationale": "Several ambers.",
    }
    data.update(fields)
    return data


def base_data() -> dict[str, Any]:
    return {
        "name": "test",
        "version": 1,
        "instrument": "sre-weekly",
        "rules": [
            rule(),
            {
                "id": "free-text",
                "kind": "message",
                "category": "patient_message",
                "read": {"items": ["anything_else"], "unreadable": True},
                "rationale": "A nurse reads it.",
            },
        ],
        "combinations": [],
        "messages": {
            "urgency": "routine",
            "warning_urgency": "same_day",
            "callback_urgency": "same_day",
            "rationale": "Read it.",
            "callback_rationale": "Call back.",
            "warning_phrases": {"en": ["fell"], "es": ["me caí"]},
        },
    }


def write(directory: Path, data: dict[str, Any], name: str = "test-v1.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def set_rule(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["rules"][0].update(fields)


def drop_rule_key(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["rules"][0].pop(key)


def add_rule(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["rules"].append(rule(**fields))


LOADER_ERRORS = [
    pytest.param(
        set_rule(when={"item": "nero", "is": True}), ["rule 'r1'", "unknown item code 'nero'"], id="item"
    ),
    pytest.param(
        set_rule(when={"item": "neuro", "gte": 1}),
        ["rule 'r1'", "operator 'gte' does not fit item 'neuro' (yes_no)"],
        id="gte-on-yes-no",
    ),
    pytest.param(
        set_rule(when={"any": [{"item": "neuro", "is": True}, {"item": "pain_worst", "includes": 3}]}),
        ["rule 'r1'", "when.any[1]", "operator 'includes' does not fit item 'pain_worst' (integer)"],
        id="includes-on-integer",
    ),
    pytest.param(
        set_rule(when={"item": "anything_else", "is": True}),
        ["rule 'r1'", "does not fit item 'anything_else' (free_text)"],
        id="condition-on-free-text",
    ),
    pytest.param(
        set_rule(when={"item": "pain_worst", "greater_than": 3}),
        ["rule 'r1'", "unknown operator 'greater_than'"],
        id="unknown-item-operator",
    ),
    pytest.param(
        set_rule(when={"either": [{"item": "neuro", "is": True}]}),
        ["rule 'r1'", "unknown operator 'either'"],
        id="unknown-combinator",
    ),
    pytest.param(set_rule(urgency="asap"), ["rule 'r1'", "unknown urgency 'asap'"], id="unknown-urgency"),
    pytest.param(add_rule(rule_id="r1"), ["rule 'r1'", "duplicate rule id 'r1'"], id="duplicate-id"),
    pytest.param(drop_rule_key("rationale"), ["rule 'r1'", "missing rationale"], id="missing-rationale"),
    pytest.param(set_rule(rationale="  "), ["rule 'r1'", "missing rationale"], id="blank-rationale"),
    pytest.param(set_rule(rationle="typo"), ["rule 'r1'", "unknown key 'rationle'"], id="unknown-key"),
    pytest.param(drop_rule_key("when"), ["rule 'r1'", "missing `when:`"], id="missing-when"),
    pytest.param(
        set_rule(when={"item": "neuro", "is": "yes please"}), ["rule 'r1'", "true or false"], id="is-not-bool"
    ),
    pytest.param(
        set_rule(when={"item": "pain_worst", "gte": True}), ["rule 'r1'", "whole number"], id="threshold-bool"
    ),
    pytest.param(
        set_rule(when={"item": "calcium_sx", "count_of": [1, 2], "at_least": 3}),
        ["rule 'r1'", "can never fire"],
        id="count-impossible",
    ),
    pytest.param(
        set_rule(when={"item": "neuro", "is": True, "gte": 1}),
        ["rule 'r1'", "exactly one operator"],
        id="two-ops",
    ),
    pytest.param(
        set_rule(when={"history": "missed_calls", "at_least": 2}),
        ["rule 'r1'", "unknown history"],
        id="history",
    ),
    pytest.param(
        set_rule(when={"item": "pain_worst", "rise_from_previous": 0}),
        ["rule 'r1'", "1 or more"],
        id="rise-zero",
    ),
    pytest.param(set_rule(when={"any": []}), ["rule 'r1'", "non-empty list"], id="empty-any"),
    pytest.param(
        lambda data: data["rules"].pop(1),
        ["ruleset", "unreadable replies would be silently dropped"],
        id="no-message",
    ),
    pytest.param(
        lambda data: data["rules"][1].update(urgency="urgent"),
        ["rule 'free-text'", "message rule takes no `urgency:`"],
        id="message-urgency",
    ),
    pytest.param(
        lambda data: data["combinations"].append(combination(raise_to="routine")),
        ["combination 'ambers'", "must be more urgent"],
        id="combination-lowers",
    ),
    pytest.param(
        lambda data: data["combinations"].append(combination(id="r1")),
        ["combination 'r1'", "duplicate rule id 'r1'"],
        id="combination-duplicate-id",
    ),
    pytest.param(
        lambda data: data["messages"].update(not_warning_words={"en": ["number"]}),
        ["not_warning_words", "'number'", "no effect"],
        id="useless-not-warning-word",
    ),
    pytest.param(
        lambda data: data["messages"]["warning_phrases"].update(en=["'…'"]),
        ["warning_phrases", "no letters"],
        id="empty-phrase",
    ),
    pytest.param(lambda data: data.update(version="1"), ["version"], id="version-text"),
    pytest.param(
        lambda data: data["messages"].pop("callback_rationale"),
        ["messages", "missing callback_rationale"],
        id="callback-rationale",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), LOADER_ERRORS)
def test_loader_errors_name_the_rule_and_the_problem(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    data = base_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(RulesetError) as error:
        load_ruleset(path, KNOWN_ITEMS)
    message = str(error.value)
    assert path.name in message
    for fragment in expected:
        assert fragment in message


def test_the_test_base_ruleset_is_valid(tmp_path: Path) -> None:
    ruleset = load_ruleset(write(tmp_path, base_data()), KNOWN_ITEMS)
    assert [r.id for r in ruleset.rules] == ["r1", "free-text"]


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    text = yaml.safe_dump(base_data(), sort_keys=False).replace(
        "  urgency: urgent\n", "  urgency: urgent\n  urgency: routine\n", 1
    )
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesetError, match="duplicate key 'urgency'"):
        load_ruleset(path, KNOWN_ITEMS)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(RulesetError, match=r"broken\.yaml: not valid YAML"):
        load_ruleset(path, KNOWN_ITEMS)


def test_load_rulesets_rejects_two_files_with_one_version(tmp_path: Path) -> None:
    write(tmp_path, base_data(), "a.yaml")
    write(tmp_path, base_data(), "b.yaml")
    with pytest.raises(RulesetError, match="already defined"):
        load_rulesets(tmp_path, KNOWN_ITEMS)


def test_load_rulesets_keys_by_name_and_version(tmp_path: Path) -> None:
    write(tmp_path, base_data(), "test-v1.yaml")
    write(tmp_path, {**base_data(), "version": 2}, "test-v2.yml")
    assert sorted(load_rulesets(tmp_path, KNOWN_ITEMS)) == [("test", 1), ("test", 2)]


def test_load_rulesets_refuses_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RulesetError, match="no ruleset files"):
        load_rulesets(tmp_path, KNOWN_ITEMS)


# --- properties ---------------------------------------------------------------------------------

complete_answers = st.fixed_dictionaries(
    {
        "pain_new": st.booleans(),
        "pain_worst": st.integers(0, 10),
        "pain_site": st.lists(st.integers(1, 5), min_size=1, max_size=5, unique=True),
        "pain_at_rest": st.booleans(),
        "sudden_immobile": st.booleans(),
        "neuro": st.booleans(),
        "bladder_bowel": st.booleans(),
        "calcium_sx": st.lists(st.integers(1, 6), max_size=6, unique=True),
        "anything_else": st.none() | st.text(max_size=60),
    }
)
histories = st.builds(
    History,
    previous_pain_worst=st.none() | st.integers(0, 10),
    consecutive_expired_unanswered=st.integers(0, 5),
)


@settings(max_examples=300, deadline=None)
@given(values=complete_answers, history=histories)
def test_property_complete_check_ins(values: dict[str, Any], history: History) -> None:
    findings = run({code: answered(code, value) for code, value in values.items()}, history)
    categories = [f.category for f in findings]
    assert len(categories) == len(set(categories))
    assert findings == sorted(findings, key=lambda f: (-f.urgency.rank, f.category))
    scc = summary(findings).get("spinal_cord_compression")
    assert (scc == URGENT) is (values["neuro"] or values["bladder_bowel"])


any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.text(max_size=20),
    st.lists(st.integers(-1, 8), max_size=6),
)
any_answer = st.builds(
    lambda code, status, value, raw: AnswerView(code, status, value, raw, QUESTIONS[code]),
    st.sampled_from(list(KNOWN_ITEMS)),
    st.sampled_from(["answered", "unreadable", "missing", "skipped", "bogus"]),
    any_value,
    st.none() | st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(views=st.lists(any_answer, max_size=12), history=histories, complete=st.booleans())
def test_property_any_answers_never_raise_and_unknown_never_fires(
    views: list[AnswerView], history: History, complete: bool
) -> None:
    answers = {view.item_code: view for view in views}
    findings = run(answers, history, complete=complete)
    categories = [f.category for f in findings]
    assert len(categories) == len(set(categories))
    yes = {code for code, view in answers.items() if view.status == "answered" and view.value is True}
    assert (summary(findings).get("spinal_cord_compression") == URGENT) is bool(
        yes & {"neuro", "bladder_bowel"}
    )
    for finding in findings:
        if finding.category != "patient_message":
            # Only answered items can be evidence that fired a rule.
            assert all(answers[e.item_code].status == "answered" for e in finding.evidence if e.item_code)
