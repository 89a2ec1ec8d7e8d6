"""Error budgets and multiwindow, multi-burn-rate alerts, as in the Google SRE workbook (chapter "Alerting on SLOs").

The burn rate over a window is the error ratio seen in it divided by the ratio the objective allows (1 - target): 1
spends the budget exactly over the SLO's window, 14.4 spends 2 % of a 30-day budget in an hour. An alert needs a
long window (the budget really is going) and a short one (it is still going now, so the alert stops soon after the
problem does):

- page: 14.4× over 1 h and over 5 min, or 6× over 6 h and over 30 min;
- ticket: 1× over 3 days and over 6 h.

A window with no events has no burn rate (None), and a rule with a window that has none does not fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "3d": timedelta(days=3),
}
PAGE_RULES = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
TICKET_RULES = (("3d", "6h", 1.0),)

OK, BURNING, EXHAUSTED, UNKNOWN = "ok", "burning", "exhausted", "unknown"


@dataclass
class Budget:
    """An SLO's state over its window and the alert windows, from event counts."""

    target: float
    good: float  # over the SLO's whole window
    total: float
    burn_rates: dict[str, float | None] = field(default_factory=dict)
    alert: str = ""  # "page", "ticket" or ""

    @property
    def allowed_ratio(self) -> float:
        return 1 - self.target

    @property
    def error_ratio(self) -> float | None:
        return (self.total - self.good) / self.total if self.total > 0 else None

    @property
    def remaining(self) -> float | None:
        """Share of the window's error budget left: 1 untouched, 0 spent, below 0 overspent."""
        ratio = self.error_ratio
        return None if ratio is None else 1 - ratio / self.allowed_ratio

    @property
    def sli(self) -> float | None:
        return None if self.total <= 0 else self.good / self.total


def burn_rate(good: float, total: float, target: float) -> float | None:
    return None if total <= 0 else ((total - good) / total) / (1 - target)


def alert_for(burn_rates: dict[str, float | None]) -> str:
    """ "page", "ticket" or "" for the burn rates of WINDOWS."""

    def fires(rules: tuple[tuple[str, str, float], ...]) -> bool:
        for long, short, factor in rules:
            long_rate, short_rate = burn_rates.get(long), burn_rates.get(short)
            if long_rate is not None and short_rate is not None and long_rate >= factor and short_rate >= factor:
                return True
        return False

    if fires(PAGE_RULES):
        return "page"
    return "ticket" if fires(TICKET_RULES) else ""


def budget_from(*, target: float, window: tuple[float, float], windows: dict[str, tuple[float, float]]) -> Budget:
    """A Budget from (good, total) over the SLO's window and over each alert window."""
    rates = {name: burn_rate(good, total, target) for name, (good, total) in windows.items()}
    return Budget(target=target, good=window[0], total=window[1], burn_rates=rates, alert=alert_for(rates))
