"""A second reader for wording no pattern knows: a linear text model learned from the labelled corpora.

The vocabulary (alerts/reading.py) reads what it has been taught and is exact about negation, other people
and time. On a corpus by an author it has never seen it misses emergencies told obliquely. A bag of
character and word n-grams, weighted by logistic regression on the development corpora, generalises
differently: measured on corpora held out from its training, adding it as a net raised emergency
sensitivity by 5 to 11 points at a cost of about 3 points of quiet specificity (docs/benchmarks.md).

It is only a net: it runs when the vocabulary read nothing, and what it raises is an urgent "unsure" for a
nurse to read, never a named symptom. Pure and deterministic. The weights are data
(config/reading/model-v*.json, written by scripts/train_reading_model.py with scikit-learn); scoring here is
plain Python that reproduces scikit-learn's TfidfVectorizer (char_wb and word analyzers, sublinear tf, l2
norm) and LogisticRegression exactly, so the service needs no machine-learning library at run time.
tests/unit/test_reading_model.py checks the parity and that the weights match the corpora they name.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_WHITE_SPACES = re.compile(r"\s\s+")
_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


class ReadingModelError(ValueError):
    pass


@dataclass(frozen=True)
class _Features:
    analyzer: str  # "char_wb" or "word"
    ngram_range: tuple[int, int]
    weights: Mapping[str, tuple[float, float]]  # n-gram → (idf, coefficient)

    def ngrams(self, text: str) -> list[str]:
        low, high = self.ngram_range
        if self.analyzer == "char_wb":
            out: list[str] = []
            for word in _WHITE_SPACES.sub(" ", text).split():
                padded = f" {word} "
                for n in range(low, high + 1):
                    offset = 0
                    out.append(padded[offset : offset + n])
                    while offset + n < len(padded):
                        offset += 1
                        out.append(padded[offset : offset + n])
                    if offset == 0:  # a word shorter than n is counted once
                        break
            return out
        tokens = _WORD.findall(text)
        return [" ".join(tokens[i : i + n]) for n in range(low, high + 1) for i in range(len(tokens) - n + 1)]

    def contribution(self, text: str) -> float:
        """coef · x for the l2-normalised, sublinear tf-idf vector of the text."""
        counts = Counter(g for g in self.ngrams(text) if g in self.weights)
        if not counts:
            return 0.0
        values = {g: (1.0 + math.log(c)) * self.weights[g][0] for g, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in values.values()))
        return sum(v * self.weights[g][1] for g, v in values.items()) / norm


@dataclass(frozen=True, eq=False)
class ReadingModel:
    name: str
    version: int
    intercept: float
    features: tuple[_Features, ...]
    trained_on: tuple[Mapping[str, object], ...]  # corpus path, sha256 and size, for provenance

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def emergency_probability(self, words: str) -> float:
        """P(emergency) for a message's normalised words (alerts.reading.model_text)."""
        decision = self.intercept + sum(f.contribution(words) for f in self.features)
        return 1.0 / (1.0 + math.exp(-decision))


def load_reading_model(path: Path) -> ReadingModel:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        features = tuple(
            _Features(
                analyzer=str(part["analyzer"]),
                ngram_range=(int(part["ngram_range"][0]), int(part["ngram_range"][1])),
                weights={g: (float(w[0]), float(w[1])) for g, w in part["weights"].items()},
            )
            for part in data["features"]
        )
        model = ReadingModel(
            name=str(data["name"]),
            version=int(data["version"]),
            intercept=float(data["intercept"]),
            features=features,
            trained_on=tuple(data.get("trained_on", ())),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ReadingModelError(f"{path.name}: not a reading model ({exc})") from None
    if any(f.analyzer not in ("char_wb", "word") for f in features):
        raise ReadingModelError(f"{path.name}: analyzers must be char_wb or word")
    return model
