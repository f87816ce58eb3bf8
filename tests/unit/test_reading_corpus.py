"""The symptom reader measured on the labelled corpus (tests/corpus/patient_texts.yaml).

The corpus was written apart from the vocabulary (patient-leaflet and forum-style wording, typos, carers,
English and Spanish). These floors keep what has been reached from slipping back; the targets (issue 12)
are 100 % emergency sensitivity and 95 % quiet specificity: `python -m benchmarks.bench_reading --misses`
lists the texts still read at the wrong tier.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_reading import CORPORA, evaluate, load_corpus, rates, runtime_parts

# Floors per (tier, language): the share reached when this test was last raised. Raise, never lower.
FLOORS = {
    ("emergency", "en"): 1.0,
    ("emergency", "es"): 1.0,
    ("warning", "en"): 0.95,
    ("warning", "es"): 0.95,
    ("quiet", "en"): 0.95,
    ("quiet", "es"): 0.95,
}


# The second and third development corpora (other authors, used for tuning after each had been measured
# blind). `final` and `final-2 (blind)` have no floor on purpose: they are never tuned on, only reported.
FLOORS_2 = {(tier, lang): 0.95 for tier in ("emergency", "warning", "quiet") for lang in ("en", "es")}
FLOORS_2 |= {("emergency", "en"): 1.0, ("emergency", "es"): 1.0}


# Development-3: one English emergency is still missed (an oblique farewell with no method named); see
# docs/clinical-safety.md H17.
FLOORS_3 = {(tier, lang): 0.95 for tier in ("emergency", "warning", "quiet") for lang in ("en", "es")}
FLOORS_3 |= {("emergency", "en"): 0.985, ("emergency", "es"): 1.0}


@pytest.fixture(scope="module")
def outcomes() -> list:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return evaluate(load_corpus(), lexicon, instruments)


@pytest.fixture(scope="module")
def outcomes_2() -> list:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return evaluate(load_corpus(CORPORA["development-2"]), lexicon, instruments)


@pytest.mark.parametrize(("tier", "lang"), sorted(FLOORS_2))
def test_reading_meets_its_floor_on_the_second_corpus(outcomes_2: list, tier: str, lang: str) -> None:  # type: ignore[type-arg]
    hits, total = rates(outcomes_2, tier, lang)
    assert hits / total >= FLOORS_2[(tier, lang)], f"{hits}/{total}; see bench_reading --misses"


def test_the_corpus_is_large_and_balanced() -> None:
    cases = load_corpus()
    assert len(cases) >= 400
    for lang in ("en", "es"):
        for tier in ("emergency", "warning", "quiet"):
            assert sum(c.lang == lang and c.tier == tier for c in cases) >= 30, (lang, tier)


@pytest.mark.parametrize(("tier", "lang"), sorted(FLOORS))
def test_reading_meets_its_floor(outcomes: list, tier: str, lang: str) -> None:  # type: ignore[type-arg]
    hits, total = rates(outcomes, tier, lang)
    misses = [o.case.text for o in outcomes if o.case.tier == tier and o.case.lang == lang]
    assert hits / total >= FLOORS[(tier, lang)], f"{hits}/{total}; see bench_reading --misses ({len(misses)})"


@pytest.fixture(scope="module")
def outcomes_3() -> list:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return evaluate(load_corpus(CORPORA["development-3"]), lexicon, instruments)


@pytest.mark.parametrize(("tier", "lang"), sorted(FLOORS_3))
def test_reading_meets_its_floor_on_the_third_corpus(outcomes_3: list, tier: str, lang: str) -> None:  # type: ignore[type-arg]
    hits, total = rates(outcomes_3, tier, lang)
    assert hits / total >= FLOORS_3[(tier, lang)], f"{hits}/{total}; see bench_reading --misses"


# Development-4 and -5 (authors C and D): measured blind with reader v2 + model-v1 (93.4 % and 95.6 %
# emergency sensitivity, docs/benchmarks.md), then added to the text model's training. Floors at what the
# trained reader reaches; warnings are weak here (the model only knows emergency or not). Quiet floors were
# lowered once, on purpose: after the review the model also reads the clauses beside a denied symptom
# ("no numbness. I just want to stop existing"), which costs a few quiet texts.
FLOORS_45 = {
    ("development-4", "emergency", "en"): 1.0,
    ("development-4", "emergency", "es"): 1.0,
    ("development-4", "quiet", "en"): 0.88,
    ("development-4", "quiet", "es"): 0.95,
    ("development-4", "warning", "en"): 0.8,
    ("development-4", "warning", "es"): 0.68,
    ("development-5", "emergency", "en"): 1.0,
    ("development-5", "emergency", "es"): 1.0,
    ("development-5", "quiet", "en"): 0.875,
    ("development-5", "quiet", "es"): 0.875,
    ("development-5", "warning", "en"): 0.8,
    ("development-5", "warning", "es"): 0.76,
}


@pytest.fixture(scope="module")
def outcomes_45() -> dict[str, list]:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return {
        name: evaluate(load_corpus(CORPORA[name]), lexicon, instruments)
        for name in ("development-4", "development-5")
    }


@pytest.mark.parametrize(("corpus", "tier", "lang"), sorted(FLOORS_45))
def test_reading_meets_its_floor_on_the_fourth_and_fifth_corpora(
    outcomes_45: dict[str, list],  # type: ignore[type-arg]
    corpus: str,
    tier: str,
    lang: str,
) -> None:
    hits, total = rates(outcomes_45[corpus], tier, lang)
    assert hits / total >= FLOORS_45[(corpus, tier, lang)], f"{corpus}: {hits}/{total}; see --misses"


# Development-6 (a ninth author): self-harm told obliquely against ordinary talk of death and dying, the
# class every blind corpus still missed. Measured blind with symptoms-v2 + model-v2 (67.8 % emergency
# sensitivity, 63.3 % quiet specificity), then tuned on (symptoms-v3) and added to model-v3's training. Quiet
# texts here are hard on purpose (funerals, hospice, a pet put to sleep) and mostly cost a same-day
# "died or admitted" read, not a crisis text.
FLOORS_6 = {(tier, lang): 1.0 for tier in ("emergency", "warning") for lang in ("en", "es")}
# Where someone wants to die ("mum wants to die at home") is read as an urgent unsure for a nurse, on
# purpose (a review found guards that silenced "I want to die at home, tonight"): it costs quiet texts here.
FLOORS_6 |= {("quiet", "en"): 0.82, ("quiet", "es"): 0.77}


@pytest.fixture(scope="module")
def outcomes_6() -> list:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return evaluate(load_corpus(CORPORA["development-6"]), lexicon, instruments)


@pytest.mark.parametrize(("tier", "lang"), sorted(FLOORS_6))
def test_reading_meets_its_floor_on_self_harm_against_talk_of_death(
    outcomes_6: list,  # type: ignore[type-arg]
    tier: str,
    lang: str,
) -> None:
    hits, total = rates(outcomes_6, tier, lang)
    assert hits / total >= FLOORS_6[(tier, lang)], f"{hits}/{total}; see bench_reading --misses"


# Development-7 (a tenth author, 2026-12-05): replies that are not a form. Measured blind with symptoms-v3
# (one emergency missed in each language: a "no… I mean yes" to a red flag, "¿es normal que no sienta el
# papel?"), then tuned on: replies.py reads a no taken back by a later yes as ambiguous, symptoms-v4 reads
# every form of "sentir". Quiet misses left: figurative talk, other people's and healed injuries.
FLOORS_7 = {(tier, lang): 1.0 for tier in ("emergency", "warning") for lang in ("en", "es")}
FLOORS_7 |= {("quiet", "en"): 0.8, ("quiet", "es"): 0.85}


@pytest.fixture(scope="module")
def outcomes_7() -> list:  # type: ignore[type-arg]
    lexicon, instruments = runtime_parts()
    return evaluate(load_corpus(CORPORA["development-7"]), lexicon, instruments)


@pytest.mark.parametrize(("tier", "lang"), sorted(FLOORS_7))
def test_reading_meets_its_floor_on_replies_that_are_not_a_form(
    outcomes_7: list,  # type: ignore[type-arg]
    tier: str,
    lang: str,
) -> None:
    hits, total = rates(outcomes_7, tier, lang)
    assert hits / total >= FLOORS_7[(tier, lang)], f"{hits}/{total}; see bench_reading --misses"


def test_no_quiet_talk_of_death_gets_the_crisis_text(outcomes_6: list) -> None:  # type: ignore[type-arg]
    """A crisis text to someone planning where to die, or grieving, is harm too: none may read as one."""
    lexicon, _ = runtime_parts()
    from pro_service.message_reading import read_message

    crisis = [
        case.text
        for case in (o.case for o in outcomes_6)
        if case.tier == "quiet"
        and any(lexicon.concepts[f.concept].crisis for f in read_message(case.text, lexicon).reading.findings)
    ]
    assert crisis == []
