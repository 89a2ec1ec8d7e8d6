"""Figures as people read them: units chosen by size, bands in colour, charts as SVG geometry, links to the board."""

from dataclasses import dataclass
from datetime import date
from html import escape
from urllib.parse import quote, urlencode

from django.conf import settings
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from deployments import analysis
from insights import bands, selectors

# Badge colours: white text on each meets WCAG AA (4.5:1).
BAND_COLOURS = {
    bands.ELITE: "#237a36",
    bands.HIGH: "#2f4ac0",
    bands.MEDIUM: "#a45c00",
    bands.LOW: "#c92a2a",
    bands.NO_DATA: "#5b6475",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def duration_tick(seconds: float) -> str:
    """A duration short enough for a chart's axis, whose label has the room of the chart's left margin only."""
    if seconds >= 48 * 3600:
        days = seconds / 86400
        return f"{days:.0f} d" if days >= 10 else f"{days:.1f} d"
    return duration(seconds)


def share(value: float | None) -> str:
    """A rate as every page writes one (deployments.analysis.percent), or a dash when there is none."""
    return "—" if value is None else analysis.percent(value)


def share_tick(value: float) -> str:
    return f"{value * 100:.0f} %"


def frequency(figures: selectors.Figures) -> str:
    if figures.per_day is None:
        return "—"
    if figures.per_day >= 1:
        return f"{figures.per_day:.1f} per day"
    return f"{figures.per_week:.1f} per week"


def window_filters(window: selectors.Window | None) -> dict[str, str]:
    """The board's day range for a window: the board counts days in the portal's time zone, so a window asked in
    another zone links to the board without dates (newest first) rather than to other days than its own."""
    if window is None or window.zone.key != settings.TIME_ZONE:
        return {}
    return {"since": window.first_day.isoformat(), "until": window.last_day.isoformat()}


def board_url(
    question_scope: selectors.Scope, environment: str, window: selectors.Window | None = None, **extra: str
) -> str:
    """The deployments board filtered to a scope, environment and the window's days."""
    params = {
        **question_scope.board_filters,
        **({"environment": environment} if environment else {}),
        **window_filters(window),
        **extra,
    }
    return reverse("deployments:board") + ("?" + urlencode(params) if params else "")


def comparison_rows(
    breakdown: list[tuple[selectors.Scope, selectors.Figures]],
    *,
    environment: str,
    query: str,
    window: selectors.Window | None = None,
) -> list[SafeString]:
    """The comparison table's rows (a team or service, its deployments linked to the board, then its cells), as HTML.

    Written here rather than in the template, and escaped with the standard library's html.escape (what Django's
    escape does, without its lazy-string checks): the organisation compares hundreds of teams, and two dozen template
    lookups per row cost more than the whole query. URLs are reversed once per kind and completed per row."""
    rows: list[SafeString] = []
    suffix = f"?{query}" if query else ""
    page_urls: dict[str, str] = {}
    # The board's query after the team or service, the same for every row.
    shared = urlencode({**({"environment": environment} if environment else {}), **window_filters(window)})
    board = reverse("deployments:board") + "?"
    badge = ' <span class="badge" style="background:{};color:#fff">{}</span>'
    table = bands.table_name()
    metrics = ("deployment_frequency", "lead_time", "change_fail_rate", "recovery_time")
    specs = {metric: bands.bands_for(metric) for metric in metrics}
    for member, figures in breakdown:
        if member.kind not in page_urls:  # reversed once, with a placeholder slug replaced per row
            page_urls[member.kind] = reverse(f"portal:insights-{member.kind}", args=["slug-placeholder"])
        href = page_urls[member.kind].replace("slug-placeholder", quote(member.slug)) + suffix
        filters = "&".join(part for part in (urlencode(member.board_filters), shared) if part)
        cells = "".join(
            f"<td>{escape(value)}"
            + (badge.format(BAND_COLOURS[band.key], escape(band.label)) if band else "")
            + "</td>"
            for value, band in (
                (frequency(figures), bands.band_from(specs["deployment_frequency"], table, figures.per_day)),
                (duration(figures.lead_median), bands.band_from(specs["lead_time"], table, figures.lead_median)),
                (
                    share(figures.change_fail_rate),
                    bands.band_from(specs["change_fail_rate"], table, figures.change_fail_rate),
                ),
                (
                    duration(figures.recovery_median),
                    bands.band_from(specs["recovery_time"], table, figures.recovery_median),
                ),
                (share(figures.rework_rate), None),
            )
        )
        rows.append(
            mark_safe(  # noqa: S308 - every value above and below is escaped
                '<tr><th scope="row" style="text-transform:none;font-size:inherit;letter-spacing:normal">'
                f'<a href="{escape(href)}">{escape(member.name)}</a></th>'
                f'<td><a href="{escape(board + filters)}">{figures.deployments}</a></td>{cells}</tr>'
            )
        )
    return rows


def board_environment(environment: str, environments: list) -> str:  # type: ignore[type-arg]
    """The board filters by one environment: the one asked for, or the only protected one when there is one."""
    if environment:
        return environment
    return environments[0].slug if len(environments) == 1 else ""


@dataclass
class Tile:
    key: str
    title: str
    value: str
    detail: str
    band: bands.Band | None
    link: str = ""
    band_note: str = ""

    @property
    def colour(self) -> str:
        return BAND_COLOURS[self.band.key] if self.band else BAND_COLOURS[bands.NO_DATA]


def tiles(
    figures: selectors.Figures, *, scope: selectors.Scope, environment: str, window: selectors.Window | None = None
) -> list[Tile]:
    marks = figures.bands
    days = figures.days
    return [
        Tile(
            "deployment_frequency",
            "Deployment frequency",
            frequency(figures),
            f"{figures.successes} successful of {figures.deployments} in {days} days; "
            f"a deployment on {share(figures.share_of_days)} of days.",
            marks["deployment_frequency"],
            board_url(scope, environment, window, state="succeeded"),
        ),
        Tile(
            "lead_time",
            "Change lead time",
            "median " + duration(figures.lead_median) if figures.lead_median is not None else "—",
            f"p90 {duration(figures.lead_p90)} from first commit to success, over {figures.leads} "
            f"deployment{'s' if figures.leads != 1 else ''} that shipped new commits with a recorded change set.",
            marks["lead_time"],
            board_url(scope, environment, window, state="succeeded"),
        ),
        Tile(
            "change_fail_rate",
            "Change fail rate",
            share(figures.change_fail_rate),
            f"{figures.failures} of {figures.deployments} deployments failed or were rolled back.",
            marks["change_fail_rate"],
            board_url(scope, environment, window),
        ),
        Tile(
            "recovery_time",
            "Failed deployment recovery time",
            "median " + duration(figures.recovery_median) if figures.recovery_median is not None else "—",
            f"p90 {duration(figures.recovery_p90)} over {figures.recovered} recoveries"
            + (f"; {figures.unrecovered} not recovered yet." if figures.unrecovered else "."),
            marks["recovery_time"],
            board_url(scope, environment, window, state="rolled_back"),
        ),
        Tile(
            "rework_rate",
            "Rework rate",
            share(figures.rework_rate),
            f"{figures.rework} of {figures.deployments} deployments were rollbacks or redeploys of an older release.",
            None,
            board_url(scope, environment, window),
            band_note="DORA publishes no bands for rework rate.",
        ),
    ]


# Charts

WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 360, 150, 52, 12, 118


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    text: str
    label: str


@dataclass
class Chart:
    id: str
    title: str
    bars: list[Bar]
    empty: list[Bar]  # weeks with nothing to measure, drawn as a mark on the axis
    top_text: str
    ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = BOTTOM


def _chart(
    chart_id: str,
    title: str,
    points: list[tuple[date, float | None]],
    fmt: object,
    top_hint: float = 0.0,
    tick: object = None,
) -> Chart:
    values = [v for _, v in points if v is not None]
    top = max([*values, top_hint]) or 1.0
    slot = (WIDTH - LEFT - 18) / max(len(points), 1)  # room on the right for the last week's label
    gap = min(2.0, slot * 0.2)
    bars, empty = [], []
    for n, (monday, value) in enumerate(points):
        x = round(LEFT + n * slot + gap / 2, 1)
        label = f"Week of {monday:%d %b %Y}"
        if value is None:
            empty.append(Bar(x, BOTTOM - 2, round(slot - gap, 1), 2, "no data", label))
            continue
        h = round((BOTTOM - TOP) * value / top, 1)
        bars.append(Bar(x, round(BOTTOM - h, 1), round(slot - gap, 1), h, fmt(value), label))  # type: ignore[operator]
    step = max(1, len(points) // 4)
    ticks = [(round(LEFT + n * slot + slot / 2, 1), f"{points[n][0]:%d %b}") for n in range(0, len(points), step)]
    return Chart(chart_id, title, bars, empty, (tick or fmt)(top), ticks)  # type: ignore[operator]


def charts(weekly: list[tuple[date, selectors.Figures]]) -> list[Chart]:
    return [
        _chart(
            "chart-frequency",
            "Successful deployments per week",
            [(d, f.successes) for d, f in weekly],
            lambda v: f"{v:.0f}",
            1,
        ),
        _chart(
            "chart-cfr",
            "Change fail rate per week",
            [(d, f.change_fail_rate) for d, f in weekly],
            share,
            0.0,
            share_tick,
        ),
        _chart(
            "chart-lead",
            "Median change lead time per week",
            [(d, f.lead_median) for d, f in weekly],
            duration,
            0.0,
            duration_tick,
        ),
        _chart(
            "chart-recovery",
            "Median recovery time per week",
            [(d, f.recovery_median) for d, f in weekly],
            duration,
            0.0,
            duration_tick,
        ),
        _chart("chart-rework", "Rework rate per week", [(d, f.rework_rate) for d, f in weekly], share, 0.0, share_tick),
    ]
