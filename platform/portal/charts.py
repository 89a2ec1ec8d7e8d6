"""Charts more than one app draws, as figures for a template to turn into SVG (server-side, no script)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

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
