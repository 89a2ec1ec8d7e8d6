from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone

from catalog.models import Service
from monitoring import selectors
from monitoring.models import SLO, Anomaly, HealthCheck, Metric
from monitoring.selectors import Health, service_health, service_slos, slo_budget_history
from portal import charts as charts_module

register = template.Library()

# Reuses the house's status colours: green passing, amber in trouble, red failing, grey for unknown.
BADGE = {"healthy": "badge-dep-succeeded", "degraded": "badge-dep-paused", "down": "badge-dep-failed"}


@register.simple_tag
def health_rows(service: Service, page_parts: object = None) -> list[dict[str, object]]:
    """The service's checks with their health, for templates/monitoring/_service_health.html (four queries; none for
    a service the page's `page_parts` say has no check)."""
    rows = []
    for check, health in service_health(service, page_parts=page_parts):
        rows.append({"check": check, "health": health, "badge": BADGE.get(health.status, "")})
    return rows


@register.filter
def uptime(health: Health, window: str) -> str:
    value = health.uptime.get(window)
    if value is None:
        return "—"
    # Two decimals only where they matter: 99.95 % and 100 % must not both read "100 %".
    text = f"{value:.2f}" if 99 <= value < 100 else f"{value:.0f}"
    return f"{text}\u00a0%"  # a no-break space: the sign stays with its number


SLO_BADGE = {"ok": "badge-dep-succeeded", "burning": "badge-dep-paused", "exhausted": "badge-dep-failed"}
CHART_W, CHART_H, CHART_LEFT, CHART_TOP, CHART_BOTTOM = 320, 90, 46, 8, 74


def _budget_chart(history: list[tuple[datetime, float]], start: datetime, end: datetime) -> dict[str, object]:
    """A line of the budget remaining over the window, from 100 % at the top to the lowest value (0 % at least)."""
    low = min([0.0, *(value for _, value in history)])
    span_x = (end - start).total_seconds() or 1.0

    def y(value: float) -> float:
        return round(CHART_TOP + (1 - value) / (1 - low) * (CHART_BOTTOM - CHART_TOP), 1)

    points = " ".join(
        f"{round(CHART_LEFT + (at - start).total_seconds() / span_x * (CHART_W - CHART_LEFT - 4), 1)},{y(value)}"
        for at, value in history
    )
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "bottom": CHART_BOTTOM,
        "zero_y": y(0.0),
        "low_text": f"{low * 100:.0f} %",
        "points": points,
        "start_text": f"{start:%d %b}",
        "end_text": f"{end:%d %b}",
        "last_text": f"{history[-1][1] * 100:.1f} %" if history else "no data",
    }


@register.simple_tag
def slo_rows(service: Service, page_parts: object = None) -> list[dict[str, object]]:
    """The service's SLOs with status and a budget chart each, for templates/monitoring/_service_slos.html."""
    now = timezone.now()
    rows = []
    for status in service_slos(service, now=now, page_parts=page_parts):
        history = slo_budget_history(status.slo, now=now)
        start = now - timedelta(days=status.slo.window_days)
        rows.append(
            {
                "status": status,
                "slo": status.slo,
                "badge": SLO_BADGE.get(status.status, ""),
                "chart": _budget_chart(history, start, now),
                "burn_1h": status.budget.burn_rates.get("1h"),
                "burn_6h": status.budget.burn_rates.get("6h"),
            }
        )
    return rows


@register.filter
def percent_of_one(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{2 if 0.99 <= value < 1 else 1}f}\u00a0%"


SERIES_W, SERIES_H, SERIES_LEFT, SERIES_TOP, SERIES_BOTTOM = 640, 140, 52, 10, 112


@register.simple_tag
def slo_series_chart(slo: SLO, anomalies: list[Anomaly]) -> dict[str, object]:
    """The SLO's error ratio over the last week in hourly buckets, with its service's (and dependencies')
    deployments on the time axis and the anomalies found in it marked."""
    now = timezone.now()
    start = now - timedelta(days=7)
    series = selectors.slo_error_series(slo, since=start, now=now, bucket=timedelta(hours=1))
    top = max([*(v for _, v in series), 2 * (1 - slo.target)])
    top = top or 1.0
    span = (now - start).total_seconds()

    def x(at: datetime) -> float:
        return round(SERIES_LEFT + (at - start).total_seconds() / span * (SERIES_W - SERIES_LEFT - 6), 1)

    def y(value: float) -> float:
        return round(SERIES_BOTTOM - value / top * (SERIES_BOTTOM - SERIES_TOP), 1)

    deployments = selectors.deployments_between(service=slo.service, since=start, until=now)
    marks = [a for a in anomalies if a.slo_id == slo.pk and a.started_at >= start]
    return {
        "width": SERIES_W,
        "height": SERIES_H,
        "left": SERIES_LEFT,
        "top": SERIES_TOP,
        "bottom": SERIES_BOTTOM,
        "points": " ".join(f"{x(at)},{y(v)}" for at, v in series),
        "allowed_y": y(1 - slo.target),
        "top_text": f"{top * 100:.1f} %",
        "deployments": [
            {"x": x(d.started_at), "label": f"deployment #{d.pk} of {d.service.slug}"} for d in deployments
        ],
        "anomalies": [{"x": x(a.started_at), "y": y(min(a.value, top)), "anomaly": a} for a in marks],
        "start_text": f"{start:%d %b}",
        "end_text": f"{now:%d %b}",
        "empty": not series,
    }


@register.simple_tag
def anomaly_rows(service: Service, kind: str = "", slo_rows: list[dict[str, object]] | None = None) -> list[Anomaly]:
    """The service's latest anomalies (of one kind: "slo" or the scraped metrics'); none to read for the SLOs' kind
    when `slo_rows` (from `slo_rows`) says the service has no SLO."""
    if kind == "slo" and slo_rows is not None and not slo_rows:  # found in SLOs' series only
        return []
    return selectors.service_anomalies(service, kind=kind)


@register.filter
def anomaly_cause(anomaly: Anomaly) -> str:
    """ "started N minutes after deployment #X of Y" when a deployment preceded the anomaly, else empty."""
    deployment = anomaly.deployment
    if deployment is None or deployment.started_at is None:
        return ""
    minutes = int((anomaly.started_at - deployment.started_at).total_seconds() // 60)
    return f"started {minutes} minutes after deployment #{deployment.pk} of {deployment.service.slug}"


@register.simple_tag
def service_signal(service: Service, slo_rows: list[dict[str, Any]] | None = None) -> selectors.Signal | None:
    """The correlated signal the service is part of; `slo_rows` (from `slo_rows`) spares reading its SLOs again."""
    statuses = [row["status"] for row in slo_rows] if slo_rows is not None else None
    return selectors.correlated_signal(service, statuses=statuses, checks=selectors.service_checks(service))


METRIC_SPAN = timedelta(days=7)


def _rate(value: float) -> str:
    return f"{value:.3g}/s" if value < 1000 else f"{value:,.0f}/s"


def _share(value: float) -> str:
    return f"{value * 100:.2g} %" if value < 0.1 else f"{value * 100:.0f} %"


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 1000 else f"{value:,.0f} ms"


@register.simple_tag
def metric_charts(service: Service) -> list[dict[str, object]]:
    """Per environment whose check scrapes /metrics: request rate, error rate and latency percentiles per hour over
    the last week, with the deployments of the service (and its dependencies) in that environment on the time axis
    and the anomalies found in these series circled. Six queries whatever the number of environments."""
    now = timezone.now()
    start = now - METRIC_SPAN
    checks = [c for c in selectors.service_checks(service) if c.metrics_path]
    if not checks:
        return []
    hours = selectors.metrics_by_hour(checks, since=start, now=now)
    deployments = selectors.deployments_between(service=service, since=start, until=now)
    found = list(
        Anomaly.objects.filter(health_check__in=checks, started_at__gte=start).select_related(
            "deployment__service", "health_check__environment"
        )
    )
    sections = []
    for check in sorted(checks, key=lambda c: (c.environment.order, c.environment.slug)):
        series = hours.get(check.pk, [])
        ticks = [
            (d.started_at, f"deployment #{d.pk} of {d.service.slug} {d.release.version}")
            for d in deployments
            if d.environment_id == check.environment_id
        ]

        def marks(
            metric: str, value_of: object, check: HealthCheck = check, series: list[Any] = series
        ) -> list[tuple[datetime, float, str]]:
            chosen = []
            for a in found:
                if a.health_check_id == check.pk and a.metric in (metric, Metric.CORRELATED):
                    at_hour = a.started_at.replace(minute=0, second=0, microsecond=0)
                    point = next((h for h in series if h.hour == at_hour), None)
                    value = value_of(point) if point is not None else None  # type: ignore[operator]
                    cause = anomaly_cause(a)
                    label = f"anomaly in {a.subject} ({a.reason})" + (f": {cause}" if cause else "")
                    chosen.append((a.started_at, value or 0.0, label))
            return chosen

        slug = f"metrics-{check.environment.slug}"
        charts = [
            charts_module.timeseries(
                {"requests": [(h.hour, h.request_rate) for h in series if h.request_rate is not None]},
                id=f"{slug}-rate",
                title=f"Request rate in {check.environment.name}",
                start=start,
                end=now,
                fmt=_rate,
                ticks=ticks,
                marks=marks(Metric.REQUEST_RATE, lambda h: h.request_rate),
            ),
            charts_module.timeseries(
                {"5xx share": [(h.hour, h.error_rate) for h in series if h.error_rate is not None]},
                id=f"{slug}-errors",
                title=f"Error rate in {check.environment.name}",
                start=start,
                end=now,
                fmt=_share,
                ticks=ticks,
                marks=marks(Metric.ERROR_RATE, lambda h: h.error_rate),
                css={"5xx share": "line-bad"},
            ),
            charts_module.timeseries(
                {
                    name: [(h.hour, v) for h in series if (v := h.latency_ms(q)) is not None]
                    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
                },
                id=f"{slug}-latency",
                title=f"Latency in {check.environment.name}",
                start=start,
                end=now,
                fmt=_ms,
                ticks=ticks,
                marks=marks(Metric.LATENCY_P95, lambda h: h.latency_ms(0.95)),
                css={"p95": "line-2", "p99": "line-3"},
            ),
        ]
        sections.append({"check": check, "charts": charts, "empty": not series})
    return sections
