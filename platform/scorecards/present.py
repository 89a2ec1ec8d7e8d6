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
