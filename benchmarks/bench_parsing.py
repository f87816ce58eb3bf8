"""Micro: reading replies. `parse_reply` per call over a corpus of realistic replies for each answer kind
(and one 10,000-character reply), `classify_keyword` over the same texts, and `alerts.rules.evaluate` for
one check-in's answers. Pure functions, no servers. `python -m benchmarks.bench_parsing [--full]`.
"""

from __future__ import annotations

from itertools import cycle
from typing import Any

from benchmarks import micro
from benchmarks.harness import table
from benchmarks.micro import HEADER, per_call, row

# Replies as patients send them: short, mixed case, emoji, Spanish, numbers in words, free text.
CORPUS: dict[str, list[str]] = {
    "yes_no": [
        "yes",
        "No",
        "YES!",
        "nope",
        "y",
        "si",
        "No thanks",
        "yes 😞",
        "Sí, un poco",
        "not really",
        "yeah I think so",
        "no, nothing new",
        "Yes but only at night",
        "nah",
        "n",
    ],
    "integer": [
        "7",
        "0",
        "10",
        "about a 6",
        "seven",
        "6/10",
        "3-4",
        "8 today",
        "siete",
        "pain is 5",
        "around 4 or 5",
        "mild",
        "severe",
        "2.5",
        "none",
    ],
    "multi_choice": [
        "1 3",
        "2",
        "1,2,4",
        "0",
        "none",
        "1 and 3",
        "3, 5",
        "all",
        "1 2 3 4 5",
        "back and hips 1 3",
        "5",
        "nada",
        "4 6",
        "2 y 3",
        "6",
    ],
    "free_text": [
        "No",
        "nothing else thanks",
        "My back has been hurting more when I walk upstairs",
        "Can someone call me about my prescription?",
        "no gracias",
        "I fell last week but I'm fine",
    ],
}
KEYWORD_TEXTS = [
    "STOP",
    "stop texting me please",
    "HELP",
    "start",
    "call me",
    "nurse",
    "yes",
    "7",
    "the pain won't stop",
    "please don't text me anymore",
    "necesito ayuda",
    "I quit smoking",
    "no",
    "1 3",
]


def specs() -> dict[str, Any]:
    from pro_service.replies import AnswerSpec

    return {
        "yes_no": AnswerSpec(kind="yes_no"),
        "integer": AnswerSpec(kind="integer", minimum=0, maximum=10, severity_words=True),
        "multi_choice": AnswerSpec(kind="multi_choice", choices=(1, 2, 3, 4, 5, 6), none_allowed=True),
        "free_text": AnswerSpec(kind="free_text"),
    }


def check_in_answers() -> tuple[dict[str, Any], Any, Any]:
    """A full check-in with a few red flags, the history and the active ruleset (loaded from config/)."""
    from alerts.rules import AnswerView, History
    from alerts.ruleset import load_rulesets
    from config.settings import ROOT
    from pro_service.instruments import load_instruments

    instruments = load_instruments(ROOT / "config" / "instruments")
    rulesets = load_rulesets(ROOT / "config" / "rules", instruments.item_kinds())
    ruleset = max(rulesets.values(), key=lambda r: r.version)
    values: dict[str, Any] = {
        "pain_new": True,
        "pain_worst": 8,
        "pain_site": [1, 3],
        "pain_at_rest": True,
        "sudden_immobile": False,
        "neuro": False,
        "bladder_bowel": False,
        "calcium_sx": [1, 2],
        "anything_else": "my back is worse at night",
    }
    answers = {
        code: AnswerView(code, "answered", value, str(value), f"question {code}")
        for code, value in values.items()
    }
    return answers, History(previous_pain_worst=5, consecutive_expired_unanswered=0), ruleset


def run(full: bool = False) -> dict[str, Any]:
    from alerts.rules import evaluate
    from pro_service.replies import classify_keyword, parse_reply

    repeat = 2000 if full else 300
    results: dict[str, dict[str, float]] = {}
    rows = []
    for kind, spec in specs().items():
        texts = cycle(CORPUS[kind])
        result = per_call(
            lambda spec=spec, texts=texts: parse_reply(next(texts), spec), repeat=repeat, batch=20
        )
        results[f"parse_reply {kind}"] = result
        rows.append(row(f"parse_reply {kind} ({len(CORPUS[kind])} replies)", result))
    long_reply = ("My pain is about a seven today and my back hurts when I walk. " * 160)[:10_000]
    for kind in ("yes_no", "integer", "multi_choice", "free_text"):
        spec = specs()[kind]
        result = per_call(lambda spec=spec: parse_reply(long_reply, spec), repeat=max(20, repeat // 10))
        results[f"parse_reply {kind} 10,000 chars"] = result
        rows.append(row(f"parse_reply {kind}, 10,000 chars", result))
    texts = cycle(KEYWORD_TEXTS)
    result = per_call(lambda: classify_keyword(next(texts)), repeat=repeat, batch=20)
    results["classify_keyword"] = result
    rows.append(row(f"classify_keyword ({len(KEYWORD_TEXTS)} texts)", result))
    result = per_call(lambda: classify_keyword(long_reply), repeat=max(20, repeat // 10))
    results["classify_keyword 10,000 chars"] = result
    rows.append(row("classify_keyword, 10,000 chars", result))
    answers, history, ruleset = check_in_answers()
    result = per_call(lambda: evaluate(answers, history, ruleset, complete=True), repeat=repeat, batch=10)
    results["evaluate complete"] = result
    rows.append(row("rules.evaluate, completed check-in", result))
    result = per_call(lambda: evaluate(answers, history, ruleset, complete=False), repeat=repeat, batch=10)
    results["evaluate early"] = result
    rows.append(row("rules.evaluate, early rules (in progress)", result))
    table("Parsing and rules (per call)", HEADER, rows)
    return results


def main() -> None:
    micro.main(__doc__, run)


if __name__ == "__main__":
    main()
