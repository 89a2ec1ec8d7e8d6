"""Where SLIs and metric series come from, behind one interface: `MetricsSource.instant(query) -> float | None`.

- `PrometheusSource`: PromQL over Prometheus's HTTP API (`PROMETHEUS_URL`), the way an organisation runs it.
- `ScrapeSource`: a service's own `/metrics` page, fetched by a worker under the probes' SSRF rules; it answers
  instant selectors (a metric name with label matchers, summed over the matching series), which is what one
  exposition can answer without a time series store. Functions and ranges need Prometheus.

Probe SLIs read Runway's own probe results. Anything that cannot be read raises SourceUnavailable, which makes the
SLI *unknown*, never healthy.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import httpx
import promql_parser
from django.conf import settings
from django.db.models import Count, Q
from prometheus_client.parser import text_string_to_metric_families

from deployments import analysis
from monitoring import probe
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


class ScrapeSource:
    """A service's own Prometheus exposition (`/metrics`)."""

    def __init__(self, url: str, *, timeout_ms: int = 5000) -> None:
        self.url = url
        self.timeout_ms = timeout_ms

    def instant(self, query: str) -> float | None:
        try:
            parsed = promql_parser.parse(query)
        except ValueError as error:
            raise SourceUnavailable(f"{query!r} is not valid PromQL: {error}") from error
        if not isinstance(parsed, promql_parser.VectorSelector) or not parsed.name:
            raise SourceUnavailable(
                f"{query!r}: a scraped /metrics page answers a metric name with label matchers only; "
                "functions and ranges need Prometheus (PROMETHEUS_URL)"
            )
        try:
            text = probe.fetch_text(url=self.url, timeout_ms=self.timeout_ms)
        except probe.FetchFailed as error:
            raise SourceUnavailable(f"{self.url}: {error}") from error
        total, found = 0.0, False
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == parsed.name and _matches(parsed, sample.labels):
                        total += sample.value
                        found = True
        except ValueError as error:
            raise SourceUnavailable(f"{self.url} is not a Prometheus exposition: {error}") from error
        return total if found and math.isfinite(total) else None


_MATCHERS: dict[str, Callable[[str, str], bool]] = {  # promql_parser.MatchOp's names
    "Equal": lambda value, wanted: value == wanted,
    "NotEqual": lambda value, wanted: value != wanted,
    "Re": lambda value, wanted: re.fullmatch(wanted, value) is not None,
    "NotRe": lambda value, wanted: re.fullmatch(wanted, value) is None,
}


def _matches(selector: promql_parser.VectorSelector, labels: dict[str, str]) -> bool:
    """PromQL's label matching: a missing label is the empty string, regular expressions are anchored."""
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__":
            continue
        test = _MATCHERS[str(matcher.op).rsplit(".", 1)[-1]]
        if not test(labels.get(matcher.name, ""), matcher.value):
            return False
    return True


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
