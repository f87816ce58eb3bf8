"""The symptom reader on the labelled corpus: sensitivity and specificity per tier and language, and its cost.

    python -m benchmarks.bench_reading [--misses]

The corpus (tests/corpus/patient_texts.yaml) labels each text emergency / warning / quiet with the question
it answered. A text is read as the service reads it on arrival (pro_service.message_reading): the symptom
reader, and on a red-flag question the clean-answer check (a "yes" there is an emergency by the rules).
Sensitivity: of the texts labelled emergency (warning), the share read at that tier or above.
Specificity: of the texts labelled quiet, the share read as quiet. Targets (issue 12): emergency
sensitivity 100 %, quiet specificity >= 95 %, p99 <= 2 ms per message.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from alerts.lexicon import load_lexicons
from alerts.reading import Lexicon, Tier
from pro_service.instruments import InstrumentRegistry, Item, load_instruments
from pro_service.message_reading import read_message
from pro_service.replies import Parsed, parse_reply

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "patient_texts.yaml"
# Seven corpora by seven authors, none of whom saw the vocabulary. Development corpora are for tuning (their
# misses may be listed and read). `final` was never tuned on, but its misses were read once (2026-12-03);
# `final-2` is blind: never tuned on and its texts never read by whoever tunes the vocabulary, so its figures
# are the honest ones for wording nobody has seen. `final-3` (2026-12-04, an eighth author) is blind in the
# same way. `--misses` never lists a blind corpus. Once you tune on it, it stops being blind: move it to
# development and write a new one.
CORPORA = {
    "development": CORPUS,
    "development-2": ROOT / "tests" / "corpus" / "patient_texts_heldout.yaml",
    "development-3": ROOT / "tests" / "corpus" / "patient_texts_dev3.yaml",
    "development-4": ROOT / "tests" / "corpus" / "patient_texts_dev4.yaml",
    "development-5": ROOT / "tests" / "corpus" / "patient_texts_dev5.yaml",
    # Self-harm told obliquely against ordinary talk of death (2026-12-04, a ninth author): the class every
    # blind corpus still missed; measured blind (67.8 % / 63.3 %), then tuned on.
    "development-6": ROOT / "tests" / "corpus" / "patient_texts_dev6.yaml",
    # Replies that are not a form (2026-12-05, a tenth author): function loss told indirectly, emergencies
    # after reassurance, a "no" then a symptom or a "yes", carers, regional Spanish. Measured blind
    # (symptoms-v3: emergency 98 % en / 98 % es, quiet 80.0 % / 85.7 %), then tuned on (symptoms-v4, and
    # replies.py's "no… I mean yes"); not in model-v3's training.
    "development-7": ROOT / "tests" / "corpus" / "patient_texts_dev7.yaml",
    "final": ROOT / "tests" / "corpus" / "patient_texts_final.yaml",
    "final-2 (blind)": ROOT / "tests" / "corpus" / "patient_texts_final2.yaml",
    "final-3 (blind)": ROOT / "tests" / "corpus" / "patient_texts_final3.yaml",
}
BLIND = {"final-2 (blind)", "final-3 (blind)"}
TIERS = ("emergency", "warning", "quiet")
_RANK = {"quiet": 0, "warning": 1, "emergency": 2}


@dataclass(frozen=True)
class Case:
    text: str
    lang: str
    tier: str
    question: str | None
    concept: str | None


@dataclass(frozen=True)
class Outcome:
    case: Case
    predicted: str


def load_corpus(path: Path = CORPUS) -> list[Case]:
    return [Case(**entry) for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]


def predict(case: Case, lexicon: Lexicon, item: Item | None) -> str:
    """The tier the service gives a text on arrival."""
    reading = read_message(case.text, lexicon, item=item, language=case.lang)
    if reading.unclear_red_flag or reading.reading.tier is Tier.EMERGENCY:
        return "emergency"
    if item is not None and item.red_flag and parse_reply(case.text, item.spec, case.lang) == Parsed(True):
        return "emergency"  # the ruleset's urgent rule on a red-flag "yes"
    return "warning" if reading.reading.tier is Tier.WARNING else "quiet"


def evaluate(cases: Iterable[Case], lexicon: Lexicon, instruments: InstrumentRegistry) -> list[Outcome]:
    instrument = instruments.get("sre-weekly", 1)  # the corpora are labelled against v1's questions
    assert instrument is not None
    return [
        Outcome(case, predict(case, lexicon, instrument.item(case.question) if case.question else None))
        for case in cases
    ]


def rates(outcomes: list[Outcome], tier: str, lang: str | None = None) -> tuple[int, int]:
    """(hits, total): at or above the tier for emergency/warning; exactly quiet for quiet."""
    chosen = [o for o in outcomes if o.case.tier == tier and (lang is None or o.case.lang == lang)]
    if tier == "quiet":
        hits = sum(o.predicted == "quiet" for o in chosen)
    else:
        hits = sum(_RANK[o.predicted] >= _RANK[tier] for o in chosen)
    return hits, len(chosen)


@cache  # about 1 s a load (the typo guard's word lists); one per process, as the product has
def runtime_parts() -> tuple[Lexicon, InstrumentRegistry]:
    lexicons = load_lexicons(ROOT / "config" / "reading")
    lexicon = max(lexicons.values(), key=lambda lx: lx.version)
    return lexicon, load_instruments(ROOT / "config" / "instruments")


def run(full: bool = False, misses: bool = False) -> dict[str, Any]:
    """Print the tables and the cost; return the figures (benchmarks.run collects them)."""
    lexicon, instruments = runtime_parts()
    figures: dict[str, Any] = {"lexicon": lexicon.label}
    for name, path in CORPORA.items():
        outcomes = evaluate(load_corpus(path), lexicon, instruments)
        where = path.relative_to(ROOT)
        print(f"\nsymptom reader {lexicon.label}, {name} corpus: {len(outcomes)} texts ({where})")
        print(f"{'tier':<10} {'measure':<12} {'en':>14} {'es':>14} {'all':>14}")
        for tier in TIERS:
            cells = []
            for lang in ("en", "es", None):
                hits, total = rates(outcomes, tier, lang)
                cells.append(f"{hits}/{total} {100 * hits / max(total, 1):5.1f}%")
                figures[f"{name}/{tier}/{lang or 'all'}"] = hits / max(total, 1)
            measure = "specificity" if tier == "quiet" else "sensitivity"
            print(f"{tier:<10} {measure:<12} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")
        if misses and name not in BLIND:
            for o in outcomes:
                if o.predicted != o.case.tier:
                    case = o.case
                    print(
                        f"  {case.lang} {case.tier:>9} read {o.predicted:<9} q={case.question}: {case.text}"
                    )
    cases = [case for path in CORPORA.values() for case in load_corpus(path)]
    instrument = instruments.get("sre-weekly", 1)  # the corpora are labelled against v1's questions
    assert instrument is not None
    items = [instrument.item(c.question) if c.question else None for c in cases]
    for case, item in zip(cases, items, strict=True):  # warm the typo cache as a running worker would
        predict(case, lexicon, item)
    samples = []
    for _ in range(20 if full else 5):
        for case, item in zip(cases, items, strict=True):
            start = time.perf_counter()
            predict(case, lexicon, item)
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(
        f"\ncost per message: p50 {statistics.median(samples):.3f} ms, p99 {p99:.3f} ms, "
        f"max {samples[-1]:.3f} ms ({len(samples)} reads; target p99 <= 2 ms)"
    )
    figures.update(p50_ms=statistics.median(samples), p99_ms=p99, max_ms=samples[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every text read at the wrong tier")
    parser.add_argument("--full", action="store_true", help="time 20 passes instead of 5")
    args = parser.parse_args()
    run(args.full, args.misses)


if __name__ == "__main__":
    main()
