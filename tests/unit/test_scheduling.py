"""Tests for pro_service.scheduling: local-time recurrence, DST, catch-up and quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from pro_service.scheduling import (
    QuietHours,
    ScheduleError,
    in_quiet_hours,
    latest_due,
    next_occurrence,
    occurrences,
    quiet_hours_end,
    send_time,
    validate_rrule,
    validate_timezone,
)

NY, MADRID, SYDNEY, SANTIAGO = "America/New_York", "Europe/Madrid", "Australia/Sydney", "America/Santiago"
MONDAY_10 = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0"
DAILY_10 = "FREQ=DAILY;BYHOUR=10"
NIGHT = QuietHours(time(21, 0), time(8, 0))
LUNCH = QuietHours(time(13, 0), time(14, 0))
NO_QUIET = QuietHours(time(8, 0), time(8, 0))
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str, year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, fold: int = 0
) -> datetime:
    """A local wall-clock time as a UTC instant."""
    wall = datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold)
    return wall.astimezone(UTC)


def around(day: date, days: int = 1) -> tuple[datetime, datetime]:
    middle = datetime.combine(day, time(12), UTC)
    return middle - timedelta(days=days), middle + timedelta(days=days)


# --- DST: a weekly Monday 10:00 stays 10:00 local while the UTC offset moves by an hour ---


@pytest.mark.parametrize(
    ("zone", "window", "expected"),
    [
        (NY, (date(2026, 3, 1), date(2026, 3, 10)), [utc(2026, 3, 2, 15), utc(2026, 3, 9, 14)]),
        (NY, (date(2026, 10, 25), date(2026, 11, 3)), [utc(2026, 10, 26, 14), utc(2026, 11, 2, 15)]),
        (MADRID, (date(2026, 3, 22), date(2026, 3, 31)), [utc(2026, 3, 23, 9), utc(2026, 3, 30, 8)]),
        (MADRID, (date(2026, 10, 18), date(2026, 10, 27)), [utc(2026, 10, 19, 8), utc(2026, 10, 26, 9)]),
        (SYDNEY, (date(2026, 3, 29), date(2026, 4, 7)), [utc(2026, 3, 29, 23), utc(2026, 4, 6, 0)]),
        (SYDNEY, (date(2026, 9, 27), date(2026, 10, 5)), [utc(2026, 9, 28, 0), utc(2026, 10, 4, 23)]),
        (SANTIAGO, (date(2026, 3, 29), date(2026, 4, 7)), [utc(2026, 3, 30, 13), utc(2026, 4, 6, 14)]),
        (SANTIAGO, (date(2026, 8, 30), date(2026, 9, 8)), [utc(2026, 8, 31, 14), utc(2026, 9, 7, 13)]),
    ],
)
def test_weekly_rule_keeps_local_wall_clock_across_dst(
    zone: str, window: tuple[date, date], expected: list[datetime]
) -> None:
    start, stop = (datetime.combine(d, time(), UTC) for d in window)
    found = occurrences(MONDAY_10, zone, date(2026, 1, 1), None, start, stop)
    assert found == expected
    assert all(o.astimezone(ZoneInfo(zone)).time() == time(10) for o in found)
    assert found[0].astimezone(ZoneInfo(zone)).utcoffset() != found[1].astimezone(ZoneInfo(zone)).utcoffset()


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected_utc", "expected_local"),
    [
        # Spring forward: the nonexistent time moves forward by the gap.
        (NY, date(2026, 3, 8), "BYHOUR=2;BYMINUTE=30", utc(2026, 3, 8, 7, 30), time(3, 30)),
        (MADRID, date(2026, 3, 29), "BYHOUR=2;BYMINUTE=30", utc(2026, 3, 29, 1, 30), time(3, 30)),
        (SYDNEY, date(2026, 10, 4), "BYHOUR=2;BYMINUTE=30", utc(2026, 10, 3, 16, 30), time(3, 30)),
        (SANTIAGO, date(2026, 9, 6), "BYHOUR=0;BYMINUTE=30", utc(2026, 9, 6, 4, 30), time(1, 30)),
        # Fall back: the ambiguous time happens once, at its first occurrence.
        (NY, date(2026, 11, 1), "BYHOUR=1;BYMINUTE=30", utc(2026, 11, 1, 5, 30), time(1, 30)),
        (MADRID, date(2026, 10, 25), "BYHOUR=2;BYMINUTE=30", utc(2026, 10, 25, 0, 30), time(2, 30)),
        (SYDNEY, date(2026, 4, 5), "BYHOUR=2;BYMINUTE=30", utc(2026, 4, 4, 15, 30), time(2, 30)),
        (SANTIAGO, date(2026, 4, 4), "BYHOUR=23;BYMINUTE=30", utc(2026, 4, 5, 2, 30), time(23, 30)),
    ],
)
def test_daily_rule_on_dst_change_day(
    zone: str, day: date, at: str, expected_utc: datetime, expected_local: time
) -> None:
    found = occurrences(f"FREQ=DAILY;{at}", zone, date(2026, 1, 1), None, *around(day, days=3))
    on_day = [o for o in found if o.astimezone(ZoneInfo(zone)).date() == day]
    assert on_day == [expected_utc]
    assert on_day[0].astimezone(ZoneInfo(zone)).time() == expected_local
    assert len(found) == 6  # one per day, nothing lost or doubled around the change


def test_gap_shift_does_not_duplicate_an_existing_time() -> None:
    found = occurrences(
        "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30", NY, date(2026, 1, 1), None, utc(2026, 3, 8), utc(2026, 3, 9)
    )
    assert found == [utc(2026, 3, 8, 7, 30)]


# --- start, end, windows ---


def test_end_date_is_inclusive_and_respected() -> None:
    found = occurrences(
        DAILY_10, MADRID, date(2026, 1, 1), date(2026, 1, 5), utc(2025, 12, 1), utc(2026, 2, 1)
    )
    assert found == [utc(2026, 1, d, 9) for d in range(1, 6)]


def test_until_date_is_inclusive_of_that_day() -> None:
    rule = "FREQ=DAILY;UNTIL=20260105;BYHOUR=10"
    found = occurrences(rule, MADRID, date(2026, 1, 1), None, utc(2025, 12, 1), utc(2026, 2, 1))
    assert found[-1] == utc(2026, 1, 5, 9)


def test_count_counts_from_the_start_date() -> None:
    rule = "FREQ=DAILY;COUNT=3;BYHOUR=10"
    assert len(occurrences(rule, NY, date(2026, 1, 1), None, utc(2025, 1, 1), utc(2027, 1, 1))) == 3
    assert occurrences(rule, NY, date(2026, 1, 1), None, utc(2026, 1, 2, 16), utc(2027, 1, 1)) == [
        utc(2026, 1, 3, 15)
    ]


def test_future_start_yields_nothing_before_it() -> None:
    assert occurrences(DAILY_10, NY, date(2026, 2, 1), None, utc(2026, 1, 1), utc(2026, 1, 31)) == []
    found = occurrences(DAILY_10, NY, date(2026, 2, 1), None, utc(2026, 1, 1), utc(2026, 2, 3))
    assert found == [utc(2026, 2, 1, 15), utc(2026, 2, 2, 15)]


def test_window_is_open_at_start_closed_at_end() -> None:
    at = utc(2026, 6, 10, 14)
    assert occurrences(DAILY_10, NY, date(2026, 1, 1), None, at, at + timedelta(hours=1)) == []
    assert occurrences(DAILY_10, NY, date(2026, 1, 1), None, at - timedelta(hours=1), at) == [at]
    assert occurrences(DAILY_10, NY, date(2026, 1, 1), None, at, at) == []


def test_end_before_start_and_naive_datetimes() -> None:
    assert (
        occurrences(DAILY_10, NY, date(2026, 2, 1), date(2026, 1, 1), utc(2025, 1, 1), utc(2027, 1, 1)) == []
    )
    with pytest.raises(ScheduleError, match="timezone-aware"):
        occurrences(DAILY_10, NY, date(2026, 1, 1), None, datetime(2026, 1, 1), utc(2026, 2, 1))


def test_multiple_check_ins_per_week() -> None:
    rule = "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9,18;BYMINUTE=15"
    found = occurrences(rule, NY, date(2026, 1, 1), None, utc(2026, 1, 4), utc(2026, 1, 11))
    local_times = [o.astimezone(ZoneInfo(NY)).strftime("%a %H:%M") for o in found]
    assert local_times == ["Mon 09:15", "Mon 18:15", "Thu 09:15", "Thu 18:15"]


# --- latest_due and next_occurrence ---


@pytest.mark.parametrize(
    ("now", "window", "expected"),
    [
        # After a 3-day outage only the latest occurrence counts; the missed ones are skipped.
        (utc(2026, 6, 10, 16), timedelta(days=4), utc(2026, 6, 10, 14)),
        (utc(2026, 6, 10, 16), timedelta(hours=3), utc(2026, 6, 10, 14)),
        (utc(2026, 6, 10, 13), timedelta(hours=1), None),
        (utc(2026, 6, 10, 14), timedelta(hours=1), utc(2026, 6, 10, 14)),  # now is included
        (utc(2026, 6, 10, 15), timedelta(hours=1), None),  # now - window is excluded
        (utc(2026, 6, 10, 14, 59, 59), timedelta(hours=1), utc(2026, 6, 10, 14)),
        (utc(2026, 6, 10, 14), timedelta(0), None),
    ],
)
def test_latest_due(now: datetime, window: timedelta, expected: datetime | None) -> None:
    assert latest_due(DAILY_10, NY, date(2026, 1, 1), None, now, window) == expected


def test_latest_due_respects_end_and_rejects_negative_window() -> None:
    assert (
        latest_due(DAILY_10, NY, date(2026, 1, 1), date(2026, 6, 9), utc(2026, 6, 10, 16), timedelta(hours=3))
        is None
    )
    with pytest.raises(ScheduleError, match="negative"):
        latest_due(DAILY_10, NY, date(2026, 1, 1), None, utc(2026, 6, 10), timedelta(hours=-1))


@pytest.mark.parametrize(
    ("after", "end", "expected"),
    [
        (utc(2026, 3, 6, 12), None, utc(2026, 3, 9, 14)),
        (utc(2026, 3, 9, 14), None, utc(2026, 3, 16, 14)),  # strictly after
        (utc(2026, 3, 9, 13, 59), None, utc(2026, 3, 9, 14)),
        (utc(2026, 3, 6, 12), date(2026, 3, 8), None),
        (utc(2015, 1, 1), None, utc(2026, 1, 5, 15)),  # before the start date
    ],
)
def test_next_occurrence(after: datetime, end: date | None, expected: datetime | None) -> None:
    assert next_occurrence(MONDAY_10, NY, date(2026, 1, 1), end, after) == expected


def test_next_occurrence_after_count_exhausted() -> None:
    rule = "FREQ=WEEKLY;COUNT=2;BYDAY=MO;BYHOUR=10"
    assert next_occurrence(rule, NY, date(2026, 1, 1), None, utc(2026, 1, 6)) == utc(2026, 1, 12, 15)
    assert next_occurrence(rule, NY, date(2026, 1, 1), None, utc(2026, 1, 13)) is None


# next_occurrence(..., now) is what a tick stores as schedules.next_due_at; latest_due at that instant
# must then find exactly that occurrence (same DST handling), or the tick would wake up for nothing.
NIGHTLY_0230 = "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"
NIGHTLY_0130 = "FREQ=DAILY;BYHOUR=1;BYMINUTE=30"


@pytest.mark.parametrize(
    ("rule", "zone", "after", "expected"),
    [
        # New York, spring forward 2026-03-08: 02:30 does not exist and moves to 03:30 EDT; then 02:30 EDT.
        (NIGHTLY_0230, NY, utc(2026, 3, 7, 8), utc(2026, 3, 8, 7, 30)),
        (NIGHTLY_0230, NY, utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)),
        # New York, fall back 2026-11-01: 01:30 happens twice and counts once, the first (EDT) time.
        (NIGHTLY_0130, NY, utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30)),
        (NIGHTLY_0130, NY, utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),
        # Madrid, spring forward 2026-03-29 and fall back 2026-10-25, the same way.
        (NIGHTLY_0230, MADRID, utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 30)),
        (NIGHTLY_0230, MADRID, utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)),
        (NIGHTLY_0230, MADRID, utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        (NIGHTLY_0230, MADRID, utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        # A weekly Monday 10:00 across each change: the week is 167 or 169 hours long.
        (MONDAY_10, NY, utc(2026, 3, 2, 15), utc(2026, 3, 9, 14)),
        (MONDAY_10, NY, utc(2026, 10, 26, 14), utc(2026, 11, 2, 15)),
        (MONDAY_10, MADRID, utc(2026, 3, 23, 9), utc(2026, 3, 30, 8)),
        (MONDAY_10, MADRID, utc(2026, 10, 19, 8), utc(2026, 10, 26, 9)),
    ],
)
def test_next_occurrence_across_dst_is_what_latest_due_then_finds(
    rule: str, zone: str, after: datetime, expected: datetime
) -> None:
    start = date(2026, 1, 1)
    assert next_occurrence(rule, zone, start, None, after) == expected
    assert latest_due(rule, zone, start, None, expected, timedelta(minutes=1)) == expected
    assert (
        latest_due(rule, zone, start, None, expected - timedelta(seconds=1), timedelta(hours=20)) != expected
    )


@pytest.mark.parametrize("zone", [NY, MADRID])
def test_stepping_through_next_occurrence_visits_every_occurrence_once(zone: str) -> None:
    # As ticks do: next_due_at = next_occurrence(previous). Two DST changes in the span, two times a day.
    rule, start = "FREQ=DAILY;BYHOUR=1,2;BYMINUTE=30", date(2026, 3, 1)
    expected = occurrences(rule, zone, start, None, utc(2026, 2, 28), utc(2026, 11, 5))
    visited: list[datetime] = []
    at: datetime | None = utc(2026, 2, 28)
    while at is not None and at <= utc(2026, 11, 5):
        visited.append(at)
        at = next_occurrence(rule, zone, start, None, at)
    assert visited[1:] == expected
    assert len(expected) == 2 * 249  # 1 March to 4 November: two a day, none lost or doubled


@pytest.mark.parametrize("zone", [NY, MADRID])
def test_next_occurrence_is_none_once_the_rule_is_used_up(zone: str) -> None:
    start = date(2026, 3, 6)
    # COUNT=3 across the spring-forward change: the shifted 03:30 still counts as one.
    counted = "FREQ=DAILY;COUNT=3;BYHOUR=2;BYMINUTE=30"
    found = occurrences(counted, zone, start, None, utc(2026, 3, 1), utc(2026, 4, 30))
    assert len(found) == 3
    assert next_occurrence(counted, zone, start, None, found[1]) == found[2]
    assert next_occurrence(counted, zone, start, None, found[2]) is None
    # UNTIL (inclusive of that day) and the schedule's end date (inclusive) end it the same way.
    until = "FREQ=DAILY;UNTIL=20260310;BYHOUR=10"
    last = occurrences(until, zone, start, None, utc(2026, 3, 1), utc(2026, 4, 30))[-1]
    assert last.astimezone(ZoneInfo(zone)).date() == date(2026, 3, 10)
    assert next_occurrence(until, zone, start, None, last) is None
    assert next_occurrence(DAILY_10, zone, start, date(2026, 3, 10), last - timedelta(hours=1)) == last
    assert next_occurrence(DAILY_10, zone, start, date(2026, 3, 10), last) is None


def test_ten_years_of_a_daily_rule_expand_completely() -> None:
    # Speed is measured in benchmarks/bench_scheduling.py; here, that the skip-ahead path is exact.
    start, now = date(2016, 1, 1), utc(2026, 1, 1, 20)
    every = occurrences(DAILY_10, NY, start, None, utc(2015, 12, 31), now)
    assert len(every) == 3654  # 2016-01-01 through 2026-01-01
    assert latest_due(DAILY_10, NY, start, None, now, timedelta(hours=36)) == every[-1]
    assert next_occurrence(DAILY_10, NY, start, None, every[-2]) == every[-1]


# --- quiet hours ---


@pytest.mark.parametrize(
    ("quiet", "wall", "expected"),
    [
        (NIGHT, time(20, 59, 59), False),
        (NIGHT, time(21, 0), True),  # start inclusive
        (NIGHT, time(23, 59), True),
        (NIGHT, time(0, 0), True),
        (NIGHT, time(7, 59), True),
        (NIGHT, time(7, 59, 59), True),
        (NIGHT, time(8, 0), False),  # end exclusive
        (NIGHT, time(12, 0), False),
        (LUNCH, time(12, 59), False),
        (LUNCH, time(13, 0), True),
        (LUNCH, time(13, 59), True),
        (LUNCH, time(14, 0), False),
        (LUNCH, time(22, 0), False),
        (NO_QUIET, time(8, 0), False),
        (NO_QUIET, time(3, 0), False),
    ],
)
def test_in_quiet_hours(quiet: QuietHours, wall: time, expected: bool) -> None:
    at = local(MADRID, 2026, 6, 10, wall.hour, wall.minute, wall.second)
    assert in_quiet_hours(at, MADRID, quiet) is expected
    assert (quiet_hours_end(at, MADRID, quiet) != at) is expected


@pytest.mark.parametrize(
    ("zone", "quiet", "at", "expected"),
    [
        (NY, NIGHT, local(NY, 2026, 6, 10, 22), local(NY, 2026, 6, 11, 8)),
        (NY, NIGHT, local(NY, 2026, 6, 10, 3), local(NY, 2026, 6, 10, 8)),
        (NY, NIGHT, local(NY, 2026, 6, 10, 12), local(NY, 2026, 6, 10, 12)),
        (NY, LUNCH, local(NY, 2026, 6, 10, 13, 30), local(NY, 2026, 6, 10, 14)),
        (NY, NO_QUIET, local(NY, 2026, 6, 10, 3), local(NY, 2026, 6, 10, 3)),
        # Quiet end on DST change days: 08:00 local under the new offset.
        (NY, NIGHT, utc(2026, 3, 8, 3), utc(2026, 3, 8, 12)),  # 22:00 EST -> 08:00 EDT, 9 h
        (NY, NIGHT, utc(2026, 11, 1, 2), utc(2026, 11, 1, 13)),  # 22:00 EDT -> 08:00 EST, 11 h
        (MADRID, NIGHT, utc(2026, 3, 28, 21), utc(2026, 3, 29, 6)),
        (MADRID, NIGHT, utc(2026, 10, 24, 20), utc(2026, 10, 25, 7)),
        (SYDNEY, NIGHT, utc(2026, 10, 3, 12), utc(2026, 10, 3, 21)),
        # End time skipped by the gap: quiet hours end when the clock jumps past it.
        (NY, QuietHours(time(22), time(2, 30)), utc(2026, 3, 8, 6), utc(2026, 3, 8, 7)),
        # End time repeated by the fall-back: the next time the clock shows it.
        (NY, QuietHours(time(22), time(1, 30)), local(NY, 2026, 11, 1, 1, 15), local(NY, 2026, 11, 1, 1, 30)),
        (
            NY,
            QuietHours(time(22), time(1, 30)),
            local(NY, 2026, 11, 1, 1, 15, fold=1),
            local(NY, 2026, 11, 1, 1, 30, fold=1),
        ),
        # The only non-quiet hour (02:00-03:00) does not exist on spring-forward day.
        (NY, QuietHours(time(3), time(2)), local(NY, 2026, 3, 7, 12), local(NY, 2026, 3, 9, 2)),
    ],
)
def test_quiet_hours_end(zone: str, quiet: QuietHours, at: datetime, expected: datetime) -> None:
    assert quiet_hours_end(at, zone, quiet) == expected
    assert send_time(at, zone, quiet) == expected
    assert not in_quiet_hours(expected, zone, quiet)


def test_quiet_hours_reject_aware_times() -> None:
    with pytest.raises(ScheduleError, match="wall-clock"):
        QuietHours(time(21, tzinfo=UTC), time(8))


# --- validation ---


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (MONDAY_10, "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0;BYSECOND=0"),
        ("RRULE:freq=daily;byhour=9", "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
        (
            " rrule: BYMINUTE=30; BYHOUR=18,9 ;BYDAY=FR,MO;FREQ=WEEKLY; ",
            "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9,18;BYMINUTE=30;BYSECOND=0",
        ),
        ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=10", "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=10;BYMINUTE=0;BYSECOND=0"),
        (
            "FREQ=DAILY;UNTIL=20261231;BYHOUR=10",
            "FREQ=DAILY;UNTIL=20261231T235959;BYHOUR=10;BYMINUTE=0;BYSECOND=0",
        ),
        (
            "FREQ=WEEKLY;INTERVAL=02;COUNT=6;BYDAY=TU;BYHOUR=10;WKST=SU",
            "FREQ=WEEKLY;INTERVAL=2;COUNT=6;BYDAY=TU;BYHOUR=10;BYMINUTE=0;BYSECOND=0;WKST=SU",
        ),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
        ),
    ],
)
def test_validate_rrule_normalises(rule: str, expected: str) -> None:
    assert validate_rrule(rule) == expected
    assert validate_rrule(expected) == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "empty"),
        ("RRULE:", "empty"),
        ("FREQ=DAILY;BYHOUR=10;UNTIL=20261231T000000Z", "UNTIL must not carry a time zone"),
        ("DTSTART;TZID=Europe/Madrid:20260101T090000\nRRULE:FREQ=DAILY;BYHOUR=9", "own time zone"),
        ("DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY;BYHOUR=9", "own time zone"),
        ("DTSTART:20260101T090000\nRRULE:FREQ=DAILY;BYHOUR=9", "start date is set separately"),
        ("FREQ=HOURLY;BYHOUR=10", "FREQ=HOURLY is too frequent"),
        ("FREQ=MINUTELY;BYHOUR=10", "too frequent"),
        ("FREQ=SECONDLY;BYHOUR=10", "too frequent"),
        ("FREQ=WEEKLY;BYDAY=MO", "must set BYHOUR"),
        ("FREQ=WEEKLY;BYDAY=MO;BYMINUTE=30", "must set BYHOUR"),
        ("FREQ=DAILY;COUNT=5;UNTIL=20261231;BYHOUR=9", "both COUNT and UNTIL"),
        ("hello", "not of the form NAME=VALUE"),
        ("BYHOUR=9", "must set FREQ"),
        ("FREQ=FORTNIGHTLY;BYHOUR=9", "must set FREQ"),
        ("FREQ=DAILY;BYHOUR=9;FOO=1", "'FOO' is not supported"),
        ("FREQ=DAILY;BYEASTER=0;BYHOUR=9", "'BYEASTER' is not supported"),
        ("FREQ=DAILY;BYHOUR=9;BYHOUR=10", "more than once"),
        ("FREQ=DAILY;BYHOUR=25", "BYHOUR value '25'"),
        ("FREQ=DAILY;BYHOUR=nine", "BYHOUR value 'NINE'"),
        ("FREQ=DAILY;BYHOUR=9;BYMINUTE=60", "BYMINUTE value '60'"),
        ("FREQ=MONTHLY;BYMONTHDAY=0;BYHOUR=9", "BYMONTHDAY value '0'"),
        ("FREQ=WEEKLY;BYDAY=XX;BYHOUR=9", "BYDAY value 'XX'"),
        ("FREQ=DAILY;BYDAY=1MO;BYHOUR=9", "numbered weekday"),
        ("FREQ=DAILY;INTERVAL=0;BYHOUR=9", "INTERVAL must be a positive"),
        ("FREQ=DAILY;COUNT=-1;BYHOUR=9", "COUNT must be a positive"),
        ("FREQ=DAILY;UNTIL=20261332;BYHOUR=9", "not a real date"),
        ("FREQ=DAILY;UNTIL=tomorrow;BYHOUR=9", "UNTIL must look like"),
        ("FREQ=DAILY;WKST=XX;BYHOUR=9", "WKST must be one of"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=9", "never produces"),
        ("FREQ=DAILY;BYHOUR=9\nFREQ=DAILY;BYHOUR=10", "single RRULE"),
    ],
)
def test_validate_rrule_refuses(rule: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate_rrule(rule)


def test_functions_validate_their_rule_and_zone() -> None:
    with pytest.raises(ScheduleError, match="too frequent"):
        occurrences("FREQ=HOURLY;BYHOUR=1", NY, date(2026, 1, 1), None, utc(2026, 1, 1), utc(2026, 1, 2))
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        next_occurrence(DAILY_10, "Mars/Base", date(2026, 1, 1), None, utc(2026, 1, 1))
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        in_quiet_hours(utc(2026, 1, 1), "", NIGHT)


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", "america/new_york", "../etc/passwd", "/etc/localtime", "localtime"]
)
def test_validate_timezone_refuses(name: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_timezone(name)
    assert str(caught.value) == f"Unknown time zone '{name}'"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("name", [NY, MADRID, SYDNEY, SANTIAGO, "UTC", "Asia/Kathmandu"])
def test_validate_timezone_accepts(name: str) -> None:
    assert validate_timezone(name) == ZoneInfo(name)


# --- properties ---

ZONES = [
    NY,
    MADRID,
    SYDNEY,
    SANTIAGO,
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 with DST
    "Asia/Kolkata",  # +05:30, no DST
    "Asia/Kathmandu",  # +05:45, no DST
    "UTC",
]
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
day_sets = st.sets(st.sampled_from(DAYS), min_size=1)
hour_sets = st.sets(st.integers(0, 23), min_size=1, max_size=3)
minute_sets = st.sets(st.sampled_from([0, 15, 30, 45]), min_size=1, max_size=2)
starts = st.dates(min_value=date(2015, 1, 1), max_value=date(2028, 12, 31))
ends = st.none() | st.dates(min_value=date(2025, 1, 1), max_value=date(2029, 1, 31))
walls = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


def offset_changes(name: str, year: int) -> list[datetime]:
    """The UTC hours in which the zone's offset changes during the year."""
    zone, at, found = ZoneInfo(name), utc(year, 1, 1), []
    while at.year == year:
        if at.astimezone(zone).utcoffset() != (at + timedelta(hours=1)).astimezone(zone).utcoffset():
            found.append(at)
        at += timedelta(hours=1)
    return found


# Random instants rarely land near a DST change, so half the draws are aimed at one.
DST_CHANGES = [(name, at) for name in ZONES for at in offset_changes(name, 2026)]
zoned_instants = st.one_of(
    st.tuples(st.sampled_from(ZONES), instants),
    st.builds(
        lambda change, shift: (change[0], change[1] + shift),
        st.sampled_from(DST_CHANGES),
        st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)),
    ),
)


def weekly(days: set[str], hours: set[int], minutes: set[int]) -> str:
    return (
        f"FREQ=WEEKLY;BYDAY={','.join(sorted(days))};BYHOUR={','.join(map(str, sorted(hours)))};"
        f"BYMINUTE={','.join(map(str, sorted(minutes)))}"
    )


def brute_force(
    days: set[str], hours: set[int], minutes: set[int], zone: ZoneInfo, start: date, end: date | None,
    after: datetime, upto: datetime,
) -> list[datetime]:  # fmt: skip
    """Every day in the window, every hour and minute, converted with fold=0."""
    found = set()
    day = max(start, after.astimezone(zone).date() - timedelta(days=2))
    last = upto.astimezone(zone).date() + timedelta(days=2)
    while day <= (last if end is None else min(last, end)):
        if DAYS[day.weekday()] in days:
            for hour in hours:
                for minute in minutes:
                    at = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
                    if after < at <= upto:
                        found.add(at)
        day += timedelta(days=1)
    return sorted(found)


@settings(max_examples=200, deadline=None)
@given(
    zoned=zoned_instants,
    days=day_sets,
    hours=hour_sets,
    minutes=minute_sets,
    start=starts,
    end=ends,
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=45)),
)
def test_weekly_occurrences_property(
    zoned: tuple[str, datetime], days: set[str], hours: set[int], minutes: set[int], start: date,
    end: date | None, length: timedelta,
) -> None:  # fmt: skip
    zone_name, after = zoned
    zone, upto = ZoneInfo(zone_name), after + length
    found = occurrences(weekly(days, hours, minutes), zone_name, start, end, after, upto)
    assert all(a < b for a, b in pairwise(found))
    assert all(after < o <= upto for o in found)
    for o in found:
        wall = o.astimezone(zone)
        if (wall.hour, wall.minute) not in {(h, m) for h in hours for m in minutes}:
            # Only a spring-forward gap may move a check-in: some rule time that day does not exist
            # and lands exactly here.
            shifted = [
                naive
                for h in hours
                for m in minutes
                if (naive := datetime.combine(wall.date(), time(h, m)))
                .replace(tzinfo=zone)
                .astimezone(UTC)
                .astimezone(zone)
                .replace(tzinfo=None)
                != naive
                and naive.replace(tzinfo=zone).astimezone(UTC) == o
            ]
            assert shifted, f"{wall} is not a rule time"
        assert wall.date() >= start
        assert end is None or wall.date() <= end
    assert found == brute_force(days, hours, minutes, zone, start, end, after, upto)


@settings(max_examples=200, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    freq=st.sampled_from(["DAILY", "WEEKLY"]),
    interval=st.integers(1, 3),
    days=day_sets,
    setpos=st.none() | st.sampled_from([1, -1]),
    wkst=st.sampled_from(DAYS),
    hours=hour_sets,
    days_before=st.integers(0, 800),
    after=instants,
)
def test_skipping_ahead_matches_full_expansion(
    zone_name: str, freq: str, interval: int, days: set[str], setpos: int | None, wkst: str,
    hours: set[int], days_before: int, after: datetime,
) -> None:  # fmt: skip
    # Skipping whole periods must not change anything, even with BYSETPOS in a partial week.
    start = after.date() - timedelta(days=days_before)
    rule = f"FREQ={freq};INTERVAL={interval};BYDAY={','.join(days)};BYHOUR={','.join(map(str, hours))}"
    rule += f";WKST={wkst}" + (f";BYSETPOS={setpos}" if setpos else "")
    upto = after + timedelta(days=30)
    full = rrulestr(validate_rrule(rule), dtstart=datetime.combine(start, time()))
    zone = ZoneInfo(zone_name)
    expected = sorted(
        {
            u
            for n in full.between(
                datetime.combine(start, time()),
                datetime.combine(upto.date(), time()) + timedelta(days=3),
                inc=True,
            )
            if after < (u := n.replace(tzinfo=zone).astimezone(UTC)) <= upto
        }
    )
    assert occurrences(rule, zone_name, start, None, after, upto) == expected
    if expected:
        assert next_occurrence(rule, zone_name, start, None, after) == expected[0]


@settings(max_examples=200, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    days=day_sets,
    hours=hour_sets,
    start=starts,
    now=instants,
    hours_back=st.integers(0, 24 * 10),
)
def test_latest_due_is_last_in_window(
    zone_name: str, days: set[str], hours: set[int], start: date, now: datetime, hours_back: int
) -> None:
    rule, window = weekly(days, hours, {0}), timedelta(hours=hours_back)
    found = occurrences(rule, zone_name, start, None, now - window, now)
    assert latest_due(rule, zone_name, start, None, now, window) == (found[-1] if found else None)
    upcoming = next_occurrence(rule, zone_name, start, None, now)
    assert upcoming is not None
    assert now < upcoming <= max(now, datetime.combine(start, time(), UTC)) + timedelta(days=8)
    assert occurrences(rule, zone_name, start, None, now, upcoming) == [upcoming]


@settings(max_examples=200, deadline=None)
@given(zoned=zoned_instants, start=walls, end=walls)
def test_send_time_property(zoned: tuple[str, datetime], start: time, end: time) -> None:
    zone_name, due = zoned
    quiet = QuietHours(start, end)
    sent = send_time(due, zone_name, quiet)
    assert sent >= due
    assert not in_quiet_hours(sent, zone_name, quiet)
    if not in_quiet_hours(due, zone_name, quiet):
        assert sent == due
    else:
        # The first moment allowed: a second earlier was still quiet.
        assert in_quiet_hours(sent - timedelta(seconds=1), zone_name, quiet)
    quiet_length = (datetime.combine(date.min, end) - datetime.combine(date.min, start)) % timedelta(days=1)
    # A quiet window under 23 h lasts at most an hour longer on a DST day; only a longer one can
    # leave a non-quiet window small enough for a DST gap to swallow.
    if quiet_length < timedelta(hours=23):
        assert sent - due <= timedelta(hours=24)


@settings(max_examples=200, deadline=None)
@given(days=day_sets, hours=hour_sets, minutes=minute_sets, prefix=st.sampled_from(["", "RRULE:", "rrule:"]))
def test_validate_rrule_is_idempotent(
    days: set[str], hours: set[int], minutes: set[int], prefix: str
) -> None:
    once = validate_rrule(prefix + weekly(days, hours, minutes).lower())
    assert validate_rrule(once) == once
    assert once.startswith("FREQ=WEEKLY;BYDAY=")
