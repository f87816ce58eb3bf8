"""Micro: scheduling in the patient's wall-clock time. `latest_due` (what every tick calls per schedule),
`next_occurrence` and `occurrences` for a daily rule started ten years ago, in a zone with daylight saving,
and `send_time` (quiet hours). Pure functions, no servers. `python -m benchmarks.bench_scheduling [--full]`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from benchmarks import micro
from benchmarks.harness import table
from benchmarks.micro import HEADER, per_call, row

ZONE = "America/New_York"
DAILY = "FREQ=DAILY;BYHOUR=10;BYMINUTE=0"
WEEKLY = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0"


def run(full: bool = False) -> dict[str, Any]:
    from pro_service.scheduling import QuietHours, latest_due, next_occurrence, occurrences, send_time

    repeat = 2000 if full else 300
    now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    ten_years_ago = date(2016, 11, 25)
    window = timedelta(hours=6)
    quiet = QuietHours(time(21, 0), time(8, 0))
    cases: list[tuple[str, Any, int]] = [
        (
            "latest_due daily, started 10 years ago",
            lambda: latest_due(DAILY, ZONE, ten_years_ago, None, now, window),
            repeat,
        ),
        (
            "latest_due daily, started today",
            lambda: latest_due(DAILY, ZONE, now.date(), None, now, window),
            repeat,
        ),
        (
            "latest_due weekly, started 10 years ago",
            lambda: latest_due(WEEKLY, ZONE, ten_years_ago, None, now, window),
            repeat,
        ),
        (
            "next_occurrence daily, 10 years",
            lambda: next_occurrence(DAILY, ZONE, ten_years_ago, None, now),
            repeat,
        ),
        (
            "occurrences daily, whole 10 years (3,653)",
            lambda: occurrences(DAILY, ZONE, ten_years_ago, None, datetime(2016, 11, 24, tzinfo=UTC), now),
            max(5, repeat // 100),
        ),
        (
            "occurrences daily, one week",
            lambda: occurrences(DAILY, ZONE, ten_years_ago, None, now - timedelta(days=7), now),
            repeat,
        ),
        (
            "send_time inside quiet hours",
            lambda: send_time(datetime(2026, 11, 26, 3, tzinfo=UTC), ZONE, quiet),
            repeat,
        ),
    ]
    results, rows = {}, []
    for name, fn, n in cases:
        result = per_call(fn, repeat=n)
        results[name] = result
        rows.append(row(name, result))
    count = len(occurrences(DAILY, ZONE, ten_years_ago, None, datetime(2016, 11, 24, tzinfo=UTC), now))
    table(f"Scheduling (per call; {ZONE}; the 10-year expansion yields {count} occurrences)", HEADER, rows)
    return results


def main() -> None:
    micro.main(__doc__, run)


if __name__ == "__main__":
    main()
