"""Train the reader's text model (alerts/reading_model.py) on the development corpora and write its weights.

    python scripts/train_reading_model.py            # writes config/reading/model-v<VERSION>.json
    python scripts/train_reading_model.py --check    # exit 1 if the file is not what training gives now

Only development corpora are used: `final`, `final-2 (blind)` and `final-3 (blind)` stay out, so their
figures remain those of unseen wording. Deterministic: the same corpora always give the same file. Needs
scikit-learn (a dev dependency); the service itself only reads the JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.lexicon import load_lexicons  # noqa: E402
from alerts.reading import Lexicon, model_text  # noqa: E402
from benchmarks.bench_reading import CORPORA, load_corpus  # noqa: E402

NAME, VERSION = "reading-model", 3
OUTPUT = ROOT / "config" / "reading" / f"model-v{VERSION}.json"
TRAINING = (
    "development",
    "development-2",
    "development-3",
    "development-4",
    "development-5",
    "development-6",
)
CHAR: dict[str, Any] = {"analyzer": "char_wb", "ngram_range": (3, 5), "min_df": 2}
WORD: dict[str, Any] = {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1}
C = 16.0  # chosen by leave-one-corpus-out (docs/benchmarks.md); class_weight balanced


def reading_lexicon() -> Lexicon:
    """The vocabulary whose normalised words the model reads (alerts.reading.model_text)."""
    return load_lexicons(ROOT / "config" / "reading")[("symptoms", VERSION)]


def training_texts() -> tuple[list[str], list[bool], list[dict[str, Any]]]:
    lexicon = reading_lexicon()
    texts: list[str] = []
    labels: list[bool] = []
    provenance = []
    for name in TRAINING:
        path = CORPORA[name]
        cases = load_corpus(path)
        texts += [model_text(c.text, lexicon) for c in cases]
        labels += [c.tier == "emergency" for c in cases]
        provenance.append(
            {
                "corpus": str(path.relative_to(ROOT)),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "texts": len(cases),
            }
        )
    return texts, labels, provenance


def fit(texts: list[str], labels: list[bool]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(**CHAR, sublinear_tf=True),
        TfidfVectorizer(**WORD, sublinear_tf=True),
    )
    return make_pipeline(features, LogisticRegression(C=C, class_weight="balanced", max_iter=5000)).fit(
        texts, labels
    )


def export(pipeline: Any, provenance: list[dict[str, Any]]) -> dict[str, Any]:
    union, regression = pipeline.steps[0][1], pipeline.steps[1][1]
    coef = regression.coef_[0]
    parts, offset = [], 0
    for (_, vectorizer), spec in zip(union.transformer_list, (CHAR, WORD), strict=True):
        vocabulary = vectorizer.vocabulary_
        weights = {
            gram: [round(float(vectorizer.idf_[i]), 8), round(float(coef[offset + i]), 8)]
            for gram, i in sorted(vocabulary.items())
        }
        parts.append(
            {"analyzer": spec["analyzer"], "ngram_range": list(spec["ngram_range"]), "weights": weights}
        )
        offset += len(vocabulary)
    return {
        "name": NAME,
        "version": VERSION,
        "about": "Logistic regression on tf-idf character (3-5, word-bounded) and word (1-2) n-grams of "
        "the reader's normalised words (alerts.reading.model_text, symptoms-v3); P(emergency). Written by "
        "scripts/train_reading_model.py; do not edit by hand.",
        "params": {"C": C, "class_weight": "balanced", "sublinear_tf": True, "char_min_df": 2},
        "trained_on": provenance,
        "intercept": round(float(regression.intercept_[0]), 8),
        "features": parts,
    }


def build() -> str:
    texts, labels, provenance = training_texts()
    return json.dumps(export(fit(texts, labels), provenance), ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stored weights are out of date")
    args = parser.parse_args()
    text = build()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/train_reading_model.py")
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
