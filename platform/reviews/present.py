"""A campaign's burn-up chart, drawn on the server as SVG (no script, as the house's other charts)."""

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 480, 170, 52, 12, 12, 138


@dataclass
class BurnUp:
    title: str
    points: str  # the answered line, as an SVG polyline's points
    total_y: float
    total: int
    answered: int
    ticks: list[tuple[float, str]]
    due_x: float | None
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = BOTTOM


def burnup(series: list[tuple[date, int]], *, total: int, due_on: date) -> BurnUp:
    """Answered items per day against the scope: the line reaches the top when every item is answered."""
    days = max(len(series) - 1, 1)
    last_day = series[-1][0] if series else due_on
    span_end = max(last_day, due_on)
    first_day = series[0][0] if series else due_on
    days = max((span_end - first_day).days, 1)
    plot_w = WIDTH - LEFT - RIGHT
    top_value = max(total, 1)

    def x(day: date) -> float:
        return round(LEFT + plot_w * (day - first_day).days / days, 1)

    def y(value: int) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * value / top_value, 1)

    points = " ".join(f"{x(day)},{y(value)}" for day, value in series)
    step = max(1, days // 4)
    ticks = []
    for n in range(0, days + 1, step):
        day = date.fromordinal(first_day.toordinal() + n)
        ticks.append((x(day), f"{day:%d %b}"))
    answered = series[-1][1] if series else 0
    return BurnUp(
        title="Items answered, day by day",
        points=points,
        total_y=y(total),
        total=total,
        answered=answered,
        ticks=ticks,
        due_x=x(due_on),
        description=f"{answered} of {total} items answered by {last_day:%d %b %Y}; due {due_on:%d %b %Y}.",
    )
