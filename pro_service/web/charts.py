"""The 12-week trend as geometry for a server-rendered inline SVG: no JavaScript, no chart library.

Worst pain (0–10) is a line with a dot per check-in; each symptom flag is a row of marks below it
(filled square = yes, open circle = no, nothing = not answered). The template also renders the same data
as a table for screen readers and for anyone who prefers numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pro_service.services.dashboard_queries import FLAG_ITEMS, Trend

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
