"""The clinical profile's pure parts: the row → Baseline mapping, value validation, the form reader, the
red-flag questions left unanswered, and the call-script file's validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.rules import CONTINENCE_STATES, Baseline
from pro_service.call_scripts import CallScriptError, load_call_scripts
from pro_service.instruments import load_instruments
from pro_service.models import Answer, AnswerStatus, CheckIn, CheckInStatus, PatientProfile
from pro_service.services.clinical_profile import (
    ProfileError,
    _clean,
    form_changes,
    to_baseline,
    unanswered_red_flags,
)

ROOT = Path(__file__).resolve().parents[2]


def test_no_row_and_an_empty_row_are_no_baseline() -> None:
    assert to_baseline(None) is None
    # Only call information recorded: the baseline is still unknown, never "normal".
    assert to_baseline(PatientProfile(patient_id=1, carer_name="Sam")) is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"chronic_neuropathy": True}, Baseline(chronic_neuropathy=True)),
        ({"chronic_neuropathy": False}, Baseline(chronic_neuropathy=False)),
        ({"continence": "catheter"}, Baseline(continence="catheter")),
        ({"usual_pain": 0}, Baseline(usual_pain=0)),  # 0 is a recorded value, not "not recorded"
        (
            {
                "chronic_neuropathy": True,
                "continence": "continent",
                "usual_pain": 4,
                "spinal_levels": "T8, L2",
            },
            Baseline(chronic_neuropathy=True, continence="continent", usual_pain=4, spinal_levels="T8, L2"),
        ),
        # A stored state the rules do not know is unknown, not passed through.
        ({"continence": "sometimes", "usual_pain": 3}, Baseline(usual_pain=3)),
    ],
)
def test_a_profile_row_maps_to_the_rules_baseline(fields: dict[str, Any], expected: Baseline) -> None:
    assert to_baseline(PatientProfile(patient_id=1, **fields)) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("usual_pain", 0, 0),
        ("usual_pain", 10, 10),
        ("usual_pain", None, None),
        ("continence", " bladder_problem ", "bladder_problem"),
        ("continence", "", None),
        ("chronic_neuropathy", False, False),
        ("carer_phone", "+1 555 123 0099", "+15551230099"),
        ("carer_phone", "  ", None),
        ("bone_agent", "  denosumab ", "denosumab"),
        ("ceiling_of_care", "", None),
    ],
)
def test_valid_values_are_cleaned(name: str, value: object, expected: object) -> None:
    assert _clean(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("usual_pain", 11, "0 to 10"),
        ("usual_pain", -1, "0 to 10"),
        ("usual_pain", True, "0 to 10"),  # a bool is not a pain score
        ("usual_pain", "5", "0 to 10"),
        ("continence", "leaky", "continent"),
        ("chronic_neuropathy", "yes", "yes, no"),
        ("carer_phone", "not a phone", "E.164"),
        ("carer_relation", "x" * 61, "at most 60"),
        ("analgesia", "a\x00b", "NUL"),
        ("favourite_colour", "blue", "not a profile field"),
    ],
)
def test_bad_values_are_refused_naming_the_field(name: str, value: object, words: str) -> None:
    with pytest.raises(ProfileError) as caught:
        _clean(name, value)
    assert caught.value.field == name and words in caught.value.message


def test_every_continence_state_is_accepted() -> None:
    assert [_clean("continence", state) for state in CONTINENCE_STATES] == list(CONTINENCE_STATES)


def test_form_strings_become_typed_changes_and_blank_clears() -> None:
    changes = form_changes(
        {"chronic_neuropathy": "yes", "usual_pain": "3", "continence": "", "carer_name": " Sam ", "mrn": "x"}
    )
    assert changes == {"chronic_neuropathy": True, "usual_pain": 3, "continence": "", "carer_name": "Sam"}
    assert form_changes({"chronic_neuropathy": "", "usual_pain": ""}) == {
        "chronic_neuropathy": None,
        "usual_pain": None,
    }
    assert form_changes({"chronic_neuropathy": "no"}) == {"chronic_neuropathy": False}


@pytest.mark.parametrize(
    ("name", "raw"), [("usual_pain", "seven"), ("usual_pain", "²"), ("chronic_neuropathy", "maybe")]
)
def test_unreadable_form_values_name_the_field(name: str, raw: str) -> None:
    with pytest.raises(ProfileError) as caught:
        form_changes({name: raw})
    assert caught.value.field == name
    assert caught.value.sentence.startswith(("Usual worst pain", "Known chronic neuropathy"))


def _check_in(status: CheckInStatus, answers: dict[str, tuple[AnswerStatus, Any]]) -> CheckIn:
    check_in = CheckIn(patient_id=1, instrument_code="sre-weekly", instrument_version=1, status=status)
    check_in.answers = [
        Answer(item_code=code, status=st, value=value) for code, (st, value) in answers.items()
    ]
    return check_in


def test_red_flag_questions_without_a_usable_answer_are_listed() -> None:
    instruments = load_instruments(ROOT / "config" / "instruments")
    expired = _check_in(
        CheckInStatus.EXPIRED,
        {
            "pain_worst": (AnswerStatus.ANSWERED, 6),
            "sudden_immobile": (AnswerStatus.ANSWERED, False),  # a clean answer: not listed
            "neuro": (AnswerStatus.UNREADABLE, None),
            "bladder_bowel": (AnswerStatus.MISSING, None),
        },
    )
    listed = [(f.item_code, f.red_flag, f.reason) for f in unanswered_red_flags(expired, instruments)]
    assert listed == [
        ("neuro", "spinal_cord_compression", "unreadable reply"),
        ("bladder_bowel", "spinal_cord_compression", "no reply"),
    ]
    # Skipped by the questionnaire's logic (no pain: the fracture question does not apply) is an answer.
    skipped = _check_in(
        CheckInStatus.COMPLETED,
        {
            "sudden_immobile": (AnswerStatus.SKIPPED, None),
            "neuro": (AnswerStatus.ANSWERED, False),
            "bladder_bowel": (AnswerStatus.ANSWERED, False),
        },
    )
    assert unanswered_red_flags(skipped, instruments) == []
    # Still open: the questions not reached yet are "not asked yet", not "no reply".
    open_one = _check_in(CheckInStatus.IN_PROGRESS, {"neuro": (AnswerStatus.ANSWERED, False)})
    assert {(f.item_code, f.reason) for f in unanswered_red_flags(open_one, instruments)} == {
        ("sudden_immobile", "not asked yet"),
        ("bladder_bowel", "not asked yet"),
    }


def test_the_shipped_call_scripts_load_and_cover_the_emergencies() -> None:
    scripts = load_call_scripts(ROOT / "config" / "call_scripts.yaml")
    for category in (
        "spinal_cord_compression",
        "pathologic_fracture",
        "hypercalcemia",
        "altered_consciousness",
    ):
        script = scripts.get(category)
        assert script is not None and 3 <= len(script.steps) <= 5
    assert scripts.get("no_such_category") is None  # no script: no section, not an error


def test_every_category_a_shipped_ruleset_raises_has_a_call_script() -> None:
    from alerts.ruleset import load_rulesets
    from pro_service.instruments import load_instruments

    installed = load_instruments(ROOT / "config" / "instruments")
    rulesets = load_rulesets(
        ROOT / "config" / "rules", installed.item_kinds(), instrument_items=installed.items_by_version()
    )
    scripts = load_call_scripts(ROOT / "config" / "call_scripts.yaml")
    # bone_marker_rise (a routine ALP rise) is reviewed at the next contact, not by phone.
    categories = set().union(*(r.categories for r in rulesets.values())) - {"bone_marker_rise"}
    assert {c for c in categories if scripts.get(c) is None} == set()


@pytest.mark.parametrize(
    "text",
    [
        # too few steps
        "version: 1\nscripts:\n  hypercalcemia:\n    title: Calcium\n    steps: [one, two]\n",
        "version: 1\nscripts:\n  hypercalcemia:\n    title: Calcium\n    steps: [a, b, c, d, e, f]\n",
        "version: 1\nscripts:\n  hypercalcemia:\n    steps: [a, b, c]\n",  # no title
        "version: 1\nscripts:\n  hypercalcemia:\n    title: T\n    steps: [a, b, c]\n    urgency: red\n",
        "version: 1\nscripts:\n  Bad Category:\n    title: T\n    steps: [a, b, c]\n",
        "version: 1\nscripts: [\n",  # not YAML
        "scripts: {}\n",  # no version
    ],
)
def test_a_malformed_call_script_file_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "call_scripts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CallScriptError, match=r"^call_scripts\.yaml: "):
        load_call_scripts(path)


def test_a_missing_call_script_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(CallScriptError, match=r"^call_scripts\.yaml: "):
        load_call_scripts(tmp_path / "call_scripts.yaml")
