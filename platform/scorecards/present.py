"""Charts for scorecard pages, drawn on the server as SVG (no script, as the house's other charts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from scorecards.selectors import Trend

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 220, 44, 12, 12, 186
# No level, then the levels lowest first; a scorecard with more levels than colours reuses the last.
COLOURS = ["#ced4da", "#b08d57", "#868e96", "#e0a800", "#3b5bdb", "#2b8a3e", "#862e9c"]


def colour(rank: int) -> str:
    return COLOURS[min(rank, len(COLOURS) - 1)]


@dataclass
class Bar:
    x: float
    y: float
    height: float
    colour: str
    title: str


@dataclass
class TrendChart:
    title: str
    description: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    top_value: int = 0
    bar_width: float = 0.0
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = BOTTOM


def trend_chart(trend: Trend, *, title: str) -> TrendChart:
    """One stacked column per day: how many services stood at each level, no level at the bottom."""
    legend = [(name, colour(rank)) for rank, name in enumerate(trend.levels)]
    if not trend.days:
        return TrendChart(title=title, description="No history yet: scores are kept from the first scoring on.",
                          legend=legend)  # fmt: skip
    first, last = trend.days[0], trend.days[-1]
    span = max((last - first).days + 1, 1)
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / span
    bar_width = round(max(slot * 0.8, 1.0), 1)
    totals = [sum(series[index] for series in trend.series) for index in range(len(trend.days))]
    top_value = max(max(totals), 1)
    scale = (BOTTOM - TOP) / top_value
    bars = []
    for index, day in enumerate(trend.days):
        x = round(LEFT + slot * (day - first).days + (slot - bar_width) / 2, 1)
        base = float(BOTTOM)
        for rank, series in enumerate(trend.series):
            value = series[index]
            if not value:
                continue
            height = value * scale
            base -= height
            bars.append(Bar(x=x, y=round(base, 1), height=round(height, 1), colour=colour(rank),
                            title=f"{day:%d %b %Y}: {value} at {trend.levels[rank]}"))  # fmt: skip
    step = max(1, span // 5)
    ticks = []
    for offset in range(0, span, step):
        day = date.fromordinal(first.toordinal() + offset)
        ticks.append((round(LEFT + slot * offset + slot / 2, 1), f"{day:%d %b}"))
    latest = ", ".join(f"{series[-1]} {name}" for name, series in zip(trend.levels, trend.series, strict=True))
    return TrendChart(
        title=title,
        description=f"Services by level each day from {first:%d %b %Y} to {last:%d %b %Y}; on the last day {latest}.",
        bars=bars,
        ticks=ticks,
        legend=legend,
        top_value=top_value,
        bar_width=bar_width,
    )


@dataclass
class BurnUp:
    title: str
    description: str
    points: str = ""
    total: int = 0
    total_y: float = 0.0
    due_x: float | None = None
    ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = BOTTOM


def burnup(series: list[tuple[date, int]], *, total: int, deadline: date, title: str) -> BurnUp:
    """Services meeting the target day by day, against the scope; the deadline marked."""
    if not series:
        return BurnUp(title=title, description="No history yet: the first scoring starts the chart.", total=total)
    first = series[0][0]
    span = max((max(series[-1][0], deadline) - first).days, 1)
    plot_w = WIDTH - LEFT - RIGHT
    top_value = max(total, max(value for _day, value in series), 1)

    def x(day: date) -> float:
        return round(LEFT + plot_w * (day - first).days / span, 1)

    def y(value: int) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * value / top_value, 1)

    step = max(1, span // 5)
    ticks = [(x(date.fromordinal(first.toordinal() + n)), f"{date.fromordinal(first.toordinal() + n):%d %b}")
             for n in range(0, span + 1, step)]  # fmt: skip
    last_day, last = series[-1]
    return BurnUp(
        title=title,
        description=f"{last} of {total} services there on {last_day:%d %b %Y}; deadline {deadline:%d %b %Y}.",
        points=" ".join(f"{x(day)},{y(value)}" for day, value in series),
        total=total,
        total_y=y(total),
        due_x=x(deadline),
        ticks=ticks,
    )
