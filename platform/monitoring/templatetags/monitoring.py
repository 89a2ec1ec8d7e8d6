from datetime import datetime, timedelta

from django import template
from django.utils import timezone

from catalog.models import Service
from monitoring import selectors
from monitoring.models import SLO, Anomaly
from monitoring.selectors import Health, service_health, service_slos, slo_budget_history

register = template.Library()

# Reuses the house's status colours: green passing, amber in trouble, red failing, grey for unknown.
BADGE = {"healthy": "badge-dep-succeeded", "degraded": "badge-dep-paused", "down": "badge-dep-failed"}


@register.simple_tag
def health_rows(service: Service) -> list[dict[str, object]]:
    """The service's checks with their health, for templates/monitoring/_service_health.html (four queries)."""
    rows = []
    for check, health in service_health(service):
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
def slo_rows(service: Service) -> list[dict[str, object]]:
    """The service's SLOs with status and a budget chart each, for templates/monitoring/_service_slos.html."""
    now = timezone.now()
    rows = []
    for status in service_slos(service, now=now):
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
def anomaly_rows(service: Service) -> list[Anomaly]:
    return selectors.service_anomalies(service)


@register.filter
def anomaly_cause(anomaly: Anomaly) -> str:
    deployment = anomaly.deployment
    if deployment is None or deployment.started_at is None:
        return ""
    minutes = int((anomaly.started_at - deployment.started_at).total_seconds() // 60)
    return f"started {minutes} minutes after deployment #{deployment.pk} of {deployment.service.slug}"


@register.simple_tag
def service_signal(service: Service) -> selectors.Signal | None:
    return selectors.correlated_signal(service)
