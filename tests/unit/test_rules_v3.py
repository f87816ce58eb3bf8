"""Ruleset 3 (questionnaire sre-weekly v2): red flags, the baseline, worsening over recent check-ins,
domains and "two amber domains make a red"; the new condition kinds and their loader checks."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import AnswerView, Baseline, Finding, History, evaluate
from alerts.ruleset import RulesetError, load_ruleset
from pro_service.instruments import load_instruments
from pro_service.replies import Parsed, Unreadable, only_choices, parse_reply

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENTS = load_instruments(ROOT / "config" / "instruments")
V2 = INSTRUMENTS.get("sre-weekly", 2)
ITEMS = INSTRUMENTS.items_by_version()
SRE3 = load_ruleset(ROOT / "config" / "rules" / "sre-v3.yaml", {}, instrument_items=ITEMS)
WELL: dict[str, object] = {
    "weakness": False,
    "numbness": [],
    "bladder_bowel": False,
    "weight_bearing": False,
    "fall": False,
    "pain_worst": 2,
    "pain_site": [3],
    "pain_features": [],
    "calcium_sx": [],
}


def _answers(**changes: object) -> dict[str, AnswerView]:
    values = {**WELL, **changes}
    return {
        code: AnswerView(code, "answered", value, str(value), None)  # type: ignore[arg-type]
        for code, value in values.items()
    }


def _found(history: History | None = None, **changes: object) -> dict[str, Finding]:
    findings = evaluate(_answers(**changes), history or History(), SRE3, complete=True)
    return {f.category: f for f in findings}


def test_a_well_week_raises_nothing() -> None:
    assert _found() == {}


@pytest.mark.parametrize(
    ("changes", "category", "rule"),
    [
        ({"weakness": True}, "spinal_cord_compression", "scc-weakness"),
        ({"numbness": [2]}, "spinal_cord_compression", "scc-numbness-new-or-worse"),
        ({"bladder_bowel": True}, "spinal_cord_compression", "scc-bladder-bowel"),
        ({"pain_features": [4]}, "spinal_cord_compression", "scc-band-like-pain"),
        ({"weight_bearing": True}, "pathologic_fracture", "fracture-cannot-bear-weight"),
        ({"calcium_sx": [5]}, "hypercalcemia", "hypercalcemia-confused-or-drowsy"),
    ],
)
def test_each_red_flag_is_urgent_and_early(changes: dict[str, object], category: str, rule: str) -> None:
    early = evaluate(_answers(**changes), History(), SRE3, complete=False)
    assert [(f.category, f.urgency.value, f.rule_id) for f in early] == [(category, "urgent", rule)]


def test_numbness_as_usual_depends_on_the_recorded_baseline() -> None:
    unknown = _found(numbness=[1])
    assert unknown["spinal_cord_compression"].rule_id == "scc-numbness-not-known"
    known = History(baseline=Baseline(chronic_neuropathy=True))
    assert _found(known, numbness=[1]) == {}  # chronic neuropathy as usual: no weekly page
    assert _found(known, numbness=[2])["spinal_cord_compression"].urgency.value == "urgent"  # a change
    denied = History(baseline=Baseline(chronic_neuropathy=False))
    assert _found(denied, numbness=[1])["spinal_cord_compression"].urgency.value == "urgent"
    # A baseline with other facts but no neuropathy answer is still "not recorded".
    other = History(baseline=Baseline(usual_pain=3))
    assert "spinal_cord_compression" in _found(other, numbness=[1])


def test_hip_pain_at_rest_that_is_not_new_is_same_day() -> None:
    found = _found(pain_worst=6, pain_site=[3], pain_features=[2])
    assert {c: f.urgency.value for c, f in found.items()} == {"bone_pain_at_rest": "same_day"}
    assert _found(pain_worst=4, pain_site=[3], pain_features=[2]) == {}  # mild pain at rest: no


def test_back_pain_rising_over_recent_weeks_is_same_day_spinal_pain() -> None:
    history = History(previous_pain_worst=4, recent_values={"pain_worst": (4, 3, 2)})
    found = _found(history, pain_worst=5, pain_site=[1])
    assert found["spinal_metastasis_pain"].urgency.value == "same_day"  # 5 - min(4, 3, 2) = 3
    assert found["worsening_pain"].urgency.value == "routine"
    flat = History(recent_values={"pain_worst": (5, 4, 4)})
    assert _found(flat, pain_worst=5, pain_site=[1]) == {}
    assert _found(pain_worst=5, pain_site=[1]) == {}  # no earlier check-in: a rise is unknown


def test_pain_above_the_usual_score_is_a_routine_worsening() -> None:
    usual = History(baseline=Baseline(usual_pain=3))
    assert _found(usual, pain_worst=6, pain_site=[4])["worsening_pain"].rule_id == "worsening-pain"
    assert "worsening_pain" not in _found(usual, pain_worst=5, pain_site=[4])


def test_two_amber_domains_make_a_red_but_one_painful_back_does_not() -> None:
    back = _found(pain_worst=8, pain_site=[1], pain_features=[1, 2])
    ambers = {c for c, f in back.items() if f.urgency.value == "same_day"}
    assert ambers == {"severe_pain", "spinal_metastasis_pain", "bone_pain_at_rest"}  # one domain
    assert all(f.urgency.value != "urgent" for f in back.values())
    both = _found(pain_worst=8, pain_site=[4], fall=True)
    assert both["severe_pain"].urgency.value == both["fall"].urgency.value == "urgent"
    assert "two-amber-domains-make-a-red" in both["fall"].other_rule_ids
    assert "2 same_day domains" in both["fall"].rationale


def test_thirst_alone_is_read() -> None:
    assert _found(calcium_sx=[4])["hypercalcemia"].urgency.value == "routine"  # read alone
    no_result = History(now=datetime(2026, 12, 4, tzinfo=UTC))  # labs known: none in 14 days
    found = _found(no_result, calcium_sx=[4])["hypercalcemia"]
    assert (found.urgency.value, found.rule_id) == ("same_day", "hypercalcemia-check-calcium")
    assert _found(calcium_sx=[1]) == {}  # tiredness alone is near universal


def test_questionnaire_v2_puts_red_flags_first_and_fits_one_sms_each() -> None:
    assert [i.code for i in V2.items[:4]] == ["weakness", "numbness", "bladder_bowel", "weight_bearing"]
    assert all(i.red_flag for i in V2.items[:4])
    assert len(V2.render_question("pain_features", "es")) <= 160


@pytest.mark.parametrize(
    ("item", "text", "value"),
    [
        ("pain_site", "my lower back and left hip", [1, 3]),
        ("pain_site", "Espalda y cadera", [1, 3]),
        ("pain_site", "2 and my leg", [2, 4]),
        ("numbness", "same as usual", [1]),
        ("numbness", "worse", [2]),
        ("numbness", "igual que siempre", [1]),
        ("numbness", "0", []),
        ("pain_features", "wakes me at night, and when I cough", [2, 3]),
        ("calcium_sx", "very thirsty and constipated", [4, 6]),
        ("calcium_sx", "confundida", [5]),
    ],
)
def test_choices_can_be_named_in_words(item: str, text: str, value: list[int]) -> None:
    assert parse_reply(text, V2.item(item).spec) == Parsed(value)


def test_words_that_name_no_choice_are_still_unreadable() -> None:
    assert isinstance(parse_reply("not sure", V2.item("pain_site").spec), Unreadable)
    assert only_choices("my left hip", V2.item("pain_site").spec)
    assert not only_choices("my leg feels weird", V2.item("pain_site").spec)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "candidate.yaml"
    base = (ROOT / "config" / "rules" / "sre-v3.yaml").read_text()
    path.write_text(base.replace("rules:\n", "rules:\n" + body, 1))
    return path


def _rule(category: str, when: str, domain: str | None = "other") -> str:
    named = f" domain: {domain}," if domain else ""
    return f"  - {{id: x, category: {category},{named} urgency: routine, when: {when}, rationale: r}}\n"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (_rule("fall", "{item: fall, is: true}", "bones"), "unknown domain"),
        (_rule("fall", "{item: fall, is: true}"), "belongs to one domain"),
        (_rule("y", "{item: fall, is: true}", None), "needs `domain:`"),
        (_rule("y", "{baseline: mood, is: true}"), "unknown baseline"),
        (_rule("y", "{baseline: continence, in: [dry]}"), "takes `recorded"),
        (_rule("y", "{item: fall, above_baseline: 2}"), "does not fit"),
    ],
)
def test_the_loader_refuses_bad_domains_and_baselines(tmp_path: Path, rule: str, problem: str) -> None:
    with pytest.raises(RulesetError, match=problem):
        load_ruleset(_write(tmp_path, rule), {}, instrument_items=ITEMS)


def test_a_ruleset_naming_a_questionnaire_version_not_installed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        (ROOT / "config" / "rules" / "sre-v3.yaml")
        .read_text()
        .replace("instrument_version: 2", "instrument_version: 7")
    )
    with pytest.raises(RulesetError, match="version 7 is not installed"):
        load_ruleset(path, {}, instrument_items=ITEMS)


@functools.cache  # loading the vocabularies takes about a second
def _lexicon() -> Any:
    from alerts.lexicon import load_lexicons

    return max(load_lexicons(ROOT / "config" / "reading").values(), key=lambda lex: lex.version)


def _read(item: str, text: str) -> tuple[object, str | None]:
    from pro_service.message_reading import read_message

    reading = read_message(text, _lexicon(), item=V2.item(item))
    return parse_reply(text, V2.item(item).spec), reading.red_flag_category


@pytest.mark.parametrize(
    "text",
    ["not the same", "maybe the same", "the usual but much stronger", "igual pero mas fuerte",
     "same but now both legs", "no es igual"],
)  # fmt: skip
def test_a_choice_among_other_words_is_not_a_clean_answer_to_a_red_flag(text: str) -> None:
    # With a chronic neuropathy recorded, "same as usual" raises nothing: so a reply that names it among
    # words that may deny or change it must be an urgent unknown, as "no, but…" is to a yes/no red flag.
    assert _read("numbness", text)[1] == "spinal_cord_compression"


@pytest.mark.parametrize("text", ["same as usual", "Igual que siempre", "same as ever", "1", "0", "none"])
def test_only_choices_is_a_clean_answer(text: str) -> None:
    assert _read("numbness", text)[1] is None


def test_an_article_is_not_choice_one_where_choices_have_words() -> None:
    assert _read("numbness", "one leg")[0] != Parsed([1])
    assert _read("numbness", "una pierna")[0] != Parsed([1])
    assert _read("pain_features", "como un cinto") == (Parsed([4]), None)  # band-like, not "new"
    assert parse_reply("one", V2.item("calcium_sx").spec) == Parsed([1])  # alone it is still the number


def test_band_like_pain_is_asked_as_a_red_flag() -> None:
    assert V2.item("pain_features").red_flag == "spinal_cord_compression"
    assert _read("pain_features", "it feels strange, hard to say")[1] == "spinal_cord_compression"


def test_a_rule_naming_a_choice_the_question_does_not_offer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    text = (ROOT / "config" / "rules" / "sre-v3.yaml").read_text()
    path.write_text(
        text.replace("when: {item: numbness, includes: 2}", "when: {item: numbness, includes: 3}")
    )
    with pytest.raises(RulesetError, match="offers choices 1, 2, not 3; the rule could never fire"):
        load_ruleset(path, {}, instrument_items=ITEMS, instrument_choices=INSTRUMENTS.choices_by_version())
