"""A service's /metrics page turned into the key metrics Runway stores: requests, 5xx errors and the request-duration
histogram, as what happened between two scrapes.

Every golden path and local-runtime replica exposes `http_requests_total` (labelled by `status`) and the Python
golden path also `http_request_duration_seconds` (a histogram); both are summed over their other labels. Counters are
cumulative, so a scrape stores its readings on the check and the next one records the increase; a counter lower than
before is a restart, and what it holds now all happened since (as PromQL's `increase()` reads it). Percentiles are
PromQL's `histogram_quantile()`: linear within the bucket the rank falls in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "http_requests_total"
DURATION_BUCKET = "http_request_duration_seconds_bucket"
QUANTILES = (0.5, 0.95, 0.99)

# [le as text ("0.005", "+Inf"), cumulative count]: text, since JSON (and PostgreSQL's jsonb) has no infinity.
Buckets = list[list[Any]]


class NoMetrics(ValueError):
    """The page is not an exposition, or it holds none of the metrics Runway reads."""


@dataclass
class Reading:
    """Cumulative counters read from one scrape."""

    requests: float
    errors: float
    buckets: Buckets = field(default_factory=list)

    def state(self, at: float) -> dict[str, Any]:
        return {"at": at, "requests": self.requests, "errors": self.errors, "buckets": self.buckets}


@dataclass
class Interval:
    """What happened between two scrapes."""

    seconds: float
    requests: float
    errors: float
    buckets: Buckets  # increases per bucket, still cumulative over `le`; empty when latency is not known

    def quantiles_ms(self) -> tuple[float | None, ...]:
        return tuple(_ms(quantile(q, self.buckets)) for q in QUANTILES)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _bound(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def reading_parse(text: str) -> Reading:
    """The counters of one exposition; NoMetrics when it is not one or lacks http_requests_total."""
    requests = errors = 0.0
    found = False
    buckets: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            found = found or family.name in ("http_requests", REQUESTS)
            for sample in family.samples:
                if sample.name == REQUESTS:
                    requests += sample.value
                    if str(sample.labels.get("status", "")).startswith("5"):
                        errors += sample.value
                elif sample.name == DURATION_BUCKET and "le" in sample.labels:
                    key = bucket_key(sample.labels["le"])
                    buckets[key] = buckets.get(key, 0.0) + sample.value
    except ValueError as error:
        raise NoMetrics(f"not a Prometheus exposition: {error}") from error
    if not found:
        raise NoMetrics(f"exposes no {REQUESTS} counter")
    return Reading(requests=requests, errors=errors, buckets=buckets_ordered(buckets))


def bucket_key(le: str) -> str:
    """One spelling per bound ("0.5" and "5e-01" are one bucket), "+Inf" for the last; ValueError if not a number."""
    bound = _bound(le)
    return "+Inf" if math.isinf(bound) else repr(bound)


def buckets_ordered(buckets: dict[str, float]) -> Buckets:
    """Summed buckets (by `bucket_key`) in the order of their bounds; empty without a +Inf bucket, which holds the
    total: no percentiles rather than wrong ones."""
    ordered = sorted(buckets.items(), key=lambda item: _bound(item[0]))
    if not ordered or ordered[-1][0] != "+Inf":
        return []
    return [[le, count] for le, count in ordered]


def buckets_increase(before: Buckets, now: Buckets, *, restarted: bool = False) -> Buckets:
    """What was counted into each bucket between two readings of one histogram: all of `now` after a restart (or when
    any bucket went down, which only a restart does); empty when there is no earlier reading or the bounds changed."""
    if not now or [le for le, _ in before] != [le for le, _ in now]:
        return []
    reset = restarted or any(later < earlier for (_, later), (_, earlier) in zip(now, before, strict=True))
    return [[le, later if reset else later - earlier] for (le, later), (_, earlier) in zip(now, before, strict=True)]


def interval_between(previous: dict[str, Any] | None, current: Reading, at: float) -> Interval | None:
    """The increase since the previous scrape's state; None for the first scrape (nothing to compare with yet)."""
    if not previous or "at" not in previous:
        return None
    seconds = at - float(previous["at"])
    if seconds <= 0:
        return None
    before_requests = float(previous.get("requests", 0.0))
    restarted = current.requests < before_requests
    requests = current.requests if restarted else current.requests - before_requests
    before_errors = float(previous.get("errors", 0.0))
    errors = current.errors if restarted or current.errors < before_errors else current.errors - before_errors
    # A histogram that appeared since the last scrape has no increase yet: its first reading is the baseline.
    buckets = buckets_increase(previous.get("buckets") or [], current.buckets, restarted=restarted)
    return Interval(
        seconds=seconds, requests=max(requests, 0.0), errors=max(min(errors, requests), 0.0), buckets=buckets
    )


def replicas_state(previous: dict[str, Any] | None, readings: dict[str, Reading | None], at: float) -> dict[str, Any]:
    """What a scrape of several replicas keeps for the next one: each replica's reading by program. A replica that
    could not be read keeps its previous reading, so its next one covers the gap; one never read is marked (None),
    so that its first reading is taken as a baseline rather than as everything it did since it started."""
    before = (previous or {}).get("replicas") or {}
    kept: dict[str, Any] = {}
    for program, reading in readings.items():
        kept[program] = reading.state(at) if reading is not None else before.get(program)
    return {"at": at, "replicas": kept}


def replicas_interval(
    previous: dict[str, Any] | None, readings: dict[str, Reading | None], at: float
) -> Interval | None:
    """What all the replicas did since the previous scrape, summed: each replica's increase from its own previous
    reading (one restarting is not a reset of the others). A replica that was not there at the previous scrape
    started since, so all it counts happened since; None for the first scrape."""
    # A check that probed one URL until now kept that page's counters, not its replicas': start afresh.
    if not previous or "at" not in previous or "replicas" not in previous:
        return None
    seconds = at - float(previous["at"])
    if seconds <= 0:
        return None
    before = previous["replicas"]
    total = Interval(seconds=seconds, requests=0.0, errors=0.0, buckets=[])
    for program, reading in readings.items():
        if reading is None:
            continue
        # One that was not there started since: its baseline is nothing counted, when the last scrape was.
        started = {"at": previous["at"], "buckets": [[le, 0] for le, _ in reading.buckets]}
        part = interval_between(before[program] if program in before else started, reading, at)
        if part is None:
            continue
        total.requests += part.requests
        total.errors += part.errors
        total.buckets = buckets_add(total.buckets, part.buckets)
    return total


def buckets_add(total: Buckets, more: Buckets) -> Buckets:
    """Two intervals' buckets summed; the bounds must agree (otherwise the larger-count one is kept whole)."""
    if not total:
        return [list(pair) for pair in more]
    if not more:
        return total
    if [le for le, _ in total] != [le for le, _ in more]:
        return total if total[-1][1] >= more[-1][1] else [list(pair) for pair in more]
    return [[le, a + b] for (le, a), (_, b) in zip(total, more, strict=True)]


def latencies_ms(buckets: Buckets, *, limit: int = 20_000) -> list[float]:
    """One latency (ms) per request counted in `buckets`, spread evenly within its bucket, as `quantile` assumes; a
    request in the +Inf bucket gets the highest finite bound. Past `limit` requests every bucket is scaled down alike.

    A histogram keeps no single requests; this gives the canary analysis (deployments.analysis) samples whose
    percentiles are the histogram's and whose ranks a Mann-Whitney test can compare, ties within a bucket spread."""
    counts, lower, below, bounds = [], 0.0, 0.0, []
    for le, count in buckets:
        upper = _bound(le)
        counts.append(max(float(count) - below, 0.0))
        bounds.append((lower, lower if math.isinf(upper) else upper))
        below = max(below, float(count))
        if not math.isinf(upper):
            lower = upper
    total = sum(counts)
    scale = min(1.0, limit / total) if total else 0.0
    values: list[float] = []
    for (low, high), count in zip(bounds, counts, strict=True):
        n = round(count * scale)
        values += [(low + (high - low) * (i + 0.5) / n) * 1000 for i in range(n)]
    return values


def quantile(q: float, buckets: Buckets) -> float | None:
    """PromQL's histogram_quantile over cumulative buckets: linear interpolation inside the bucket the rank falls in;
    a rank in the +Inf bucket gives the highest finite bound. None without observations."""
    if not buckets:
        return None
    total = float(buckets[-1][1])
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        upper = _bound(le)
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, float(count)
    return lower
