"""Alert event kinds are one enum (models.AlertEventKind): every kind has a label for the timeline, every
writer uses the enum, and the hospital's event webhook names only kinds that exist."""

from __future__ import annotations

import re
from pathlib import Path

from alerts.rules import Urgency
from pro_service.labels import ALERT_EVENT_LABELS
from pro_service.models import AlertEvent, AlertEventKind
from pro_service.services.event_webhook import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_every_kind_has_a_label() -> None:
    assert set(ALERT_EVENT_LABELS) == set(AlertEventKind)
    for kind, label in ALERT_EVENT_LABELS.items():
        assert label.strip() and label[0].isupper(), kind


def test_the_values_fit_the_column_and_are_unchanged_text() -> None:
    """The column stays a 32-character string: no migration, and rows written before read back."""
    assert AlertEvent.__table__.c.kind.type.length == 32  # type: ignore[attr-defined]
    for kind in AlertEventKind:
        assert len(kind.value) <= 32 and kind.value == kind.name.lower()


def test_the_event_webhook_names_only_known_kinds() -> None:
    assert set(EVENT_TYPES) <= set(AlertEventKind)


def test_no_alert_event_is_written_with_a_bare_string() -> None:
    """A kind spelled as text could be misspelled into a kind no label, webhook or query knows."""
    bare = re.compile(
        r"AlertEvent\([^)]*kind=\"|AlertEvent\.kind [=!]= \"|^\s+kind=\"(" + "|".join(AlertEventKind) + ')"'
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "pro_service").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if bare.search(line)
    ]
    assert offenders == []


def test_urgency_ranks_are_ordered_most_urgent_highest() -> None:
    assert Urgency.URGENT.rank > Urgency.SAME_DAY.rank > Urgency.ROUTINE.rank
