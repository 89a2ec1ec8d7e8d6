"""Workers: run due health checks (beat, every few seconds) and roll raw results up per hour."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import structlog
from celery import shared_task
from django.db import transaction
from django.utils import timezone

from monitoring import replicas, selectors, series, services
from monitoring.models import SLO, HealthCheck, ProbeSource
from monitoring.probe import Outcome, probe, simulated_outcome

# Probes wait on the network, so one worker runs many at once. A batch whose every probe times out (30 s at most)
# takes BATCH / THREADS * 30 s = 120 s; a task starts batches for RUN_BUDGET_SECONDS, so that it ends within
# CELERY_TASK_SOFT_TIME_LIMIT (240 s).
logger = structlog.get_logger(__name__)

BATCH = 256
THREADS = 64
RUN_BUDGET_SECONDS = 100
DETECT_BATCH = 500


def run_due_checks(*, limit: int | None = None) -> int:
    """Claim the due checks (moving their next run on, so no other worker takes them), probe them concurrently,
    and write the results in one batch. Returns how many probes ran."""
    now = timezone.now()
    with transaction.atomic():
        due = list(selectors.checks_due(now=now, limit=limit or BATCH))
        for check in due:
            # On its own cadence rather than from the claim, which beat's tick makes a few seconds late each time
            # (a 60 s check drifted to one probe every ~62 s); one that fell a whole interval behind starts afresh.
            interval = timedelta(seconds=check.interval_seconds)
            check.next_run_at = check.next_run_at + interval
            if check.next_run_at <= now:
                check.next_run_at = now + interval
        HealthCheck.objects.bulk_update(due, ["next_run_at"])
    if not due:
        return 0

    where = replicas.places(due)

    def one(check: HealthCheck) -> tuple[int, datetime, Outcome]:
        if check.source == ProbeSource.SIMULATED:
            return check.pk, timezone.now(), simulated_outcome(check.pk, timezone.now())
        try:
            if check.source == ProbeSource.REPLICAS:
                place = where.get(check.pk)
                if place is None:  # deleted since it was claimed: its result has no row to join
                    return check.pk, timezone.now(), Outcome(False, None, None, "the check no longer exists")
                return check.pk, timezone.now(), replicas.probe_all(check, place)
            outcome = probe(
                url=check.url,
                timeout_ms=check.timeout_ms,
                expected_status=check.expected_status,
                body_match=check.body_match,
            )
        except Exception as error:  # one check's surprise must not lose the rest of the batch's results
            logger.exception("monitoring.probe_crashed", check_id=check.pk)
            outcome = Outcome(
                ok=False, status_code=None, latency_ms=None, error=f"probe failed: {type(error).__name__}"
            )
        return check.pk, timezone.now(), outcome

    with ThreadPoolExecutor(max_workers=min(THREADS, len(due))) as pool:
        outcomes = list(pool.map(one, due))
    return services.results_record(outcomes=outcomes)


@shared_task(name="monitoring.run_due_checks", ignore_result=True)
def run_due_checks_task() -> int:
    """Take batches of due checks until none is due or the budget is spent; the next beat tick takes the rest."""
    started = time.monotonic()
    probed = 0
    while time.monotonic() - started < RUN_BUDGET_SECONDS:
        ran = run_due_checks()
        probed += ran
        if ran == 0:
            break
    return probed


@shared_task(name="monitoring.rollup_results", ignore_result=True)
def rollup_results_task() -> int:
    """Roll the last hours of probe results and scraped metrics up per hour, and purge what is past its retention."""
    return services.results_rollup() + series.metrics_rollup()


@shared_task(name="monitoring.scrape_metrics", ignore_result=True)
def scrape_metrics_task() -> int:
    """Scrape the services' /metrics pages that are due (beat, every 15 s), in claimed batches until none is due or
    the budget is spent; the next tick takes the rest."""
    started = time.monotonic()
    scraped = 0
    while time.monotonic() - started < RUN_BUDGET_SECONDS:
        read = series.metrics_scrape_due()
        scraped += read
        if read == 0:
            break
    return scraped


@shared_task(name="monitoring.evaluate_slos", ignore_result=True)
def evaluate_slos_task() -> int:
    """Record one sample per SLO (beat, every minute), then open or mitigate the incidents of page alerts; each SLO is
    claimed, so overlapping runs count nothing twice, and one burn is one incident."""
    recorded = 0
    for slo_id in SLO.objects.order_by("pk").values_list("pk", flat=True):
        try:
            recorded += services.slo_evaluate(slo_id=slo_id) is not None
        except Exception:  # one SLO's surprise must not stop the others' evaluation
            logger.exception("monitoring.slo_evaluation_crashed", slo_id=slo_id)
    services.slo_samples_purge()
    services.slo_incidents_sync()
    return recorded


@shared_task(name="monitoring.detect_anomalies", ignore_result=True)
def detect_anomalies_task() -> int:
    """Feed every scraped service's key metrics and every SLO's error ratio since the last run to their kept anomaly
    detectors (beat, every 10 minutes); idempotent."""
    found = 0
    now = timezone.now()
    checks = series.checks_with_recent_metrics(now=now)
    # Batches bound the detector states held at once (a few tens of kB each), one read and one write per batch.
    for start in range(0, len(checks), DETECT_BATCH):
        found += len(series.metrics_anomalies_detect_many(checks=checks[start : start + DETECT_BATCH], now=now))
    slos = list(SLO.objects.select_related("service").order_by("pk"))
    for start in range(0, len(slos), DETECT_BATCH):
        found += len(services.slo_anomalies_detect_many(slos=slos[start : start + DETECT_BATCH], now=now))
    return found
