"""On-call coverage of a care team over a window (pure): where level 1 has nobody, and where two people of
one level overlap. Shown on the team's rota page so an administrator sees the gaps before a night does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Shift:
    level: int
    staff: str  # a name, for the page
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Span:
    starts_at: datetime
    ends_at: datetime
    who: tuple[str, ...] = ()  # overlaps: the people on at once

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at


@dataclass(frozen=True)
class Coverage:
    start: datetime
    end: datetime
    gaps: tuple[Span, ...]  # level 1 empty: an urgent alert pages the whole team instead
    overlaps: tuple[Span, ...]  # two or more people at one level: both are paged

    @property
    def covered_fraction(self) -> float:
        total = (self.end - self.start).total_seconds()
        missing = sum(g.duration.total_seconds() for g in self.gaps)
        return 1.0 if total <= 0 else max(0.0, 1 - missing / total)


def coverage(shifts: Iterable[Shift], start: datetime, end: datetime) -> Coverage:
    """Gaps in level 1 and same-level overlaps between `start` and `end` (shifts are clipped to it)."""
    clipped = [
        Shift(s.level, s.staff, max(s.starts_at, start), min(s.ends_at, end))
        for s in shifts
        if s.ends_at > start and s.starts_at < end
    ]
    gaps: list[Span] = []
    cursor = start
    for shift in sorted((s for s in clipped if s.level == 1), key=lambda s: s.starts_at):
        if shift.starts_at > cursor:
            gaps.append(Span(cursor, shift.starts_at))
        cursor = max(cursor, shift.ends_at)
    if cursor < end:
        gaps.append(Span(cursor, end))
    overlaps: list[Span] = []
    by_level: dict[int, list[Shift]] = {}
    for shift in clipped:
        by_level.setdefault(shift.level, []).append(shift)
    for same in by_level.values():
        ordered = sorted(same, key=lambda s: s.starts_at)
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                if second.starts_at >= first.ends_at:
                    break
                overlaps.append(
                    Span(second.starts_at, min(first.ends_at, second.ends_at), (first.staff, second.staff))
                )
    return Coverage(start, end, tuple(gaps), tuple(sorted(overlaps, key=lambda o: o.starts_at)))
