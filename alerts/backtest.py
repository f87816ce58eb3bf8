"""Pure comparison of two rulesets' findings over the same replayed inputs (the rules backtest).

A clinical lead signs off a ruleset change by seeing what it would have raised on real history compared
with what the rules in use raised: per category, how often the candidate raises a category the reference
did not (more), drops one (fewer), or raises it at another urgency (higher, lower); per rule, how often it
fired on each side. The database walk that builds the pairs is pro_service/services/backtest.py; this
module only counts, so the numbers can be tested in milliseconds.

A check-in that asked a questionnaire version a ruleset is not written for cannot be replayed through it
(the rules would read items nobody was asked, or miss the ones that were): the caller counts it as not
comparable, with a reason, and it is reported, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING

from alerts.rules import Finding, Rule, Urgency

if TYPE_CHECKING:
    from alerts.ruleset import Ruleset

URGENCIES = tuple(sorted(Urgency, key=lambda u: -u.rank))  # urgent, same_day, routine


@dataclass(frozen=True)
class Replayed:
    """One replayed input (a closed check-in, or a lab result at its arrival): each side's findings."""

    reference: Sequence[Finding]
    candidate: Sequence[Finding]


@dataclass(frozen=True)
class CategoryRow:
    """Counts of replays (not alerts): `reference` is how many replays the reference raised this category
    in. Of the replays where either side raised it: more + fewer + higher + lower + same."""

    category: str
    reference: int = 0
    candidate: int = 0
    more: int = 0  # the candidate raises it, the reference did not
    fewer: int = 0  # the reference raised it, the candidate does not
    higher: int = 0  # both raise it, the candidate more urgently
    lower: int = 0  # both raise it, the candidate less urgently
    same: int = 0  # both raise it at the same urgency
    reference_by_urgency: dict[str, int] = field(default_factory=dict)
    candidate_by_urgency: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.more or self.fewer or self.higher or self.lower)


@dataclass(frozen=True)
class RuleRow:
    """How many replays a rule (or combination policy) fired in, as the deciding rule or beside it."""

    rule_id: str
    reference: int = 0
    candidate: int = 0
    more: int = 0  # fired in the candidate, not in the reference, on the same input
    fewer: int = 0
    change: str = ""  # what the candidate changed in the rule itself ("new", "urgency ...", ...)


@dataclass(frozen=True)
class Summary:
    categories: tuple[CategoryRow, ...]
    total: CategoryRow  # every category together
    rules: tuple[RuleRow, ...]
    replayed: int  # inputs replayed through both sides
    changed: int  # replays where any category differs (more, fewer, higher or lower)
    not_comparable: dict[str, int]  # reason -> count; never silently dropped

    @property
    def not_comparable_total(self) -> int:
        return sum(self.not_comparable.values())


def fits(ruleset: Ruleset, instrument: str, instrument_version: int) -> bool:
    """Whether a ruleset is written for the questionnaire version a check-in asked."""
    return (ruleset.instrument, ruleset.instrument_version) == (instrument, instrument_version)


def not_comparable_reason(ruleset: Ruleset, instrument: str, instrument_version: int, side: str) -> str:
    return (
        f"asked {instrument} v{instrument_version}; the {side} {label(ruleset)} is written for "
        f"{ruleset.instrument} v{ruleset.instrument_version}"
    )


def label(ruleset: Ruleset) -> str:
    return f"{ruleset.name}-v{ruleset.version}"


def naming_result(findings: Iterable[Finding], result_id: int) -> list[Finding]:
    """Lab findings a result's arrival raises: those whose evidence names it, or names no result at all (a
    missing result). A finding about an older result was raised when that result arrived, and the service
    never raises evidence twice (triage keys lab evidence by result), so counting it again would inflate."""
    kept = []
    for finding in findings:
        ids = {_result_id(e.value) for e in finding.evidence}
        if result_id in ids or not ids - {None}:
            kept.append(finding)
    return kept


def _result_id(value: object) -> int | None:
    found = value.get("result_id") if isinstance(value, dict) else None
    return found if isinstance(found, int) else None


def compare(
    replays: Iterable[Replayed],
    *,
    not_comparable: Mapping[str, int] | None = None,
    categories: Iterable[str] = (),
    rule_changes: Mapping[str, str] | None = None,
) -> Summary:
    """Count what each side raised on each replay and how they differ.

    categories: listed even when nothing fired (a lead should see a zero, not a missing row).
    rule_changes: rule id -> what the candidate changed in it (see `rule_changes`); those rules are listed
    even when they never fired.
    """
    counts: dict[str, Counter[str]] = {}
    by_urgency: dict[tuple[str, str], Counter[str]] = {}
    rules: dict[str, Counter[str]] = {}
    replayed = changed = 0
    for replay in replays:
        replayed += 1
        reference, candidate = _by_category(replay.reference), _by_category(replay.candidate)
        differs = False
        for category in reference.keys() | candidate.keys():
            outcome = _outcome(reference.get(category), candidate.get(category))
            differs = differs or outcome != "same"
            row = counts.setdefault(category, Counter())
            row[outcome] += 1
            for side, found in (("reference", reference), ("candidate", candidate)):
                if category in found:
                    row[side] += 1
                    by_urgency.setdefault((category, side), Counter())[found[category].value] += 1
        changed += differs
        _count_rules(rules, _fired(replay.reference), _fired(replay.candidate))

    notes = dict(rule_changes or {})
    for category in categories:
        counts.setdefault(category, Counter())
    for rule_id in notes:
        rules.setdefault(rule_id, Counter())
    rows = tuple(_category_row(c, counts[c], by_urgency) for c in sorted(counts))
    return Summary(
        categories=rows,
        total=_total(rows),
        rules=tuple(_rule_row(r, rules[r], notes.get(r, "")) for r in sorted(rules)),
        replayed=replayed,
        changed=changed,
        not_comparable=dict(sorted((not_comparable or {}).items())),
    )


def _by_category(findings: Sequence[Finding]) -> dict[str, Urgency]:
    # evaluate() gives one finding per category; max() keeps this right for a caller that passes more.
    out: dict[str, Urgency] = {}
    for f in findings:
        out[f.category] = Urgency.max(out[f.category], f.urgency) if f.category in out else f.urgency
    return out


def _outcome(reference: Urgency | None, candidate: Urgency | None) -> str:
    if reference is None:
        return "more"
    if candidate is None:
        return "fewer"
    if candidate.rank > reference.rank:
        return "higher"
    if candidate.rank < reference.rank:
        return "lower"
    return "same"


def _fired(findings: Sequence[Finding]) -> set[str]:
    return {rule_id for f in findings for rule_id in (f.rule_id, *f.other_rule_ids)}


def _count_rules(rules: dict[str, Counter[str]], reference: set[str], candidate: set[str]) -> None:
    for rule_id in reference | candidate:
        row = rules.setdefault(rule_id, Counter())
        row["reference"] += rule_id in reference
        row["candidate"] += rule_id in candidate
        row["more"] += rule_id in candidate - reference
        row["fewer"] += rule_id in reference - candidate


def _category_row(
    category: str, counts: Counter[str], by_urgency: Mapping[tuple[str, str], Counter[str]]
) -> CategoryRow:
    def urgencies(side: str) -> dict[str, int]:
        found = by_urgency.get((category, side), Counter())
        return {u.value: found[u.value] for u in URGENCIES}

    return CategoryRow(
        category=category,
        reference=counts["reference"],
        candidate=counts["candidate"],
        more=counts["more"],
        fewer=counts["fewer"],
        higher=counts["higher"],
        lower=counts["lower"],
        same=counts["same"],
        reference_by_urgency=urgencies("reference"),
        candidate_by_urgency=urgencies("candidate"),
    )


def _total(rows: Sequence[CategoryRow]) -> CategoryRow:
    def add(side: str) -> dict[str, int]:
        return {u.value: sum(getattr(r, side).get(u.value, 0) for r in rows) for u in URGENCIES}

    return CategoryRow(
        category="total",
        reference=sum(r.reference for r in rows),
        candidate=sum(r.candidate for r in rows),
        more=sum(r.more for r in rows),
        fewer=sum(r.fewer for r in rows),
        higher=sum(r.higher for r in rows),
        lower=sum(r.lower for r in rows),
        same=sum(r.same for r in rows),
        reference_by_urgency=add("reference_by_urgency"),
        candidate_by_urgency=add("candidate_by_urgency"),
    )


def _rule_row(rule_id: str, counts: Counter[str], change: str) -> RuleRow:
    return RuleRow(
        rule_id=rule_id,
        reference=counts["reference"],
        candidate=counts["candidate"],
        more=counts["more"],
        fewer=counts["fewer"],
        change=change,
    )


# --- What the candidate changed in the rules themselves ------------------------------------------


def rule_changes(references: Iterable[Ruleset], candidate: Ruleset) -> dict[str, str]:
    """Rule id -> how the candidate's rule differs from the reference's ("" when identical), for every
    rule and combination of either side. With several references (each patient's own ruleset), each
    difference names the reference it is against."""
    mine = _definitions(candidate)
    notes: dict[str, list[str]] = {}
    refs = sorted(set(references), key=label)
    for ref in refs:
        theirs = _definitions(ref)
        for rule_id in mine.keys() | theirs.keys():
            note = _difference(theirs.get(rule_id), mine.get(rule_id))
            if note:
                notes.setdefault(rule_id, []).append(f"{note} vs {label(ref)}" if len(refs) > 1 else note)
            else:
                notes.setdefault(rule_id, [])
    return {rule_id: "; ".join(found) for rule_id, found in sorted(notes.items())}


def _definitions(ruleset: Ruleset) -> dict[str, object]:
    return {
        **{rule.id: rule for rule in ruleset.rules},
        **{c.id: c for c in ruleset.combinations},
    }


def _difference(reference: object | None, candidate: object | None) -> str:
    if reference is None:
        return "new"
    if candidate is None:
        return "removed"
    if isinstance(reference, Rule) and isinstance(candidate, Rule):
        changes = []
        if reference.urgency != candidate.urgency:
            changes.append(f"urgency {reference.urgency.value} → {candidate.urgency.value}")
        if reference.category != candidate.category:
            changes.append(f"category {reference.category} → {candidate.category}")
        if reference.when != candidate.when:
            changes.append("condition changed")
        if reference.early != candidate.early:
            changes.append("early" if candidate.early else "no longer early")
        return ", ".join(changes)
    enabled = getattr(candidate, "enabled", None)
    if enabled is not None and enabled != getattr(reference, "enabled", None):
        return "enabled" if enabled else "disabled"
    # Rationale text is not a change in behaviour; anything else is.
    same = _without_rationale(reference) == _without_rationale(candidate)
    return "" if same else "changed"


def _without_rationale(definition: object) -> object:
    if (
        is_dataclass(definition)
        and not isinstance(definition, type)
        and any(f.name == "rationale" for f in fields(definition))
    ):
        return replace(definition, rationale="")
    return definition


# --- Plain text --------------------------------------------------------------------------------


def render_text(summary: Summary, header: Sequence[tuple[str, str]] = ()) -> str:
    """The summary as fixed-width tables for a terminal (the admin page renders the same numbers)."""
    lines = [f"{name}: {value}" for name, value in header]
    lines += [
        f"replayed: {summary.replayed}",
        f"with a difference: {summary.changed}",
        f"not comparable: {summary.not_comparable_total}",
        *(f"  {count:>6}  {reason}" for reason, count in summary.not_comparable.items()),
        "",
        "By category (replays that raised it; urgency counts are urgent/same_day/routine)",
    ]
    head = (
        "category",
        "reference",
        "candidate",
        "more",
        "fewer",
        "higher",
        "lower",
        "same",
        "ref u/s/r",
        "cand u/s/r",
    )
    rows = [_category_cells(row) for row in (*summary.categories, summary.total)]
    lines += _table(head, rows)
    lines += ["", "By rule (replays it fired in, deciding or beside the deciding rule)"]
    rule_rows = [
        (r.rule_id, str(r.reference), str(r.candidate), str(r.more), str(r.fewer), r.change)
        for r in summary.rules
    ]
    lines += _table(
        ("rule", "reference", "candidate", "more", "fewer", "rule change"), rule_rows, text_last=True
    )
    return "\n".join(lines)


def _category_cells(row: CategoryRow) -> tuple[str, ...]:
    def split(found: Mapping[str, int]) -> str:
        return "/".join(str(found.get(u.value, 0)) for u in URGENCIES)

    counts = (row.reference, row.candidate, row.more, row.fewer, row.higher, row.lower, row.same)
    return (row.category, *map(str, counts), split(row.reference_by_urgency), split(row.candidate_by_urgency))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, text_last: bool = False) -> list[str]:
    """Numbers right-aligned; the first column (and the last, when it is text) left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    left = {0, len(widths) - 1} if text_last else {0}

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]
