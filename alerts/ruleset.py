"""Load and validate versioned YAML rulesets.

A ruleset is clinical configuration: a mistake in it silently stops alerts. So the loader is strict
and every error names the file, the rule and what is wrong, in words a clinician can act on.
Unknown keys are errors (a typo like `rationle:` must not pass), duplicate YAML keys are errors
(PyYAML would silently keep the last), and an operator must fit the answer kind of its item. A lab
condition must name LOINC codes the service understands (alerts.labs) and write its threshold in their
canonical unit, stated beside it, so that a threshold in mg/dL can never be compared with mmol/L.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeGuard

import yaml

from alerts.labs import CANONICAL_UNIT, LAB_NAMES
from alerts.rules import (
    BASELINE_FACTS,
    BASELINE_VALUE_FIELDS,
    HISTORY_COUNTERS,
    MESSAGE_CATEGORY,
    PREVIOUS_VALUE_FIELDS,
    AboveBaseline,
    AllOf,
    AnyOf,
    BaselineIs,
    BaselineRecorded,
    Combination,
    Compare,
    Condition,
    CountOf,
    HistoryAtLeast,
    Includes,
    Is,
    LabMissing,
    LabOperator,
    LabRise,
    LabThreshold,
    MessageRule,
    Not,
    RiseFromPrevious,
    RiseOverRecent,
    Rule,
    Urgency,
    not_warning_word_problem,
    phrase_problem,
    walk,
)

ANSWER_KINDS = ("yes_no", "integer", "multi_choice", "free_text")

# Which operators fit which answer kind. free_text has none: free text is read by a `kind: message` rule.
_OPERATORS_BY_KIND: Mapping[str, tuple[str, ...]] = {
    "yes_no": ("is",),
    "integer": ("gte", "lte", "eq", "rise_from_previous", "rise_over_recent", "above_baseline"),
    "multi_choice": ("includes", "includes_any", "count_of"),
    "free_text": (),
}
_ITEM_OPERATORS = (
    "is",
    "gte",
    "lte",
    "eq",
    "rise_from_previous",
    "rise_over_recent",
    "above_baseline",
    "includes",
    "includes_any",
    "count_of",
)
_COMBINATORS = ("any", "all", "not")
# Lab conditions, flat like item conditions:
# {lab: <code or [codes]>, above: 3.0, unit: mmol/L, within_days: 14}.
_LAB_KINDS = ("lab", "lab_missing", "lab_rise")
_LAB_OPERATORS: tuple[LabOperator, ...] = ("above", "at_least", "below", "at_most", "between")
_LAB_KEYS: Mapping[str, frozenset[str]] = {
    "lab": frozenset({"lab", "unit", "within_days", *_LAB_OPERATORS}),
    "lab_missing": frozenset({"lab_missing", "within_days"}),
    "lab_rise": frozenset({"lab_rise", "by_fraction", "within_days"}),
}
_LAB_EXAMPLES: Mapping[str, str] = {
    "lab": "above: 3.0, unit: mmol/L, within_days: 14",
    "lab_missing": "within_days: 14",
    "lab_rise": "by_fraction: 0.25, within_days: 90",
}
_MAX_RISE_FRACTION = 5  # 500%; a larger number is almost certainly a percentage written as a fraction

_TOP_KEYS = frozenset(
    {"name", "version", "instrument", "instrument_version", "rules", "combinations", "messages"}
)
_RULE_KEYS = frozenset({"id", "category", "domain", "urgency", "early", "when", "rationale", "kind", "read"})
# UKONS-style clinical domains a rule's category belongs to: "two amber domains make a red" counts these.
DOMAINS = ("spinal_pain", "neurological", "fracture", "calcium", "other")
_READ_KEYS = frozenset({"items", "unreadable"})
_COMBINATION_KEYS = frozenset(
    {
        "id",
        "enabled",
        "when_distinct_categories_at_least",
        "when_distinct_domains_at_least",
        "of_urgency",
        "raise_to",
        "categories",
        "rationale",
    }
)
_MESSAGES_KEYS = frozenset(
    {
        "urgency",
        "warning_urgency",
        "callback_urgency",
        "rationale",
        "callback_rationale",
        "warning_phrases",
        "not_warning_words",
    }
)

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*$")


class RulesetError(ValueError):
    """A ruleset file that must not be used; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class Ruleset:
    name: str
    version: int
    instrument: str
    rules: tuple[Rule | MessageRule, ...]
    combinations: tuple[Combination, ...]
    warning_phrases: dict[str, tuple[str, ...]] = field(hash=False)  # language -> phrases
    message_urgency: Urgency
    message_warning_urgency: Urgency
    callback_urgency: Urgency
    message_rationale: str  # for a message outside a check-in
    callback_rationale: str
    # Words a phrase is a prefix of that must not count as that phrase ("number" for "numb").
    not_warning_words: dict[str, tuple[str, ...]] = field(hash=False)
    # The instrument's items (code -> answer kind) in question order; evidence is listed in this order.
    item_kinds: dict[str, str] = field(hash=False)
    source: str = ""
    # The questionnaire version the rules are written for (the ruleset's `instrument_version:`, 1 when
    # absent): a patient on this ruleset is asked that version.
    instrument_version: int = 1
    # category -> clinical domain (rules' `domain:`); empty when the ruleset names no domains.
    category_domains: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(rule.category for rule in self.rules)

    @property
    def lab_codes(self) -> frozenset[str]:
        """LOINC codes the lab conditions read: the results a caller should pass in History.labs."""
        return frozenset(code for condition in self._lab_conditions() for code in _codes(condition))

    @property
    def lab_lookback_days(self) -> int:
        """The longest lab window, in days (0 without lab conditions): how far back to load results.
        Older results only add the 'last result' shown beside a missing-result finding."""
        return max((c.within_days for c in self._lab_conditions()), default=0)

    def _lab_conditions(self) -> list[LabThreshold | LabMissing | LabRise]:
        return [
            part
            for rule in self.rules
            if isinstance(rule, Rule)
            for part in walk(rule.when)
            if isinstance(part, LabThreshold | LabMissing | LabRise)
        ]


def _codes(condition: LabThreshold | LabMissing | LabRise) -> tuple[str, ...]:
    return (condition.code,) if isinstance(condition, LabRise) else condition.codes


def load_ruleset(
    path: Path,
    known_items: Mapping[str, str],
    *,
    instrument_items: Mapping[tuple[str, int], Mapping[str, str]] | None = None,
    instrument_choices: Mapping[tuple[str, int], Mapping[str, tuple[int, ...]]] | None = None,
) -> Ruleset:
    """Read and validate one ruleset file. known_items: item code -> answer kind. instrument_items, when
    given, holds each questionnaire version's items: the ruleset is then checked against the items of
    the version it names (`instrument` + `instrument_version`), and naming one not installed is an error."""
    path = Path(path)
    for code, kind in known_items.items():
        if kind not in ANSWER_KINDS:
            raise RulesetError(f"known_items: item {code!r} has unknown answer kind {kind!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesetError(f"{path}: cannot read ruleset: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RulesetError(f"{path}: not valid YAML: {exc}") from exc
    choices: Mapping[str, tuple[int, ...]] = {}
    if isinstance(data, dict):
        key = (data.get("instrument"), data.get("instrument_version", 1))
        if instrument_items is not None:
            if key not in instrument_items:
                raise RulesetError(
                    f"{path}: ruleset: instrument {key[0]!r} version {key[1]!r} is not installed "
                    "(config/instruments/); the rules would name questions nobody is asked"
                )
            known_items = instrument_items[key]  # type: ignore[index]
        choices = (instrument_choices or {}).get(key, {})  # type: ignore[arg-type]
    return _Parser(path, dict(known_items), dict(choices)).ruleset(data)


def load_rulesets(
    directory: Path,
    known_items: Mapping[str, str],
    *,
    instrument_items: Mapping[tuple[str, int], Mapping[str, str]] | None = None,
    instrument_choices: Mapping[tuple[str, int], Mapping[str, tuple[int, ...]]] | None = None,
) -> dict[tuple[str, int], Ruleset]:
    """Every *.yaml / *.yml ruleset in a directory, keyed by (name, version)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RulesetError(f"{directory}: ruleset directory does not exist")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not files:
        # No rulesets means no alerts at all: never a state to start in quietly.
        raise RulesetError(f"{directory}: no ruleset files (*.yaml) found")
    loaded: dict[tuple[str, int], Ruleset] = {}
    for path in files:
        ruleset = load_ruleset(
            path, known_items, instrument_items=instrument_items, instrument_choices=instrument_choices
        )
        key = (ruleset.name, ruleset.version)
        if key in loaded:
            raise RulesetError(
                f"{path}: ruleset {ruleset.name!r} version {ruleset.version} is already defined in "
                f"{loaded[key].source}; a changed ruleset needs a new version"
            )
        loaded[key] = ruleset
    return loaded


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Parser:
    def __init__(
        self, path: Path, known_items: dict[str, str], choices: dict[str, tuple[int, ...]] | None = None
    ) -> None:
        self.path = path
        self.items = known_items
        self.choices = choices or {}  # item -> its choices, when the questionnaire is known

    def check_choices(self, item: str, values: tuple[int, ...], where: str, label: str) -> None:
        """A choice the question does not offer can never be picked: the rule would never fire."""
        offered = self.choices.get(item)
        unknown = [v for v in values if offered is not None and v not in offered]
        if unknown:
            self.fail(
                where,
                f"{label}: {item!r} offers choices {', '.join(map(str, offered or ()))}, not "
                f"{', '.join(map(str, unknown))}; the rule could never fire",
            )

    def fail(self, where: str, problem: str) -> NoReturn:
        raise RulesetError(f"{self.path}: {where}: {problem}")

    # --- top level ---

    def ruleset(self, data: object) -> Ruleset:
        if not isinstance(data, dict):
            self.fail("ruleset", "expected a mapping with name, version, instrument, rules and messages")
        self.unknown_keys(data, _TOP_KEYS, "ruleset")
        name = self.slug(data.get("name"), "ruleset", "name")
        version = data.get("version")
        if not _is_int(version) or version < 1:
            self.fail("ruleset", f"version must be a whole number of 1 or more, got {version!r}")
        instrument = self.slug(data.get("instrument"), "ruleset", "instrument")
        instrument_version = data.get("instrument_version", 1)
        if not _is_int(instrument_version) or instrument_version < 1:
            self.fail(
                "ruleset",
                f"instrument_version must be a whole number of 1 or more, got {instrument_version!r}",
            )

        raw_rules = data.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            self.fail("ruleset", "rules must be a non-empty list")
        rules = tuple(self.rule(raw, index) for index, raw in enumerate(raw_rules))
        if not any(isinstance(r, MessageRule) and r.unreadable for r in rules):
            self.fail(
                "ruleset",
                "no `kind: message` rule reads unreadable answers (read: {unreadable: true}); "
                "unreadable replies would be silently dropped",
            )

        raw_combinations = data.get("combinations", [])
        if not isinstance(raw_combinations, list):
            self.fail("ruleset", "combinations must be a list")
        categories = frozenset(r.category for r in rules)
        domains = self.category_domains(rules)
        combinations = tuple(
            self.combination(raw, i, categories, domains) for i, raw in enumerate(raw_combinations)
        )

        ids: dict[str, str] = {}
        for kind, entry_id in [("rule", r.id) for r in rules] + [("combination", c.id) for c in combinations]:
            if entry_id in ids:
                self.fail(f"{kind} {entry_id!r}", f"duplicate rule id {entry_id!r}; every id must be unique")
            ids[entry_id] = kind

        messages = data.get("messages")
        if not isinstance(messages, dict):
            self.fail("messages", "missing `messages:` section (urgencies and warning phrases)")
        self.unknown_keys(messages, _MESSAGES_KEYS, "messages")
        message_urgency = self.urgency(messages.get("urgency"), "messages", "urgency")
        warning_urgency = self.urgency(messages.get("warning_urgency"), "messages", "warning_urgency")
        if warning_urgency.rank < message_urgency.rank:
            self.fail("messages", "warning_urgency must not be less urgent than urgency")
        callback_urgency = self.urgency(messages.get("callback_urgency"), "messages", "callback_urgency")
        message_rationale = self.rationale(messages.get("rationale"), "messages", "rationale")
        callback_rationale = self.rationale(
            messages.get("callback_rationale"), "messages", "callback_rationale"
        )
        phrases = self.phrases(messages.get("warning_phrases"), "warning_phrases", single_word=False)
        if not phrases:
            self.fail("messages", "warning_phrases must list phrases for at least one language")
        not_warning = self.phrases(
            messages.get("not_warning_words", {}), "not_warning_words", single_word=True
        )
        self.check_not_warning_words(phrases, not_warning)

        return Ruleset(
            name=name,
            version=version,
            instrument=instrument,
            rules=rules,
            combinations=combinations,
            warning_phrases=phrases,
            message_urgency=message_urgency,
            message_warning_urgency=warning_urgency,
            callback_urgency=callback_urgency,
            message_rationale=message_rationale,
            callback_rationale=callback_rationale,
            not_warning_words=not_warning,
            item_kinds=dict(self.items),
            source=str(self.path),
            instrument_version=instrument_version,
            category_domains=domains,
        )

    def category_domains(self, rules: tuple[Rule | MessageRule, ...]) -> dict[str, str]:
        """A category belongs to one domain: every rule of it names the same one (or, with no domains
        anywhere in the ruleset, none does)."""
        named = {r.category: r.domain for r in rules if isinstance(r, Rule) and r.domain is not None}
        if not named:
            return {}
        for rule in rules:
            if not isinstance(rule, Rule):
                continue
            if rule.domain is None:
                self.fail(
                    f"rule {rule.id!r}", "this ruleset names domains: every condition rule needs `domain:`"
                )
            if rule.domain != named[rule.category]:
                self.fail(
                    f"rule {rule.id!r}",
                    f"domain {rule.domain!r} differs from {named[rule.category]!r} of another rule of "
                    f"category {rule.category!r}; a category belongs to one domain",
                )
        return named

    # --- rules ---

    def rule(self, raw: object, index: int) -> Rule | MessageRule:
        if not isinstance(raw, dict):
            self.fail(f"rules[{index}]", "each rule must be a mapping with id, category, when and rationale")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            self.fail(
                f"rules[{index}]", f"missing or invalid id {rule_id!r} (lower-case letters, digits, - _ .)"
            )
        where = f"rule {rule_id!r}"
        self.unknown_keys(raw, _RULE_KEYS, where)
        rationale = raw.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            self.fail(where, "missing rationale: every rule must say, in words, why it exists and its source")
        category = raw.get("category")
        if not isinstance(category, str) or not _CATEGORY.match(category):
            self.fail(where, f"missing or invalid category {category!r} (lower_case_with_underscores)")
        early = raw.get("early", False)
        if not isinstance(early, bool):
            self.fail(where, f"early must be true or false, got {early!r}")
        kind = raw.get("kind", "condition")

        if kind == "message":
            return self.message_rule(raw, where, rule_id, category, rationale.strip(), early)
        if kind != "condition":
            self.fail(where, f"unknown kind {kind!r}; expected condition (the default) or message")
        if "read" in raw:
            self.fail(where, "`read:` belongs to `kind: message` rules")
        urgency = self.urgency(raw.get("urgency"), where, "urgency")
        if "when" not in raw:
            self.fail(where, "missing `when:` condition")
        domain = raw.get("domain")
        if domain is not None and domain not in DOMAINS:
            self.fail(where, f"unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")
        parsed = Rule(
            id=rule_id,
            category=category,
            urgency=urgency,
            rationale=rationale.strip(),
            when=self.condition(raw["when"], where, "when"),
            early=early,
            domain=domain,
        )
        if parsed.lab_only and early:
            self.fail(
                where,
                "early: true has no effect on a rule that reads only lab results: it runs when a result "
                "arrives, never during a check-in; remove `early:`",
            )
        return parsed

    def message_rule(
        self, raw: dict[str, Any], where: str, rule_id: str, category: str, rationale: str, early: bool
    ) -> MessageRule:
        for key in ("when", "urgency"):
            if key in raw:
                self.fail(
                    where, f"a message rule takes no `{key}:`; message urgencies are set under `messages:`"
                )
        if category != MESSAGE_CATEGORY:
            self.fail(where, f"a message rule's category must be {MESSAGE_CATEGORY!r}, got {category!r}")
        read = raw.get("read")
        if not isinstance(read, dict):
            self.fail(where, "a message rule needs `read: {items: [...], unreadable: true|false}`")
        self.unknown_keys(read, _READ_KEYS, f"{where}: read")
        items = read.get("items", [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            self.fail(where, "read.items must be a list of free-text item codes")
        for item in items:
            self.known_item(item, where, "read.items")
            if self.items[item] != "free_text":
                self.fail(where, f"read.items: {item!r} is {self.items[item]}, not free_text")
        unreadable = read.get("unreadable", False)
        if not isinstance(unreadable, bool):
            self.fail(where, f"read.unreadable must be true or false, got {unreadable!r}")
        if not items and not unreadable:
            self.fail(where, "a message rule that reads no items and no unreadable answers can never fire")
        return MessageRule(
            id=rule_id,
            category=category,
            rationale=rationale,
            items=tuple(items),
            unreadable=unreadable,
            early=early,
        )

    # --- conditions ---

    def condition(self, raw: object, where: str, at: str) -> Condition:
        if not isinstance(raw, dict) or not raw:
            self.fail(where, f"{at}: a condition must be a mapping such as {{item: neuro, is: true}}")
        if "item" in raw:
            return self.item_condition(raw, where, at)
        if "history" in raw:
            return self.history_condition(raw, where, at)
        if "baseline" in raw:
            return self.baseline_condition(raw, where, at)
        labs = [key for key in raw if key in _LAB_KINDS]
        if labs:
            return self.lab_condition(raw, labs, where, at)
        combinators = [key for key in raw if key in _COMBINATORS]
        if not combinators:
            self.fail(
                where,
                f"{at}: unknown operator {', '.join(map(repr, raw))}; "
                "a condition starts with item:, history:, baseline:, lab:, lab_missing:, lab_rise:, "
                "any:, all: or not:",
            )
        if len(raw) != 1:
            self.fail(
                where, f"{at}: {combinators[0]!r} must be alone in its mapping, found {sorted(map(str, raw))}"
            )
        (key,) = combinators
        value = raw[key]
        if key == "not":
            return Not(self.condition(value, where, f"{at}.not"))
        if not isinstance(value, list) or not value:
            self.fail(where, f"{at}.{key}: must be a non-empty list of conditions")
        inner = tuple(self.condition(c, where, f"{at}.{key}[{i}]") for i, c in enumerate(value))
        return AnyOf(inner) if key == "any" else AllOf(inner)

    def item_condition(self, raw: dict[str, Any], where: str, at: str) -> Condition:
        item = self.known_item(raw["item"], where, at)
        kind = self.items[item]
        operators = [key for key in raw if key != "item"]
        for op in operators:
            if op not in _ITEM_OPERATORS and op != "at_least":
                self.fail(
                    where,
                    f"{at}: unknown operator {op!r} on item {item!r}; "
                    f"operators: {', '.join(_ITEM_OPERATORS)}",
                )
        if "count_of" in operators:
            if sorted(operators) != ["at_least", "count_of"]:
                self.fail(where, f"{at}: count_of takes exactly `at_least:` beside it, found {operators}")
            op = "count_of"
        elif "at_least" in operators:
            self.fail(where, f"{at}: at_least goes with count_of (or history:), not alone")
        elif len(operators) != 1:
            self.fail(
                where, f"{at}: an item condition needs exactly one operator, found {operators or 'none'}"
            )
        else:
            (op,) = operators
        allowed = _OPERATORS_BY_KIND[kind]
        if op not in allowed:
            takes = (
                ", ".join(allowed)
                if allowed
                else "no operators (free text is read by a `kind: message` rule)"
            )
            self.fail(
                where, f"{at}: operator {op!r} does not fit item {item!r} ({kind}); {kind} items take {takes}"
            )
        value = raw[op]
        label = f"{at}: {op}"

        if op == "is":
            if not isinstance(value, bool):
                self.fail(where, f"{label} takes true or false, got {value!r}")
            return Is(item, value)
        if op in ("gte", "lte", "eq"):
            comparison: Literal["gte", "lte", "eq"] = "gte" if op == "gte" else "lte" if op == "lte" else "eq"
            return Compare(item, comparison, self.whole_number(value, where, label))
        if op == "rise_from_previous":
            if item not in PREVIOUS_VALUE_FIELDS:
                self.fail(
                    where,
                    f"{label}: the previous check-in's value is only known for "
                    f"{', '.join(PREVIOUS_VALUE_FIELDS)}, not {item!r}",
                )
            return RiseFromPrevious(item, self.whole_number(value, where, label, minimum=1))
        if op == "rise_over_recent":
            return RiseOverRecent(item, self.whole_number(value, where, label, minimum=1))
        if op == "above_baseline":
            if item not in BASELINE_VALUE_FIELDS:
                self.fail(
                    where,
                    f"{label}: a usual value is only recorded for "
                    f"{', '.join(BASELINE_VALUE_FIELDS)}, not {item!r}",
                )
            return AboveBaseline(item, self.whole_number(value, where, label, minimum=1))
        if op == "includes":
            single = (self.whole_number(value, where, label),)
            self.check_choices(item, single, where, label)
            return Includes(item, single)
        values = self.number_list(value, where, label)
        self.check_choices(item, values, where, label)
        if op == "includes_any":
            return Includes(item, values)
        at_least = self.whole_number(raw["at_least"], where, f"{at}: at_least", minimum=1)
        if at_least > len(values):
            self.fail(
                where,
                f"{at}: at_least {at_least} is more than the {len(values)} values counted; it can never fire",
            )
        return CountOf(item, values, at_least)

    def history_condition(self, raw: dict[str, Any], where: str, at: str) -> Condition:
        counter = raw["history"]
        if counter not in HISTORY_COUNTERS:
            self.fail(
                where, f"{at}: unknown history {counter!r}; known: {', '.join(sorted(HISTORY_COUNTERS))}"
            )
        extra = sorted(str(k) for k in raw if k not in ("history", "at_least"))
        if extra:
            self.fail(where, f"{at}: unknown operator {', '.join(map(repr, extra))} on history; use at_least")
        if "at_least" not in raw:
            self.fail(where, f"{at}: history {counter!r} needs `at_least:`")
        return HistoryAtLeast(
            counter, self.whole_number(raw["at_least"], where, f"{at}: at_least", minimum=1)
        )

    def baseline_condition(self, raw: dict[str, Any], where: str, at: str) -> Condition:
        fact = raw["baseline"]
        if fact not in BASELINE_FACTS:
            self.fail(where, f"{at}: unknown baseline {fact!r}; known: {', '.join(BASELINE_FACTS)}")
        allowed = BASELINE_FACTS[fact]
        ops = sorted(str(k) for k in raw if k != "baseline")
        if ops == ["recorded"] and isinstance(raw["recorded"], bool):
            return BaselineRecorded(fact, raw["recorded"])
        if ops == ["is"] and isinstance(raw["is"], bool) and raw["is"] in allowed:
            return BaselineIs(fact, (raw["is"],))
        if (
            ops == ["in"]
            and isinstance(raw["in"], list)
            and raw["in"]
            and all(v in allowed for v in raw["in"])
        ):
            return BaselineIs(fact, tuple(raw["in"]))
        return self.fail(
            where,
            f"{at}: baseline {fact!r} takes `recorded: true|false`, or `is:` or `in: [...]` with values from "
            f"{', '.join(map(str, allowed))}",
        )

    def lab_condition(self, raw: dict[str, Any], kinds: list[str], where: str, at: str) -> Condition:
        others = [str(k) for k in raw if k in _COMBINATORS or (k in _LAB_KINDS and k != kinds[0])]
        if len(kinds) > 1 or others:
            self.fail(
                where,
                f"{at}: one condition per mapping, found {', '.join(map(repr, [*kinds, *others]))}; "
                "combine conditions with all: or any:",
            )
        (kind,) = kinds
        label = f"{at}: {kind}"
        if isinstance(raw[kind], dict):
            self.fail(
                where,
                f"{label} takes a LOINC code or a list of codes, and its settings go beside it in the same "
                f"mapping, e.g. {{{kind}: '29265-6', {_LAB_EXAMPLES[kind]}}}",
            )
        if kind == "lab_rise" and isinstance(raw[kind], list):
            self.fail(where, f"{label} takes one LOINC code: a rise compares results of the same test")
        codes = self.lab_codes(raw[kind], where, label)
        self.unknown_keys(raw, _LAB_KEYS[kind], f"{where}: {at}: {kind}")
        if "within_days" not in raw:
            self.fail(where, f"{label} needs `within_days:` (how far back a result counts)")
        days = self.whole_number(raw["within_days"], where, f"{label}: within_days", minimum=1)

        if kind == "lab_missing":
            return LabMissing(codes, days)
        if kind == "lab_rise":
            (code,) = codes
            if "by_fraction" not in raw:
                self.fail(where, f"{label} needs `by_fraction:` (0.25 is a rise of 25%)")
            fraction = self.number(raw["by_fraction"], where, f"{label}: by_fraction")
            if not 0 < fraction <= _MAX_RISE_FRACTION:
                self.fail(
                    where,
                    f"{label}: by_fraction must be above 0 and at most {_MAX_RISE_FRACTION} "
                    f"(a fraction: 0.25 is a rise of 25%), got {fraction!r}",
                )
            return LabRise(code, fraction, days)

        operators = [key for key in raw if key in _LAB_OPERATORS]
        if len(operators) != 1:
            self.fail(
                where,
                f"{label} needs exactly one of {', '.join(_LAB_OPERATORS)}, found {operators or 'none'}",
            )
        (op,) = operators
        unit = raw.get("unit")
        expected = sorted({CANONICAL_UNIT[code] for code in codes})
        if len(expected) > 1:
            self.fail(where, f"{label}: codes {list(codes)} are compared in different units {expected}")
        if unit is None:
            self.fail(
                where, f"{label} needs `unit: {expected[0]}` beside the threshold, saying what it is in"
            )
        if unit != expected[0]:
            self.fail(
                where,
                f"{label}: unit {unit!r} is not the unit results of {_describe(codes)} are compared in "
                f"({expected[0]}); write the threshold in {expected[0]}",
            )
        if op == "between":
            bounds = raw[op]
            if not isinstance(bounds, list) or len(bounds) != 2:
                self.fail(where, f"{label}: between takes [low, high], got {bounds!r}")
            low = self.number(bounds[0], where, f"{label}: between")
            high = self.number(bounds[1], where, f"{label}: between")
            if not low < high:
                self.fail(where, f"{label}: between [{low}, {high}]: low must be below high")
            return LabThreshold(codes, "between", low, unit, days, upper=high)
        comparison = next(o for o in _LAB_OPERATORS if o == op)  # the Literal type
        return LabThreshold(codes, comparison, self.number(raw[op], where, f"{label}: {op}"), unit, days)

    def lab_codes(self, raw: object, where: str, label: str) -> tuple[str, ...]:
        codes = raw if isinstance(raw, list) else [raw]
        if not codes:
            self.fail(where, f"{label}: needs at least one LOINC code")
        for code in codes:
            if not isinstance(code, str):
                self.fail(where, f"{label}: LOINC code {code!r} must be text such as '29265-6' (quote it)")
            if code not in CANONICAL_UNIT:
                known = ", ".join(f"{c} ({n})" for c, n in LAB_NAMES.items())
                self.fail(where, f"{label}: unknown LOINC code {code!r}; the service understands {known}")
        if len(set(codes)) != len(codes):
            self.fail(where, f"{label}: lists a code twice: {codes!r}")
        return tuple(codes)

    def number(self, raw: object, where: str, label: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            self.fail(where, f"{label} must be a number, got {raw!r}")
        return float(raw)

    # --- combinations ---

    def combination(
        self, raw: object, index: int, categories: frozenset[str], domains: Mapping[str, str]
    ) -> Combination:
        if not isinstance(raw, dict):
            self.fail(f"combinations[{index}]", "each combination must be a mapping")
        combination_id = raw.get("id")
        if not isinstance(combination_id, str) or not _ID.match(combination_id):
            self.fail(f"combinations[{index}]", f"missing or invalid id {combination_id!r}")
        where = f"combination {combination_id!r}"
        self.unknown_keys(raw, _COMBINATION_KEYS, where)
        rationale = raw.get("rationale")
        if not isinstance(rationale, str) or not rationale.strip():
            self.fail(where, "missing rationale: every policy must say why it exists")
        enabled = raw.get("enabled")
        if not isinstance(enabled, bool):
            self.fail(where, "enabled must be stated as true or false")
        counts = [
            k for k in ("when_distinct_categories_at_least", "when_distinct_domains_at_least") if k in raw
        ]
        if len(counts) != 1:
            self.fail(
                where, "give one of when_distinct_categories_at_least or when_distinct_domains_at_least"
            )
        (count_key,) = counts
        minimum = self.whole_number(raw.get(count_key), where, count_key, minimum=2)
        if count_key == "when_distinct_domains_at_least" and not domains:
            self.fail(where, "counts domains, but no rule names a `domain:`")
        of_urgency = self.urgency(raw.get("of_urgency"), where, "of_urgency")
        raise_to = self.urgency(raw.get("raise_to"), where, "raise_to")
        if raise_to.rank <= of_urgency.rank:
            self.fail(where, f"raise_to ({raise_to}) must be more urgent than of_urgency ({of_urgency})")
        counted = raw.get("categories")
        if counted is not None:
            if not isinstance(counted, list) or not counted:
                self.fail(where, "categories, when given, must be a non-empty list")
            for category in counted:
                if category not in categories:
                    self.fail(where, f"categories: no rule produces category {category!r}")
        return Combination(
            id=combination_id,
            enabled=enabled,
            min_categories=minimum,
            of_urgency=of_urgency,
            raise_to=raise_to,
            rationale=rationale.strip(),
            categories=None if counted is None else tuple(counted),
            count="domains" if count_key == "when_distinct_domains_at_least" else "categories",
        )

    # --- messages ---

    def phrases(self, raw: object, key: str, *, single_word: bool) -> dict[str, tuple[str, ...]]:
        where = f"messages: {key}"
        if not isinstance(raw, dict):
            self.fail(where, "must map a language code (en, es, ...) to a list of phrases")
        result: dict[str, tuple[str, ...]] = {}
        for language, phrases in raw.items():
            if not isinstance(language, str) or not language:
                # YAML reads a bare `no:` (Norwegian) as false; make the author quote it.
                self.fail(where, f"language {language!r} must be a string such as en or es")
            if not isinstance(phrases, list) or not phrases:
                self.fail(where, f"{language}: must be a non-empty list of phrases")
            for phrase in phrases:
                if not isinstance(phrase, str):
                    self.fail(where, f"{language}: {phrase!r} is not text")
                problem = phrase_problem(phrase, single_word=single_word)
                if problem:
                    self.fail(where, f"{language}: {problem}")
            result[language] = tuple(phrases)
        return result

    def check_not_warning_words(
        self, phrases: dict[str, tuple[str, ...]], not_warning: dict[str, tuple[str, ...]]
    ) -> None:
        # A not-warning word only acts where a phrase's last word is a prefix of it; anything else is a typo.
        for language, words in not_warning.items():
            for word in words:
                problem = not_warning_word_problem(word, phrases.get(language, ()))
                if problem:
                    self.fail("messages: not_warning_words", f"{language}: {problem}")

    # --- small checks ---

    def unknown_keys(self, raw: dict[Any, Any], allowed: frozenset[str], where: str) -> None:
        unknown = [key for key in raw if key not in allowed]
        if unknown:
            self.fail(
                where,
                f"unknown key {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}",
            )

    def known_item(self, item: object, where: str, at: str) -> str:
        if not isinstance(item, str) or item not in self.items:
            self.fail(where, f"{at}: unknown item code {item!r}; known items: {', '.join(self.items)}")
        return item

    def urgency(self, raw: object, where: str, key: str) -> Urgency:
        choices = [u.value for u in Urgency]
        if not isinstance(raw, str) or raw not in choices:
            self.fail(where, f"unknown urgency {raw!r} for {key}; expected one of {', '.join(choices)}")
        return Urgency(raw)

    def rationale(self, raw: object, where: str, key: str) -> str:
        if not isinstance(raw, str) or not raw.strip():
            self.fail(where, f"missing {key}: say, in words, why this alert exists")
        return raw.strip()

    def slug(self, raw: object, where: str, key: str) -> str:
        if not isinstance(raw, str) or not _ID.match(raw):
            self.fail(where, f"{key} must be a lower-case identifier, got {raw!r}")
        return raw

    def whole_number(self, raw: object, where: str, label: str, *, minimum: int = 0) -> int:
        if not _is_int(raw) or raw < minimum:
            self.fail(where, f"{label} must be a whole number of {minimum} or more, got {raw!r}")
        return raw

    def number_list(self, raw: object, where: str, label: str) -> tuple[int, ...]:
        if not isinstance(raw, list) or not raw or not all(_is_int(v) for v in raw):
            self.fail(where, f"{label} must be a non-empty list of whole numbers, got {raw!r}")
        if len(set(raw)) != len(raw):
            self.fail(where, f"{label} lists a value twice: {raw!r}")
        return tuple(raw)


def _describe(codes: tuple[str, ...]) -> str:
    return ", ".join(f"{code} ({LAB_NAMES.get(code, code)})" for code in codes)


def _is_int(value: object) -> TypeGuard[int]:
    # YAML `true` is a bool, which Python counts as an int; a threshold of `true` is a mistake.
    return isinstance(value, int) and not isinstance(value, bool)
