"""Patient-facing texts outside the questionnaire (config/texts.yaml), by language."""

from __future__ import annotations

from dataclasses import dataclass
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
)


class TextsError(ValueError):
    pass


@dataclass(frozen=True)
class Texts:
    by_language: dict[str, dict[str, str]]

    def get(self, key: str, language: str, **values: Any) -> str:
        table = self.by_language.get(language) or self.by_language["en"]
        return table[key].format(**values)


def load_texts(path: Path) -> Texts:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "en" not in data:
        raise TextsError(f"{path.name}: needs an 'en' table")
    for language, table in data.items():
        missing = [key for key in REQUIRED if key not in (table or {})]
        if missing:
            raise TextsError(f"{path.name}: language {language} lacks {', '.join(missing)}")
    return Texts({lang: {k: str(v) for k, v in table.items()} for lang, table in data.items()})
