"""Performance bands (Elite, High, Medium, Low) for the DORA figures, and the table they come from.

The defaults are the table in issue 12 (after DORA's State of DevOps clusters). A deployment can replace any part
of it with `INSIGHTS_BANDS` in settings; `INSIGHTS_BAND_TABLE` names the table shown beside every band. Each
threshold says whether its limit belongs to the band (inclusive) or to the next one down, so every value falls in
exactly one band: docs/insights.md lists which side each gap of the published table went to.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

ELITE, HIGH, MEDIUM, LOW, NO_DATA = "elite", "high", "medium", "low", "no_data"
BAND_LABELS = {ELITE: "Elite", HIGH: "High", MEDIUM: "Medium", LOW: "Low", NO_DATA: "No data"}

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY

DEFAULT_TABLE = "Runway's defaults (issue 12's table, after DORA's State of DevOps clusters)"
# Per metric: "higher" or "lower" is better, then (band, limit, inclusive) from the best band down; below the last
# limit is Low. Deployment frequency is in successful deployments per day, times in seconds, rates as fractions.
DEFAULT_BANDS: dict[str, dict[str, Any]] = {
    # Elite "on demand (multiple per day)": more than one a day on average. High "once per day to once per week":
    # exactly one a day is High. Medium "once per week to once per month" (a month is 30 days).
    "deployment_frequency": {
        "better": "higher",
        "thresholds": [(ELITE, 1.0, False), (HIGH, 1 / 7, True), (MEDIUM, 1 / 30, True)],
    },
    # Elite "less than one hour"; High "one day to one week", with the gap from one hour to one day given to High;
    # Medium "one week to one month": exactly one week is still High.
    "lead_time": {"better": "lower", "thresholds": [(ELITE, HOUR, False), (HIGH, WEEK, True), (MEDIUM, MONTH, True)]},
    # Elite "less than one hour", High "less than one day", Medium "one day to one week" (one week included).
    "recovery_time": {
        "better": "lower",
        "thresholds": [(ELITE, HOUR, False), (HIGH, DAY, False), (MEDIUM, WEEK, True)],
    },
    # Elite "0-15 %", High "16-30 %", Medium "31-45 %": the gaps (15-16 %, 30-31 %, 45-46 %) go to the band below
    # (15.5 % is High), so each band's upper limit is inclusive.
    "change_fail_rate": {
        "better": "lower",
        "thresholds": [(ELITE, 0.15, True), (HIGH, 0.30, True), (MEDIUM, 0.45, True)],
    },
}


@dataclass(frozen=True)
class Band:
    """A figure's band and the table it was read from."""

    key: str
    table: str

    @property
    def label(self) -> str:
        return BAND_LABELS[self.key]


def table_name() -> str:
    return str(getattr(settings, "INSIGHTS_BAND_TABLE", DEFAULT_TABLE))


def bands_for(metric: str) -> dict[str, Any]:
    overrides = getattr(settings, "INSIGHTS_BANDS", {}) or {}
    return overrides.get(metric) or DEFAULT_BANDS[metric]


def band_of(metric: str, value: float | None) -> Band:
    """The band of one figure; None (nothing to measure) is "no data", never a good band."""
    return band_from(bands_for(metric), table_name(), value)


def band_from(spec: dict[str, Any], table: str, value: float | None) -> Band:
    """band_of with the metric's thresholds and the table's name already read (a page banding hundreds of rows reads
    the settings once)."""
    if value is None:
        return Band(NO_DATA, table)
    higher = spec["better"] == "higher"
    for key, limit, inclusive in spec["thresholds"]:
        if higher:
            inside = value >= limit if inclusive else value > limit
        else:
            inside = value <= limit if inclusive else value < limit
        if inside:
            return Band(key, table)
    return Band(LOW, table)
