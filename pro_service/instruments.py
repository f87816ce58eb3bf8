"""Questionnaire definitions: loaded from config/instruments/*.yaml and validated at start-up.

An instrument is data (items, answer kinds, texts per language, skip logic), so administrators can add one
without code. Each has a version; a check-in keeps the version it started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pro_service.replies import AnswerSpec, normalize
from pro_service.sms.encoding import segments

LANGUAGES = ("en", "es")


class InstrumentError(ValueError):
    """A questionnaire definition is invalid; the message names the file and the item."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkipIf(_Model):
    item: str
    equals: bool | int


class Item(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    kind: Literal["yes_no", "integer", "multi_choice", "free_text"]
    text: dict[str, str]
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[int, ...] = ()
    none_allowed: bool = False
    severity_words: bool = False
    # multi_choice: words patients may use instead of a choice's number, per choice (any language).
    choice_words: dict[int, tuple[str, ...]] = Field(default_factory=dict)
    skip_if: SkipIf | None = None
    # A red-flag question: only a clean yes or no is an answer; anything else is an urgent unknown
    # raised in this alert category at once (ARCHITECTURE rule 10).
    red_flag: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")

    @model_validator(mode="after")
    def _kind_fields(self) -> Item:
        if self.red_flag is not None and self.kind not in ("yes_no", "multi_choice"):
            raise ValueError(f"item {self.code}: only a yes_no or multi_choice item can be a red flag")
        unknown = sorted(set(self.choice_words) - set(self.choices))
        if unknown:
            raise ValueError(f"item {self.code}: choice_words for {unknown}, which are not among its choices")
        for words in self.choice_words.values():
            for word in words:
                stem = word.removesuffix("*")
                if not stem or normalize(stem) != stem:
                    raise ValueError(
                        f"item {self.code}: choice word {word!r} must be lower case, without accents or "
                        "punctuation (a trailing * marks a stem)"
                    )
        if self.kind == "integer" and (self.minimum is None or self.maximum is None):
            raise ValueError(f"item {self.code}: an integer item needs minimum and maximum")
        if self.kind == "multi_choice" and not self.choices:
            raise ValueError(f"item {self.code}: a multi_choice item needs choices")
        missing = [lang for lang in LANGUAGES if lang not in self.text]
        if missing:
            raise ValueError(f"item {self.code}: text missing for language(s) {', '.join(missing)}")
        return self

    @property
    def spec(self) -> AnswerSpec:
        return AnswerSpec(
            kind=self.kind,
            minimum=self.minimum,
            maximum=self.maximum,
            choices=self.choices,
            none_allowed=self.none_allowed,
            severity_words=self.severity_words,
            choice_words=tuple(
                (word, choice) for choice, words in sorted(self.choice_words.items()) for word in words
            ),
        )


class Instrument(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")
    version: int = Field(ge=1)
    title: dict[str, str]
    items: tuple[Item, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        codes = [item.code for item in self.items]
        duplicates = {code for code in codes if codes.count(code) > 1}
        if duplicates:
            raise ValueError(f"duplicate item code(s): {', '.join(sorted(duplicates))}")
        for position, item in enumerate(self.items):
            if item.skip_if is not None and item.skip_if.item not in codes[:position]:
                raise ValueError(
                    f"item {item.code}: skip_if refers to {item.skip_if.item}, not an earlier item"
                )
            for lang, text in item.text.items():
                rendered = self.render_question(item.code, lang)
                if segments(rendered) > 1:
                    raise ValueError(
                        f"item {item.code} ({lang}) does not fit one SMS ({len(rendered)} chars): {text!r}"
                    )
        return self

    @property
    def item_codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items)

    def item(self, code: str) -> Item:
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)

    def render_question(self, code: str, language: str) -> str:
        """The question as the patient sees it, with progress ("2/9 ")."""
        position = self.item_codes.index(code) + 1
        item = self.item(code)
        text = item.text.get(language) or item.text["en"]
        return f"{position}/{len(self.items)} {text}"


@dataclass(frozen=True)
class InstrumentRegistry:
    """Every loaded version of every instrument; `latest` is what new check-ins use."""

    by_key: Mapping[tuple[str, int], Instrument]

    def get(self, code: str, version: int) -> Instrument:
        return self.by_key[(code, version)]

    def latest(self, code: str) -> Instrument | None:
        versions = [inst for (c, _v), inst in self.by_key.items() if c == code]
        return max(versions, key=lambda inst: inst.version, default=None)

    def all_latest(self) -> list[Instrument]:
        codes = sorted({code for code, _ in self.by_key})
        return [inst for code in codes if (inst := self.latest(code)) is not None]

    def items_by_version(self) -> dict[tuple[str, int], dict[str, str]]:
        """(instrument code, version) → {item code: answer kind}: a ruleset is checked against its own."""
        return {key: {item.code: item.kind for item in inst.items} for key, inst in self.by_key.items()}

    def choices_by_version(self) -> dict[tuple[str, int], dict[str, tuple[int, ...]]]:
        """(instrument code, version) → {multiple-choice item: its choices}; rules are checked against it."""
        return {
            key: {item.code: item.choices for item in inst.items if item.kind == "multi_choice"}
            for key, inst in self.by_key.items()
        }

    def item_kinds(self) -> dict[str, str]:
        """Item code → answer kind across all instruments (rules are validated against it)."""
        kinds: dict[str, str] = {}
        for inst in self.by_key.values():
            for item in inst.items:
                kinds[item.code] = item.kind
        return kinds


def load_instrument(path: Path) -> Instrument:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Instrument.model_validate(data)
    except (ValidationError, yaml.YAMLError) as exc:
        raise InstrumentError(f"{path.name}: {exc}") from None


def load_instruments(directory: Path) -> InstrumentRegistry:
    found: dict[tuple[str, int], Instrument] = {}
    for path in sorted(directory.glob("*.y*ml")):
        instrument = load_instrument(path)
        key = (instrument.code, instrument.version)
        if key in found:
            raise InstrumentError(
                f"{path.name}: {instrument.code} version {instrument.version} is defined twice"
            )
        found[key] = instrument
    if not found:
        raise InstrumentError(f"no instrument definitions in {directory}")
    return InstrumentRegistry(found)
