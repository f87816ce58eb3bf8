"""Patient-facing texts outside the questionnaire (config/texts.yaml), by language.

Numbers patients are told to call come from settings, never from the texts: `load_texts(path, **defaults)`
binds them once (emergency_number, crisis_line, oncology_24h_phone) and every `Texts.get` can use them
without the caller passing them; a value passed to `get` wins.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REQUIRED = (
    "reprompt_yes_no",
    "reprompt_integer",
    "reprompt_multi_choice",
    "reprompt_multi_choice_none",
    "reprompt_free_text",
    "reminder_prefix",
    "closing",
    "acknowledgement",
    "help",
    "opt_out",
    "opt_in",
    "callback",
    "safety",
    "crisis",
    "unsure",
    "callback_out_of_hours",
    "acknowledgement_out_of_hours",
)

# Placeholders bound once at load from settings.
BOUND_PLACEHOLDERS = frozenset({"emergency_number", "crisis_line", "oncology_24h_phone"})
# Every placeholder a text may use: the bound ones and those callers pass to `get`.
KNOWN_PLACEHOLDERS = BOUND_PLACEHOLDERS | {"clinic_phone", "minimum", "maximum"}


class TextsError(ValueError):
    pass


@dataclass(frozen=True)
class Texts:
    by_language: dict[str, dict[str, str]]
    defaults: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, language: str, **values: Any) -> str:
        table = self.by_language.get(language) or self.by_language["en"]
        return table[key].format(**{**self.defaults, **values})


def _check_placeholders(source: str, language: str, key: str, text: str, bound: Mapping[str, str]) -> None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TextsError(f"{source}: language {language}, text {key}: {exc}") from None
    for _, name, format_spec, conversion in parsed:
        if name is None:
            continue
        if name not in KNOWN_PLACEHOLDERS:
            raise TextsError(
                f"{source}: language {language}, text {key}: unknown placeholder {{{name}}}"
                f" (known: {', '.join(sorted(KNOWN_PLACEHOLDERS))})"
            )
        if name in BOUND_PLACEHOLDERS and name not in bound:
            # Caught at start-up, not when a safety text fails to render.
            raise TextsError(f"{source}: language {language}, text {key}: {{{name}}} has no value bound")
        if format_spec or conversion:
            raise TextsError(f"{source}: language {language}, text {key}: write {{{name}}} plainly")


def load_texts(path: Path, **defaults: str) -> Texts:
    unknown = sorted(set(defaults) - KNOWN_PLACEHOLDERS)
    if unknown:
        raise TextsError(f"load_texts: cannot bind {', '.join(unknown)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "en" not in data:
        raise TextsError(f"{path.name}: needs an 'en' table")
    for language, table in data.items():
        if not isinstance(table, dict):
            raise TextsError(f"{path.name}: language {language} must be a table of texts")
        missing = [key for key in REQUIRED if key not in table]
        if missing:
            raise TextsError(f"{path.name}: language {language} lacks {', '.join(missing)}")
        for key, text in table.items():
            _check_placeholders(path.name, str(language), str(key), str(text), defaults)
    return Texts(
        {lang: {k: str(v) for k, v in table.items()} for lang, table in data.items()},
        dict(defaults),
    )
