"""Writes for the key metrics scraped from services' /metrics pages: the scheduled scrape (claimed, concurrent, written
in one batch), the hourly rollups and their retention, and the anomaly detector run over the stored series.

Split from `services.py` along its seam: everything here is worker-side and keeps no audit trail (no person acts).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from monitoring import anomaly, probe, replicas, scrape, selectors
from monitoring.models import Anomaly, DetectorState, HealthCheck, Metric, MetricRollup, MetricSample, ProbeSource

logger = structlog.get_logger(__name__)

BATCH = 256
THREADS = 32
# Rollups are kept as long as an SLO window can reach; raw samples as long as probe results.
ROLLUP_RETENTION = timedelta(days=91)
# A metric page larger than this is refused: a scrape reads the whole page into memory.
MAX_METRICS_BYTES = 4 * 1024 * 1024


def scrape_interval() -> timedelta:
    return timedelta(seconds=settings.MONITORING_SCRAPE_INTERVAL_SECONDS)


def checks_to_scrape(*, now: datetime, limit: int) -> list[HealthCheck]:
    """Claim the checks whose metrics are due (never scraped, or last scraped an interval ago), moving their scrape
    time on so no other worker takes them; locked rows another worker holds are skipped."""
    # A little early is on time: beat's ticks and the claim's own moment drift by a second or two. Never as much as the
    # interval, or a check just scraped would be due again at once and a run would never end.
    interval = scrape_interval()
    due_before = now - interval + min(timedelta(seconds=2), interval / 10)
    with transaction.atomic():
        due = list(
            HealthCheck.objects.filter(enabled=True)
            .exclude(metrics_path="")
            .filter(Q(metrics_scraped_at__isnull=True) | Q(metrics_scraped_at__lte=due_before))
            .order_by("metrics_scraped_at", "pk")
            .select_for_update(skip_locked=True)[:limit]
        )
        HealthCheck.objects.filter(pk__in=[check.pk for check in due]).update(metrics_scraped_at=now)
    return due


SIMULATED_BOUNDS = ("0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "+Inf")
SIMULATED_SHARES = (0.0, 0.35, 0.75, 0.93, 0.985, 0.998, 1.0)  # of requests within each bound, cumulative


def simulated_reading(check_id: int, previous: dict[str, Any], at: float) -> scrape.Reading:
    """Made-up counters for a check on the simulated runtime (nothing listens there): the previous reading plus a
    minute's worth of steady traffic with a daily cycle, 0.1 % errors and a latency histogram, derived from the check
    and the time so that a rerun agrees."""
    since = float(previous.get("at", at - 60))
    seconds = max(at - since, 0.0)
    rate = 40.0 + 25.0 * math.sin(2 * math.pi * ((at % 86_400) / 86_400 - 0.3))  # requests per second
    noise = int.from_bytes(hashlib.blake2b(f"{check_id}:{int(at) // 60}".encode(), digest_size=2).digest())
    requests = math.floor(rate * seconds)
    wobble = 1 + (noise % 100 - 50) / 2000
    added = [math.floor(requests * min(share * wobble, 1.0)) for share in SIMULATED_SHARES]
    added[-1] = requests
    before = {le: count for le, count in previous.get("buckets") or []}
    return scrape.Reading(
        requests=float(previous.get("requests", 0.0)) + requests,
        errors=float(previous.get("errors", 0.0)) + math.floor(requests * 0.001 + (noise % 10) / 10),
        buckets=[[le, before.get(le, 0) + count] for le, count in zip(SIMULATED_BOUNDS, added, strict=True)],
    )


# One page's reading, or a replicas check's readings by program (None where a replica could not be read).
Found = scrape.Reading | dict[str, scrape.Reading | None] | None


def _read(check: HealthCheck, place: replicas.Place | None = None) -> tuple[Found, str, float]:
    """(reading, error, time) of one check's metrics page, or of its deployed replicas' pages."""
    if check.source == ProbeSource.SIMULATED:
        at = time.time()
        return simulated_reading(check.pk, check.metrics_state or {}, at), "", at
    if check.source == ProbeSource.REPLICAS:
        if place is None:  # deleted since it was claimed
            return None, "the check no longer exists", time.time()
        try:
            found, error = replicas.read_all(check, place, max_bytes=MAX_METRICS_BYTES)
        except Exception as crash:  # as below: one check's surprise must not lose the batch
            logger.exception("monitoring.scrape_crashed", check_id=check.pk)
            return None, f"scrape failed: {type(crash).__name__}", time.time()
        return (found if any(r is not None for r in found.values()) else None), error[:300], time.time()
    timeout_ms = min(check.timeout_ms, 10_000)
    try:
        text = probe.fetch_text(url=check.metrics_url, timeout_ms=timeout_ms, max_bytes=MAX_METRICS_BYTES)
        return scrape.reading_parse(text), "", time.time()
    except (probe.FetchFailed, scrape.NoMetrics) as error:
        return None, f"{check.metrics_url}: {error}"[:300], time.time()
    except Exception as error:  # one page's surprise must not lose the rest of the batch
        logger.exception("monitoring.scrape_crashed", check_id=check.pk)
        return None, f"scrape failed: {type(error).__name__}", time.time()


def metrics_scrape_due(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Scrape the due checks' metrics pages concurrently and write what they found in one batch: a MetricSample per
    check whose previous reading is known, and each check's new readings (or the error that kept it from reading).
    Returns how many pages were read."""
    due = checks_to_scrape(now=now or timezone.now(), limit=limit)
    if not due:
        return 0
    where = replicas.places(due)
    with ThreadPoolExecutor(max_workers=min(THREADS, len(due))) as pool:
        readings = list(pool.map(lambda check: _read(check, where.get(check.pk)), due))
    return metrics_record(checks=due, readings=readings)


def metrics_record(*, checks: list[HealthCheck], readings: Iterable[tuple[Found, str, float]]) -> int:
    """Turn readings into samples (the increase since each check's previous reading) and store them, with the checks'
    new readings, in two batched statements. A reading that failed keeps the previous one, so the next success
    covers the gap as one longer interval."""
    samples = []
    changed = []
    read = 0
    for check, (reading, error, at) in zip(checks, readings, strict=True):
        if reading is None:
            check.metrics_error = error
            changed.append(check)
            continue
        read += 1
        if isinstance(reading, dict):
            interval = scrape.replicas_interval(check.metrics_state, reading, at)
            check.metrics_state = scrape.replicas_state(check.metrics_state, reading, at)
        else:
            interval = scrape.interval_between(check.metrics_state, reading, at)
            check.metrics_state = reading.state(at)
        check.metrics_error = error  # a replica that could not be read, while the others were
        changed.append(check)
        if interval is None:
            continue
        p50, p95, p99 = interval.quantiles_ms()
        samples.append(
            MetricSample(
                health_check_id=check.pk,
                at=datetime.fromtimestamp(at, tz=UTC),
                seconds=interval.seconds,
                requests=interval.requests,
                errors=interval.errors,
                buckets=interval.buckets,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
            )
        )
    with transaction.atomic():
        # A check deleted while its page was read has no row to point at: skip its sample rather than fail the batch.
        live = set(HealthCheck.objects.filter(pk__in=[c.pk for c in changed]).order_by().values_list("pk", flat=True))
        MetricSample.objects.bulk_create([s for s in samples if s.health_check_id in live], batch_size=1000)
        HealthCheck.objects.bulk_update(
            [c for c in changed if c.pk in live], ["metrics_state", "metrics_error"], batch_size=1000
        )
    return read


def metrics_rollup(*, now: datetime | None = None, hours: int = 3) -> int:
    """Sum the last `hours` complete hours of samples into MetricRollup rows (recounting an hour replaces its row), then
    purge samples past MONITORING_RAW_RETENTION_DAYS and rollups past ROLLUP_RETENTION. Returns the rows written."""
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    since = this_hour - timedelta(hours=hours)
    sums: dict[tuple[int, datetime], MetricRollup] = {}
    rows = MetricSample.objects.filter(at__gte=since, at__lt=this_hour).values_list(
        "health_check_id", "at", "seconds", "requests", "errors", "buckets"
    )
    for check_id, at, seconds, requests, errors, buckets in rows.iterator(chunk_size=5000):
        hour = at.replace(minute=0, second=0, microsecond=0)
        rollup = sums.get((check_id, hour))
        if rollup is None:
            rollup = sums[(check_id, hour)] = MetricRollup(
                health_check_id=check_id, hour=hour, seconds=0.0, requests=0.0, errors=0.0, buckets=[]
            )
        rollup.seconds += seconds
        rollup.requests += requests
        rollup.errors += errors
        rollup.buckets = scrape.buckets_add(rollup.buckets, buckets)
    with transaction.atomic():
        MetricRollup.objects.bulk_create(
            list(sums.values()),
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["health_check", "hour"],
            update_fields=["seconds", "requests", "errors", "buckets"],
        )
    MetricSample.objects.filter(at__lt=now - timedelta(days=settings.MONITORING_RAW_RETENTION_DAYS)).delete()
    MetricRollup.objects.filter(hour__lt=now - ROLLUP_RETENTION).delete()
    return len(sums)


# --- anomalies in the stored series -----------------------------------------------------------------------------------

BUCKET = timedelta(minutes=10)
DETECTED = {"request_rate": Metric.REQUEST_RATE, "error_rate": Metric.ERROR_RATE, "latency_p95": Metric.LATENCY_P95}


def metric_points(check: HealthCheck, *, since: datetime, now: datetime) -> list[tuple[datetime, dict[str, float]]]:
    """The check's key metrics per 10-minute bucket (aligned to the epoch), oldest first: request rate (per second),
    error rate (share of requests) and p95 latency (ms, the buckets' p95s weighted by their requests). Only whole
    buckets; a metric with no data in a bucket is left out of it (the detector skips it rather than learning a
    zero)."""
    seconds = int(BUCKET.total_seconds())
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    rows = MetricSample.objects.filter(health_check=check, at__gt=since, at__lte=now).values_list(
        "at", "seconds", "requests", "errors", "p95_ms"
    )
    for at, span, requests, errors, p95 in rows:
        total = sums[int(at.timestamp()) // seconds * seconds]
        total[0] += span
        total[1] += requests
        total[2] += errors
        if p95 is not None and requests > 0:
            total[3] += p95 * requests
            total[4] += requests
    points = []
    for start, (span, requests, errors, latency, weight) in sorted(sums.items()):
        if start < since.timestamp() or start + seconds > now.timestamp():
            continue  # a bucket only partly in the span: its few samples would look like an anomaly
        values: dict[str, float] = {}
        if span > 0:
            values["request_rate"] = requests / span
        if requests > 0:
            values["error_rate"] = errors / requests
        if weight > 0:
            values["latency_p95"] = latency / weight
        points.append((datetime.fromtimestamp(start, tz=UTC), values))
    return points


def metrics_anomalies_detect(*, check: HealthCheck, now: datetime | None = None) -> list[Anomaly]:
    """Run the detector over one check's key metrics (see `metrics_anomalies_detect_many`)."""
    return metrics_anomalies_detect_many(checks=[check], now=now)


def metrics_anomalies_detect_many(*, checks: list[HealthCheck], now: datetime | None = None) -> list[Anomaly]:
    """Feed each check's key metrics (10-minute buckets), one series per metric plus their joint test, to its streaming
    detector, and record each episode start not recorded yet, linked to the deployment before it in the same
    environment (idempotent: one anomaly per check, metric and start).

    Each check's detector resumes from its kept state (`DetectorState`, every state of the batch read in one query)
    and is fed only the whole buckets since; without a readable state it replays the raw samples' week. The states are
    written back in one statement. One check's failure is logged and skips that check only.
    """
    now = now or timezone.now()
    config = anomaly.DetectorConfig.for_step(BUCKET.total_seconds())
    kept = {state.health_check_id: state for state in DetectorState.objects.filter(health_check__in=checks)}
    states: list[DetectorState] = []
    created: list[Anomaly] = []
    for check in checks:
        try:
            detector, since = _detector_resume(kept.get(check.pk), config=config, now=now)
            found: list[tuple[datetime, str, anomaly.Alert]] = []
            points = metric_points(check, since=since, now=now)
            for at, values in points:
                for name, alert in detector.update(at.timestamp(), values):
                    found.append((at, DETECTED.get(name, Metric.CORRELATED), alert))
            if points:
                states.append(
                    DetectorState(health_check=check, fed_until=points[-1][0] + BUCKET, state=detector.state())
                )
            created.extend(_metric_anomalies_record(check, found))
        except Exception:  # one series' surprise must not stop the others
            logger.exception("monitoring.metric_anomaly_detection_crashed", check_id=check.pk)
    DetectorState.objects.bulk_create(
        states,
        update_conflicts=True,
        unique_fields=["health_check"],
        update_fields=["fed_until", "state", "updated_at"],
    )
    return created


def _detector_resume(
    kept: DetectorState | None, *, config: anomaly.DetectorConfig, now: datetime
) -> tuple[anomaly.ServiceDetector, datetime]:
    """The check's detector and the time its next points start after: the kept one, or a fresh one for the week."""
    if kept is not None:
        try:
            detector = anomaly.ServiceDetector.restore(bytes(kept.state), list(DETECTED), config)
        except anomaly.StateError as error:
            logger.info("monitoring.detector_state_replayed", check_id=kept.health_check_id, reason=str(error))
        else:
            # A hair before the bucket boundary, so that a sample scraped exactly on it is read (metric_points takes
            # samples after `since`), while the bucket before it, already fed, is left out as one only partly inside.
            return detector, kept.fed_until - timedelta(microseconds=1)
    fresh = anomaly.ServiceDetector(list(DETECTED), config)
    return fresh, now - timedelta(days=settings.MONITORING_RAW_RETENTION_DAYS)


def _metric_anomalies_record(check: HealthCheck, found: list[tuple[datetime, str, anomaly.Alert]]) -> list[Anomaly]:
    if not found:
        return []
    known = set(Anomaly.objects.filter(health_check=check).values_list("metric", "started_at"))
    created = []
    for at, metric, alert in found:
        if (metric, at) in known:
            continue
        deployment = selectors.deployment_preceding(
            service=check.service, at=at, within=DEPLOYMENT_LOOKBACK, environment_id=check.environment_id
        )
        created.append(
            Anomaly(
                health_check=check,
                metric=metric,
                started_at=at,
                value=alert.value,
                reason=alert.reason,
                low=alert.low,
                high=alert.high,
                deployment=deployment,
            )
        )
    Anomaly.objects.bulk_create(created, ignore_conflicts=True)
    return created


DEPLOYMENT_LOOKBACK = timedelta(hours=2)


def checks_with_recent_metrics(*, now: datetime) -> list[Any]:
    """The checks scraped in the last two buckets: the series worth replaying."""
    return list(
        HealthCheck.objects.filter(metric_samples__at__gt=now - 2 * BUCKET)
        .distinct()
        .select_related("service", "environment")
        .order_by("pk")
    )
