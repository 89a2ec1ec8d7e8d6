"""Workers: run due health checks (beat, every few seconds) and roll raw results up per hour."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from monitoring import selectors, services
from monitoring.models import HealthCheck
from monitoring.probe import Outcome, probe

BATCH = 500  # checks taken per run; a backlog is taken by the next runs
THREADS = 32  # probes wait on the network, so one worker runs many at once


def run_due_checks(*, limit: int = BATCH) -> int:
    """Claim the due checks (moving their next run on, so no other worker takes them), probe them concurrently,
    and write the results in one batch. Returns how many probes ran."""
    now = timezone.now()
    with transaction.atomic():
        due = list(selectors.checks_due(now=now, limit=limit))
        for check in due:
            check.next_run_at = now + timedelta(seconds=check.interval_seconds)
        HealthCheck.objects.bulk_update(due, ["next_run_at"])
    if not due:
        return 0

    def one(check: HealthCheck) -> tuple[int, datetime, Outcome]:
        outcome = probe(
            url=check.url,
            timeout_ms=check.timeout_ms,
            expected_status=check.expected_status,
            body_match=check.body_match,
        )
        return check.pk, timezone.now(), outcome

    with ThreadPoolExecutor(max_workers=min(THREADS, len(due))) as pool:
        outcomes = list(pool.map(one, due))
    return services.results_record(outcomes=outcomes)


@shared_task(name="monitoring.run_due_checks", ignore_result=True)
def run_due_checks_task() -> int:
    return run_due_checks()


@shared_task(name="monitoring.rollup_results", ignore_result=True)
def rollup_results_task() -> int:
    return services.results_rollup()
