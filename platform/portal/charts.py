"""Charts more than one app draws, as figures for a template to turn into SVG (server-side, no script)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

# RIGHT leaves room for the last day's label, centred on the plot's right edge.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 220, 44, 30, 12, 186


@dataclass
class BurnUp:
    """A count growing day by day towards a total, with a due date marked (templates/portal/_burnup.html)."""

    title: str
    description: str
    legend: str
    due_label: str
    points: str = ""
    total: int = 0
    total_y: float = 0.0
    due_x: float | None = None
    last: tuple[float, float] | None = None  # the latest point, marked: a one-day series draws no line
    ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT  # where the plot ends
    top: int = TOP
    bottom: int = BOTTOM


def burnup(
    series: list[tuple[date, int]], *, total: int, due: date, title: str, describe: str, legend: str, due_label: str
) -> BurnUp:
    """The chart of `series` (day, count so far) against `total`, from its first day to the later of its last day
    and `due`. `describe` is the description when there is a series, with {last}, {total}, {day} and {due} filled in."""
    if not series:
        return BurnUp(title=title, description="No history yet.", legend=legend, due_label=due_label, total=total)
    first = series[0][0]
    span = max((max(series[-1][0], due) - first).days, 1)
    plot_w = WIDTH - LEFT - RIGHT
    top_value = max(total, max(value for _day, value in series), 1)

    def x(day: date) -> float:
        return round(LEFT + plot_w * (day - first).days / span, 1)

    def y(value: int) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * value / top_value, 1)

    days = [date.fromordinal(first.toordinal() + n) for n in range(0, span + 1, max(1, span // 5))]
    last_day, last = series[-1]
    return BurnUp(
        title=title,
        description=describe.format(last=last, total=total, day=f"{last_day:%d %b %Y}", due=f"{due:%d %b %Y}"),
        legend=legend,
        due_label=due_label,
        points=" ".join(f"{x(day)},{y(value)}" for day, value in series),
        total=total,
        total_y=y(total),
        due_x=x(due),
        last=(x(last_day), y(last)),
        ticks=[(x(day), f"{day:%d %b}") for day in days],
    )


# A time series (templates/portal/_timeseries.html): lines over a span of time, events as ticks on the time axis, and
# marked points. Smaller than the burn-up: several sit side by side on a service page.
SERIES_W, SERIES_H, SERIES_LEFT, SERIES_RIGHT, SERIES_TOP, SERIES_BOTTOM = 640, 150, 56, 8, 10, 118


@dataclass
class Line:
    name: str
    points: str
    css: str  # a class of runway.css giving its colour and dash


@dataclass
class Mark:
    x: float
    y: float
    label: str


@dataclass
class TimeSeries:
    """Lines of (moment, value) over [start, end] from 0 to their highest value, ticks for events and marks."""

    id: str
    title: str
    description: str
    lines: list[Line]
    ticks: list[Mark]  # events on the time axis (deployments), y unused
    marks: list[Mark]  # points to circle (anomalies)
    top_text: str
    start_text: str
    end_text: str
    empty: bool
    width: int = SERIES_W
    height: int = SERIES_H
    left: int = SERIES_LEFT
    right: int = SERIES_W - SERIES_RIGHT
    top: int = SERIES_TOP
    bottom: int = SERIES_BOTTOM


def timeseries(
    lines: dict[str, list[tuple[datetime, float]]],
    *,
    id: str,  # noqa: A002 - the element id the SVG's title and description hang on
    title: str,
    start: datetime,
    end: datetime,
    fmt: Callable[[float], str],
    ticks: list[tuple[datetime, str]] = (),  # type: ignore[assignment]
    marks: list[tuple[datetime, float, str]] = (),  # type: ignore[assignment]
    css: dict[str, str] | None = None,
) -> TimeSeries:
    """The chart of `lines` (name → points, oldest first); `fmt` writes a value for the axis and the description."""
    values = [value for points in lines.values() for _at, value in points]
    top = max(values, default=0.0) * 1.1 or 1.0
    span = (end - start).total_seconds() or 1.0
    plot_w = SERIES_W - SERIES_LEFT - SERIES_RIGHT

    def x(at: datetime) -> float:
        return round(SERIES_LEFT + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0), 1)

    def y(value: float) -> float:
        return round(SERIES_BOTTOM - (SERIES_BOTTOM - SERIES_TOP) * min(value, top) / top, 1)

    described = []
    for name, points in lines.items():
        if points:
            described.append(f"{name} now {fmt(points[-1][1])}, highest {fmt(max(v for _a, v in points))}")
    return TimeSeries(
        id=id,
        title=title,
        description=("; ".join(described) + ".") if described else "No data in this span.",
        lines=[
            Line(name, " ".join(f"{x(at)},{y(v)}" for at, v in points), (css or {}).get(name, ""))
            for name, points in lines.items()
            if points
        ],
        ticks=[Mark(x(at), SERIES_BOTTOM, label) for at, label in ticks if start <= at <= end],
        marks=[Mark(x(at), y(value), label) for at, value, label in marks if start <= at <= end],
        top_text=fmt(top),
        start_text=f"{start:%d %b %H:%M}",
        end_text=f"{end:%d %b %H:%M}",
        empty=not values,
    )
