"""Trends as geometry for server-rendered inline SVGs: no JavaScript, no chart library.

The 12-week trend: worst pain (0–10) is a line with a dot per check-in; each symptom flag is a row of marks
below it (filled square = yes, open circle = no, nothing = not answered).

The calcium trend: adjusted calcium (mmol/L) over 180 days, a dot per result (open when the service derived
it from total calcium and albumin), with the 2.6 mmol/L upper reference limit and the 3.0 mmol/L urgent
threshold of the ruleset drawn and labelled in words. A withdrawn result is not plotted.

The templates also render the same data as tables for screen readers and for anyone who prefers numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pro_service.services.dashboard_queries import FLAG_ITEMS, LabTrend, Trend

WIDTH = 720
LEFT = 170  # room for the flag labels
RIGHT = 16
TOP = 14
PAIN_HEIGHT = 150
ROW = 22


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    value: int
    label: str
    severe: bool


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    value: bool
    label: str


@dataclass
class TrendChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    pain_bottom: float
    dots: list[Dot] = field(default_factory=list)
    path: str = ""
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    flag_rows: list[tuple[float, str]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    severe_y: float = 0.0
    empty: bool = True


def build(trend: Trend, tz: str) -> TrendChart:
    zone = ZoneInfo(tz)
    plot_right = WIDTH - RIGHT
    span = (trend.end - trend.start).total_seconds() or 1.0
    pain_bottom = TOP + PAIN_HEIGHT
    height = int(pain_bottom + 28 + ROW * len(FLAG_ITEMS) + 8)

    def x_of(at: datetime) -> float:
        return round(LEFT + (plot_right - LEFT) * (at - trend.start).total_seconds() / span, 1)

    def y_of(pain: int) -> float:
        return round(pain_bottom - PAIN_HEIGHT * pain / 10, 1)

    chart = TrendChart(
        width=WIDTH,
        height=height,
        left=LEFT,
        right=plot_right,
        top=TOP,
        pain_bottom=pain_bottom,
        severe_y=y_of(7),
        empty=not trend.points,
    )
    chart.y_ticks = [(y_of(v), v) for v in (0, 2, 4, 6, 8, 10)]
    # A tick at each Monday, labelled every other week so labels never collide.
    first = trend.start.astimezone(zone)
    monday = (first - timedelta(days=first.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    index = 0
    while monday <= trend.end:
        if monday >= trend.start:
            chart.x_ticks.append((x_of(monday), monday.strftime("%-d %b") if index % 2 == 0 else ""))
            index += 1
        monday += timedelta(days=7)
    rows_top = pain_bottom + 28
    chart.flag_rows = [(rows_top + ROW * i + ROW / 2, label) for i, (_code, label) in enumerate(FLAG_ITEMS)]
    line: list[str] = []
    for point in trend.points:
        x = x_of(point.at)
        when = point.at.astimezone(zone).strftime("%a %-d %b")
        if point.pain is not None:
            y = y_of(point.pain)
            chart.dots.append(
                Dot(x, y, point.pain, f"{when}: worst pain {point.pain} of 10", point.pain >= 7)
            )
            line.append(f"{'M' if not line else 'L'}{x},{y}")
        for i, (code, label) in enumerate(FLAG_ITEMS):
            value = point.flags.get(code)
            if value is not None:
                answer = "yes" if value else "no"
                chart.marks.append(Mark(x, chart.flag_rows[i][0], value, f"{when}: {label}: {answer}"))
    chart.path = " ".join(line)
    return chart


# --- calcium ---------------------------------------------------------------------------------------
CALCIUM_WIDTH = 520
CALCIUM_LEFT = 48
CALCIUM_HEIGHT = 170
CALCIUM_TOP = 26  # room above the plot for the unit
# Adjusted calcium (mmol/L): the usual upper reference limit, and the ruleset's urgent threshold
# (config/rules: hypercalcemia-lab-2.6-to-3 is same day, hypercalcemia-lab-above-3 urgent).
CALCIUM_UPPER_LIMIT = 2.6
CALCIUM_URGENT = 3.0
_CALCIUM_FLOOR = 2.0  # the axis always shows at least 2.0–3.2 so the two lines are always in view
_CALCIUM_CEILING = 3.2


@dataclass(frozen=True)
class LabDot:
    x: float
    y: float
    label: str
    derived: bool
    high: bool  # above the urgent threshold


@dataclass
class CalciumChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: float
    dots: list[LabDot] = field(default_factory=list)
    path: str = ""
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    upper_y: float = 0.0  # 2.6 mmol/L
    urgent_y: float = 0.0  # 3.0 mmol/L
    withdrawn: int = 0  # results withdrawn by the lab (in the table, not plotted)
    empty: bool = True


def build_calcium(trend: LabTrend, tz: str) -> CalciumChart:
    zone = ZoneInfo(tz)
    right = CALCIUM_WIDTH - RIGHT
    bottom = CALCIUM_TOP + CALCIUM_HEIGHT
    span = (trend.end - trend.start).total_seconds() or 1.0
    values = [p.value for p in trend.points if p.value is not None]
    low = min([_CALCIUM_FLOOR, *(math.floor((v - 0.1) * 5) / 5 for v in values)])
    high = max([_CALCIUM_CEILING, *(math.ceil((v + 0.1) * 5) / 5 for v in values)])
    low, high = max(low, 0.0), max(high, low + 0.4)

    def x_of(at: datetime) -> float:
        offset = min(max((at - trend.start).total_seconds(), 0.0), span)
        return round(CALCIUM_LEFT + (right - CALCIUM_LEFT) * offset / span, 1)

    def y_of(value: float) -> float:
        return round(bottom - CALCIUM_HEIGHT * (value - low) / (high - low), 1)

    chart = CalciumChart(
        width=CALCIUM_WIDTH,
        height=int(bottom + 26),
        left=CALCIUM_LEFT,
        right=right,
        top=CALCIUM_TOP,
        bottom=bottom,
        upper_y=y_of(CALCIUM_UPPER_LIMIT),
        urgent_y=y_of(CALCIUM_URGENT),
        withdrawn=len(trend.points) - len(values),
        empty=not values,
    )
    step = 0.2 if high - low <= 2.0 else 0.5
    tick = math.ceil(low / step - 1e-9) * step
    while tick <= high + 1e-9:
        chart.y_ticks.append((y_of(tick), f"{tick:.1f}"))
        tick = round(tick + step, 6)
    # A tick on the first of each month, labelled with the month's name.
    first = trend.start.astimezone(zone)
    month = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= trend.end:
        if month >= trend.start:
            chart.x_ticks.append((x_of(month), month.strftime("%b")))
        month = (month + timedelta(days=32)).replace(day=1)
    line: list[str] = []
    for point in trend.points:
        if point.value is None:
            continue
        x, y = x_of(point.taken_at), y_of(point.value)
        when = point.taken_at.astimezone(zone).strftime("%-d %b %Y")
        note = ", derived from total calcium and albumin" if point.derived else ""
        label = f"{when}: adjusted calcium {point.value:.2f} mmol/L{note}"
        chart.dots.append(LabDot(x, y, label, point.derived, point.value > CALCIUM_URGENT))
        line.append(f"{'M' if not line else 'L'}{x},{y}")
    chart.path = " ".join(line)
    return chart
