"""On-call coverage (pro_service/rota.py): gaps in level 1 and same-level overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pro_service.rota import Shift, Span, coverage

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_an_empty_rota_is_one_gap_and_no_coverage() -> None:
    found = coverage([], h(0), h(24))
    assert found.gaps == (Span(h(0), h(24)),) and found.covered_fraction == 0.0


def test_gaps_between_and_around_level_one_shifts_and_level_two_does_not_fill_them() -> None:
    shifts = [Shift(1, "Kim", h(2), h(10)), Shift(1, "Lee", h(12), h(30)), Shift(2, "Ada", h(0), h(24))]
    found = coverage(shifts, h(0), h(24))
    assert found.gaps == (Span(h(0), h(2)), Span(h(10), h(12)))
    assert found.overlaps == ()
    assert round(found.covered_fraction, 3) == round(20 / 24, 3)


def test_overlaps_at_one_level_name_both_people() -> None:
    shifts = [Shift(1, "Kim", h(0), h(12)), Shift(1, "Lee", h(10), h(24)), Shift(2, "Ada", h(10), h(11))]
    found = coverage(shifts, h(0), h(24))
    assert found.gaps == () and found.overlaps == (Span(h(10), h(12), ("Kim", "Lee")),)


def test_shifts_are_clipped_to_the_window() -> None:
    found = coverage([Shift(1, "Kim", h(-48), h(6))], h(0), h(24))
    assert found.gaps == (Span(h(6), h(24)),)
    assert coverage([Shift(1, "Kim", h(-48), h(-1))], h(0), h(1)).gaps == (Span(h(0), h(1)),)
