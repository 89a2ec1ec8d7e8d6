"""Where SLIs and metric series come from, behind one interface: `MetricsSource.instant(query) -> float | None`.

- `PrometheusSource`: PromQL over Prometheus's HTTP API (`PROMETHEUS_URL`), the way an organisation runs it.

Probe SLIs read Runway's own probe results. Anything that cannot be read raises SourceUnavailable, which makes the
SLI *unknown*, never healthy.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import httpx
from django.conf import settings
from django.db.models import Count, Q

from deployments import analysis
from monitoring.models import SLO, HealthCheck, ProbeResult, SliKind, SliSource

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
TIMEOUT_SECONDS = 10.0


class SourceUnavailable(Exception):
    """The source could not be read, or its answer cannot be used; the message says which and why."""


class MetricsSource(Protocol):
    def instant(self, query: str) -> float | None:
        """The query's single value now; None when it has no data."""


class PrometheusSource:
    """PromQL instant queries against a Prometheus server's HTTP API."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None) -> None:
        self.base_url = base_url
        self.client = client

    def instant(self, query: str) -> float | None:
        http = self.client or httpx.Client(timeout=TIMEOUT_SECONDS)
        try:
            return analysis.query_scalar(http, self.base_url, query)
        except analysis.MetricsError as error:
            raise SourceUnavailable(str(error)) from error
        finally:
            if self.client is None:
                http.close()


def prometheus() -> PrometheusSource:
    if not settings.PROMETHEUS_URL:
        raise SourceUnavailable("PROMETHEUS_URL is not set, so PromQL SLIs cannot be read")
    return PrometheusSource(settings.PROMETHEUS_URL)


def sli_events(*, slo: SLO, since: datetime, now: datetime) -> tuple[float, float]:
    """Good and total events of `slo` in (since, now]; updates its counter memory (`last_good`, `last_total`)."""
    if slo.source == SliSource.PROBE:
        return _probe_events(slo, since, now)
    source = prometheus()
    if slo.sli_kind == SliKind.THRESHOLD:
        value = source.instant(slo.threshold_query)
        if value is None:
            raise SourceUnavailable(f"{slo.threshold_query!r} returned no data")
        return (1.0 if OPERATORS[slo.threshold_op](value, slo.threshold_value or 0.0) else 0.0), 1.0
    good, total = source.instant(slo.good_query), source.instant(slo.total_query)
    if good is None or total is None:
        raise SourceUnavailable(f"{slo.good_query if good is None else slo.total_query!r} returned no data")
    if not slo.counter:  # per-second rates: events over the elapsed time
        elapsed = max((now - since).total_seconds(), 0.0)
        return good * elapsed, total * elapsed
    previous = (slo.last_good, slo.last_total)
    slo.last_good, slo.last_total = good, total
    return counter_increase(previous, (good, total))


def counter_increase(previous: tuple[float | None, float | None], current: tuple[float, float]) -> tuple[float, float]:
    """Good and total events between two readings of cumulative counters.

    The first reading says nothing about the past minute yet (0, 0). A counter lower than last time was reset (a
    restart): what it holds now all happened since. Good never exceeds total.
    """
    if previous[0] is None or previous[1] is None:
        return 0.0, 0.0
    good = current[0] - previous[0] if current[0] >= previous[0] else current[0]
    total = current[1] - previous[1] if current[1] >= previous[1] else current[1]
    return max(min(good, total), 0.0), max(total, 0.0)


def _probe_events(slo: SLO, since: datetime, now: datetime) -> tuple[float, float]:
    check = HealthCheck.objects.filter(service_id=slo.service_id, environment__slug=slo.environment_slug).first()
    if check is None:
        raise SourceUnavailable(f"the service has no health check in {slo.environment_slug or 'any environment'}")
    if not check.enabled:
        raise SourceUnavailable("the health check is paused")
    results = ProbeResult.objects.filter(health_check=check, checked_at__gt=since, checked_at__lte=now)
    if slo.sli_kind == SliKind.THRESHOLD:
        value = slo.threshold_value or 0.0
        lookup = {"lt": "latency_ms__lt", "lte": "latency_ms__lte", "gt": "latency_ms__gt", "gte": "latency_ms__gte"}
        good_filter = Q(ok=True, **{lookup[slo.threshold_op]: value})
    else:
        good_filter = Q(ok=True)
    counts = results.aggregate(total=Count("pk"), good=Count("pk", filter=good_filter))
    return float(counts["good"]), float(counts["total"])
