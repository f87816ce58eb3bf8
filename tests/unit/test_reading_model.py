"""The reader's text model: plain-Python scoring equals scikit-learn's, and the weights are current.

scripts/train_reading_model.py fits the model with scikit-learn and writes config/reading/model-v3.json;
alerts/reading_model.py scores with no machine-learning library. These tests fit the same pipeline here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alerts.lexicon import LexiconError, load_lexicon
from alerts.reading import Tier, model_text, read
from alerts.reading_model import ReadingModel, load_reading_model
from benchmarks.bench_reading import CORPORA, load_corpus

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import train_reading_model as training  # noqa: E402

STORED = ROOT / "config" / "reading" / "model-v3.json"


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, dict[str, Any]]:
    texts, labels, provenance = training.training_texts()
    pipeline = training.fit(texts, labels)
    return pipeline, training.export(pipeline, provenance)


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    lexicon = training.reading_lexicon()
    return [model_text(case.text, lexicon) for case in load_corpus(CORPORA["final"])]


def _model(exported: dict[str, Any], tmp_path: Path) -> ReadingModel:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(exported), encoding="utf-8")
    return load_reading_model(path)


def test_plain_python_scoring_equals_scikit_learn(
    fitted: tuple[Any, dict[str, Any]], held_out: list[str], tmp_path: Path
) -> None:
    pipeline, exported = fitted
    model = _model(exported, tmp_path)
    expected = pipeline.predict_proba(held_out)[:, 1]
    for text, want in zip(held_out, expected, strict=True):
        assert model.emergency_probability(text) == pytest.approx(want, abs=1e-6), text


def test_the_stored_weights_are_what_training_on_the_current_corpora_gives(
    fitted: tuple[Any, dict[str, Any]], held_out: list[str]
) -> None:
    pipeline, exported = fitted
    stored = load_reading_model(STORED)
    assert list(stored.trained_on) == exported["trained_on"], "retrain: scripts/train_reading_model.py"
    expected = pipeline.predict_proba(held_out)[:, 1]
    for text, want in zip(held_out, expected, strict=True):
        # A loose bound: another scikit-learn release may differ in the last digits, never in the reading.
        assert stored.emergency_probability(text) == pytest.approx(want, abs=1e-3)


def test_the_model_reads_only_what_the_vocabulary_did_not(lexicon_v3: Any) -> None:
    net = lexicon_v3.net
    assert net is not None and net.concept == "unsure"
    named = read("I can't feel my legs", lexicon_v3)
    assert [f.concept for f in named.findings] == ["neuro"]  # the vocabulary's reading stands alone
    assert read("no", lexicon_v3).findings == ()  # answers are never second-guessed
    assert read("thanks see you tuesday", lexicon_v3).findings == ()


# Held-out wording (written for this test, in no corpus) that no pattern of the vocabulary reads.
OBLIQUE = [
    "dad went grey and sweaty and says his chest feels like a weight",
    "she is slumped in the chair and we cant get sense out of her",
    "woke up and my left side just isnt doing what i tell it",
    "desde anoche siento la cintura para abajo como ajena",
]


@pytest.mark.parametrize("text", OBLIQUE)
def test_a_message_only_the_model_flags_is_an_urgent_unsure_naming_the_model(
    lexicon_v3: Any, text: str
) -> None:
    assert read(text, dataclasses.replace(lexicon_v3, net=None)).findings == ()  # the vocabulary alone
    (finding,) = read(text, lexicon_v3).findings
    assert finding.concept == "unsure" and finding.tier is Tier.EMERGENCY
    assert finding.pattern.startswith("reading-model-v3 p=")


@pytest.fixture(scope="module")
def lexicon_v3() -> Any:
    return load_lexicon(ROOT / "config" / "reading" / "symptoms-v3.yaml")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"file": "model-v3.json", "threshold": 1.5, "concept": "unsure"}, "threshold"),
        ({"file": "model-v3.json", "threshold": 0.6, "concept": "nonesuch"}, "not defined"),
        (
            {"file": "model-v3.json", "threshold": 0.6, "concept": "unsure", "beside_warnings": "yes"},
            "beside_warnings must be true or false",
        ),
        ({"file": "missing.json", "threshold": 0.6, "concept": "unsure"}, "not a reading model"),
        ({"threshold": 0.6}, "needs file"),
    ],
)
def test_a_bad_model_section_stops_loading_naming_the_problem(
    tmp_path: Path, model: dict[str, Any], message: str
) -> None:
    import yaml

    source = ROOT / "config" / "reading" / "symptoms-v3.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["model"] = model
    (tmp_path / "model-v3.json").write_bytes(STORED.read_bytes())
    bad = tmp_path / "symptoms-v3.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(LexiconError, match=message):
        load_lexicon(bad)


@dataclass(frozen=True)
class _Sure:
    """A stand-in model that is always sure: the test is about when the net runs, not what it thinks."""

    label: str = "always-sure"

    def emergency_probability(self, words: str) -> float:
        return 0.99


def test_the_model_also_reads_a_message_whose_findings_are_all_warnings(lexicon_v3: Any) -> None:
    # A warning (a funeral) beside words no pattern knows: symptoms-v3 lets the model read the rest.
    text = "sorted the funeral and gave the rings away, tomorrow is as good a day as any"
    assert lexicon_v3.net.beside_warnings
    sure = dataclasses.replace(lexicon_v3, net=dataclasses.replace(lexicon_v3.net, model=_Sure()))
    concepts = [f.concept for f in read(text, sure).findings]
    assert concepts == ["unsure", "death_or_admission"]
    # Without it (symptoms-v2's behaviour) the warning stands alone, whatever the model would say.
    off = dataclasses.replace(sure, net=dataclasses.replace(sure.net, beside_warnings=False))
    assert [f.concept for f in read(text, off).findings] == ["death_or_admission"]
    # An emergency the vocabulary named is never second-guessed.
    assert [f.concept for f in read("I can't feel my legs", sure).findings] == ["neuro"]
