"""Check-in scheduling in the patient's own wall-clock time.

Everything here is pure: results depend only on the arguments (including "now").
Rules are RFC 5545 RRULE bodies expanded in naive *local* time from the schedule's
start date, then converted to UTC, so "Monday 10:00" stays 10:00 for the patient
across daylight-saving changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import takewhile
from zoneinfo import ZoneInfo, available_timezones

from dateutil.rrule import rrulestr

__all__ = [
    "QuietHours", "ScheduleError", "in_quiet_hours", "latest_due", "next_occurrence", "occurrences",
    "quiet_hours_end", "send_time", "validate_rrule", "validate_timezone",
]  # fmt: skip


class ScheduleError(ValueError):
    """An invalid schedule input; the message is written for an administrator or API client."""


@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock window with no SMS: start inclusive, end exclusive.

    start > end crosses midnight (21:00-08:00); start == end means no quiet hours.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ScheduleError("Quiet hours are local wall-clock times and must not carry a time zone.")


_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Canonical part order, so equal rules normalise to equal text.
_ORDER = (
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY",
    "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND", "BYSETPOS", "WKST",
)  # fmt: skip
# (smallest, largest, negative values allowed) for the numeric list parts. dateutil does not
# range-check these itself: BYHOUR=25 would silently search up to year 9999 for a match.
_RANGES = {
    "BYSECOND": (0, 59, False), "BYMINUTE": (0, 59, False), "BYHOUR": (0, 23, False),
    "BYMONTH": (1, 12, False), "BYMONTHDAY": (1, 31, True), "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True), "BYSETPOS": (1, 366, True),
}  # fmt: skip
_INT = re.compile(r"[+-]?\d{1,4}")
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"(\d{8})(T\d{6})?(Z?)")
# Margin around a window when expanding in local time: covers any UTC offset difference,
# gap shift or fold (the largest real-world jump, Samoa 2011, was a whole day).
_MARGIN = timedelta(days=2)
_PROBE_START = datetime(9970, 1, 1)
# How far next_occurrence looks before answering "none".
_HORIZON = timedelta(days=366 * 10)


@dataclass(frozen=True)
class _Rule:
    text: str
    freq: str
    interval: int
    has_count: bool


def validate_rrule(rule: str) -> str:
    """Return the normalised rule text (no 'RRULE:' prefix) or raise ScheduleError."""
    return _parse(rule).text


@lru_cache(maxsize=1024)
def _parse(rule: str) -> _Rule:
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :].strip()
    upper = text.upper()
    if not upper:
        raise ScheduleError("The recurrence rule is empty.")
    if "TZID" in upper or re.search(r"DTSTART[:;=]\s*\d{8}T\d{6}Z", upper):
        raise ScheduleError("The rule must not carry its own time zone; the patient's time zone applies.")
    if "DTSTART" in upper:
        raise ScheduleError("The rule must not contain DTSTART; the schedule's start date is set separately.")
    if any(c in upper for c in ":\r\n"):
        raise ScheduleError(
            "The recurrence rule must be a single RRULE such as 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=10'."
        )
    parts: dict[str, str] = {}
    for chunk in filter(None, (c.strip() for c in upper.split(";"))):
        key, sep, value = (s.strip() for s in chunk.partition("="))
        if not (sep and key and value):
            raise ScheduleError(f"Rule part '{chunk}' is not of the form NAME=VALUE.")
        if key not in _ORDER:
            raise ScheduleError(f"Rule part '{key}' is not supported.")
        if key in parts:
            raise ScheduleError(f"Rule part '{key}' appears more than once.")
        parts[key] = value.replace(" ", "")
    freq = parts.get("FREQ")
    if freq in ("HOURLY", "MINUTELY", "SECONDLY"):
        raise ScheduleError(f"FREQ={freq} is too frequent; check-ins may repeat at most daily.")
    if freq not in _FREQS:
        raise ScheduleError("The rule must set FREQ to DAILY, WEEKLY, MONTHLY or YEARLY.")
    # Expansion starts at local midnight, so without BYHOUR every check-in would go out at 00:00.
    if "BYHOUR" not in parts:
        raise ScheduleError("The rule must set BYHOUR (the local hour of the check-in), e.g. 'BYHOUR=10'.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ScheduleError("The rule cannot have both COUNT and UNTIL.")
    parts.setdefault("BYMINUTE", "0")
    parts.setdefault("BYSECOND", "0")
    for key, value in parts.items():
        if key in ("INTERVAL", "COUNT"):
            if not value.isdigit() or int(value) < 1:
                raise ScheduleError(f"{key} must be a positive whole number, not '{value}'.")
            parts[key] = str(int(value))
        elif key == "UNTIL":
            parts[key] = _parse_until(value)
        elif key == "BYDAY":
            parts[key] = _parse_byday(value, freq)
        elif key == "WKST" and value not in _DAYS:
            raise ScheduleError(f"WKST must be one of {', '.join(_DAYS)}, not '{value}'.")
        elif key in _RANGES:
            parts[key] = _parse_numbers(key, value)
    normalised = ";".join(f"{k}={parts[k]}" for k in _ORDER if k in parts)
    _check_produces(normalised)
    return _Rule(normalised, freq, int(parts.get("INTERVAL", "1")), "COUNT" in parts)


def _parse_until(value: str) -> str:
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise ScheduleError(f"UNTIL must look like 20261231 or 20261231T235959, not '{value}'.")
    if match[3]:
        raise ScheduleError("UNTIL must not carry a time zone ('Z'); the patient's time zone applies.")
    # A bare date would mean midnight to dateutil and silently drop that day's check-ins;
    # an administrator writing UNTIL=20261231 means "through 31 December".
    text = match[1] + (match[2] or "T235959")
    try:
        datetime.strptime(text, "%Y%m%dT%H%M%S")
    except ValueError:
        raise ScheduleError(f"UNTIL '{value}' is not a real date and time.") from None
    return text


def _parse_numbers(key: str, value: str) -> str:
    low, high, signed = _RANGES[key]
    numbers = set()
    for item in value.split(","):
        n = int(item) if _INT.fullmatch(item) else None
        if n is None or not (low <= (abs(n) if signed else n) <= high) or (signed and n == 0):
            raise ScheduleError(f"{key} value '{item}' is not a number in the range {low}-{high}.")
        numbers.add(n)
    return ",".join(str(n) for n in sorted(numbers))


def _parse_byday(value: str, freq: str) -> str:
    days = set()
    for item in value.split(","):
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise ScheduleError(f"BYDAY value '{item}' is not a weekday such as MO, TU or -1FR.")
        ordinal = int(match[1] or 0)
        if ordinal and (freq not in ("MONTHLY", "YEARLY") or not 1 <= abs(ordinal) <= 53):
            raise ScheduleError(f"BYDAY value '{item}': a numbered weekday needs FREQ=MONTHLY or YEARLY.")
        days.add((_DAYS.index(match[2]), ordinal))
    return ",".join(f"{n or ''}{_DAYS[d]}" for d, n in sorted(days))


def _check_produces(text: str) -> None:
    # dateutil gives up on a rule that never matches (30 February) only at year 9999, so such a
    # rule would stall every expansion. Probe the calendar's last 30 years, where that search
    # is short; the Gregorian calendar repeats every 400 years, so they are representative.
    probe = ";".join(p for p in text.split(";") if not p.startswith(("COUNT=", "UNTIL=")))
    try:
        first = rrulestr(probe, dtstart=_PROBE_START).after(_PROBE_START, inc=True)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ScheduleError(f"The recurrence rule could not be understood: {exc}.") from None
    if first is None:
        raise ScheduleError("The recurrence rule never produces a check-in.")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # 'localtime' is the server's zone, not an IANA name; 'posixrules' is a template.
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"})


def validate_timezone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA zone name, or ScheduleError for an unknown or empty name."""
    if name not in _zone_names():
        raise ScheduleError(f"Unknown time zone '{name}'")
    return ZoneInfo(name)


def _as_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{what} must be a timezone-aware datetime.")
    return value.astimezone(UTC)


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0 uses the offset in force *before* a transition: a nonexistent 02:30 on
    # spring-forward day lands on 03:30 (moved forward by the gap), and an ambiguous
    # 01:30 on fall-back day is the first of the two.
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _local_times(
    parsed: _Rule, start: date, end: date | None, lo: datetime, hi: datetime
) -> Iterator[datetime]:
    """Naive local occurrences in [lo, hi], in wall-clock order."""
    if end is not None:
        hi = min(hi, datetime.combine(end, time.max))
    dtstart = datetime.combine(start, time())
    if not parsed.has_count and parsed.freq in ("DAILY", "WEEKLY"):
        # Skip whole periods (days or weeks x INTERVAL) so a schedule started years ago costs
        # the same as a new one. BYHOUR/BYMINUTE/BYSECOND are explicit and the default
        # weekday survives whole-week shifts, so occurrences from the new start on are
        # unchanged; one spare period keeps a partial first week (BYSETPOS) out of range.
        period = (1 if parsed.freq == "DAILY" else 7) * parsed.interval
        periods = (lo - dtstart).days // period - 1
        if periods > 0:
            dtstart += timedelta(days=period * periods)
    expanded = rrulestr(parsed.text, dtstart=dtstart)
    return takewhile(lambda local: local <= hi, expanded.xafter(lo, inc=True))


def occurrences(
    rule: str,
    tz: str,
    start: date,
    end: date | None,
    window_start_utc: datetime,
    window_end_utc: datetime,
) -> list[datetime]:
    """UTC occurrences in (window_start_utc, window_end_utc], sorted, without duplicates."""
    parsed, zone = _parse(rule), validate_timezone(tz)
    after, upto = _as_utc(window_start_utc, "window_start_utc"), _as_utc(window_end_utc, "window_end_utc")
    if upto <= after:
        return []
    lo = after.astimezone(zone).replace(tzinfo=None) - _MARGIN
    hi = upto.astimezone(zone).replace(tzinfo=None) + _MARGIN
    # A set: two local times can meet after a gap shift (02:30 -> 03:30 next to a 03:30 rule).
    found = {_to_utc(local, zone) for local in _local_times(parsed, start, end, lo, hi)}
    return sorted(utc for utc in found if after < utc <= upto)


def latest_due(
    rule: str, tz: str, start: date, end: date | None, now_utc: datetime, catch_up_window: timedelta
) -> datetime | None:
    """The latest occurrence in (now - catch_up_window, now], or None; older ones are skipped."""
    if catch_up_window < timedelta(0):
        raise ScheduleError("The catch-up window must not be negative.")
    now = _as_utc(now_utc, "now_utc")
    found = occurrences(rule, tz, start, end, now - catch_up_window, now)
    return found[-1] if found else None


def next_occurrence(
    rule: str, tz: str, start: date, end: date | None, after_utc: datetime
) -> datetime | None:
    """First occurrence strictly after after_utc, or None if there is none within ten years."""
    parsed, zone = _parse(rule), validate_timezone(tz)
    after = _as_utc(after_utc, "after_utc")
    # The horizon counts from the start date when that is later.
    lo = max(after.astimezone(zone).replace(tzinfo=None) - _MARGIN, datetime.combine(start, time()))
    best: datetime | None = None
    best_local = lo
    for local in _local_times(parsed, start, end, lo, lo + _HORIZON):
        # Wall-clock order is UTC order except near a gap shift, so look a margin further.
        if best is not None and local > best_local + _MARGIN:
            break
        utc = _to_utc(local, zone)
        if utc > after and (best is None or utc < best):
            best, best_local = utc, local
    return best


def _is_quiet(local: time, quiet: QuietHours) -> bool:
    if quiet.start <= quiet.end:  # also start == end: an empty window
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def in_quiet_hours(at_utc: datetime, tz: str, quiet: QuietHours) -> bool:
    """Whether the patient's local wall clock at at_utc is inside quiet hours."""
    return _is_quiet(_as_utc(at_utc, "at_utc").astimezone(validate_timezone(tz)).time(), quiet)


def _wall_instants(local: datetime, zone: ZoneInfo) -> list[datetime]:
    """UTC instants at which the wall clock reaches `local`: two if ambiguous; if `local` is
    skipped by a gap, the instant of the jump (the clock passes it there)."""
    first, second = _to_utc(local, zone), local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        return sorted({first, second})
    # Gap: `second` is still before the jump, `first` after it; find the jump to the second.
    low, high = int(second.timestamp()), int(first.timestamp())
    after_offset = first.astimezone(zone).utcoffset()
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after_offset:
            high = mid
        else:
            low = mid
    return [datetime.fromtimestamp(high, UTC)]


def quiet_hours_end(at_utc: datetime, tz: str, quiet: QuietHours) -> datetime:
    """If at_utc is inside quiet hours, the UTC instant they end; otherwise at_utc unchanged."""
    zone = validate_timezone(tz)
    at = _as_utc(at_utc, "at_utc")
    local = at.astimezone(zone)
    if not _is_quiet(local.time(), quiet):
        return at
    # Usually today's or tomorrow's end; later days only when a DST gap swallows the whole
    # non-quiet window, so that the clock never shows an allowed time that day.
    for days in range(7):
        wall = datetime.combine(local.date() + timedelta(days=days), quiet.end)
        for candidate in _wall_instants(wall, zone):
            if candidate > at and not _is_quiet(candidate.astimezone(zone).time(), quiet):
                return candidate
    raise ScheduleError("Quiet hours never end in this time zone.")  # pragma: no cover


def send_time(due_utc: datetime, tz: str, quiet: QuietHours) -> datetime:
    """When a check-in due at due_utc may go out: due_utc itself, or the end of quiet hours."""
    return quiet_hours_end(due_utc, tz, quiet)
