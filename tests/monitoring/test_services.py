"""Health checks are written by their service's owners; due checks are probed by the runner and written in batches;
raw results are rolled up per hour and purged after the retention."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from deployments.models import Environment
from monitoring import services, tasks
from monitoring.models import HealthCheck, ProbeResult, ProbeRollup
from monitoring.probe import Outcome

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def staging() -> Environment:
    return Environment.objects.create(name="Staging", slug="staging", order=1)


def test_owners_add_checks_with_an_audit_event_and_outsiders_cannot(world, staging):
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url="http://127.0.0.1:9000/healthz"
    )
    assert check.next_run_at <= timezone.now()
    assert AuditEvent.objects.filter(action="health_check.created", service_id=world.service.pk).count() == 1
    with pytest.raises(PermissionDenied):
        services.health_check_update(user=world.outsider, check=check, interval_seconds=30)


def test_one_check_per_service_and_environment_and_bad_values_say_what_to_fix(world, staging):
    services.health_check_create(user=world.owner, service=world.service, environment=staging, url="http://a.test/")
    with pytest.raises(ValidationError, match="already has a health check in this environment"):
        services.health_check_create(user=world.owner, service=world.service, environment=staging, url="http://b/")
    production = Environment.objects.create(name="Production", slug="production", order=2)
    with pytest.raises(ValidationError) as error:
        services.health_check_create(
            user=world.owner, service=world.service, environment=production, url="http://a.test/", interval_seconds=1
        )
    assert "interval_seconds" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.health_check_create(
            user=world.owner, service=world.service, environment=production, url="http://169.254.169.254/"
        )
    assert "denied network" in str(error.value.message_dict["url"])
    assert HealthCheck.objects.count() == 1


def test_the_runner_probes_due_checks_and_writes_their_results(world, staging, target):
    production = Environment.objects.create(name="Production", slug="production", order=2)
    due = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url=target.url("/ok"), body_match="ok"
    )
    failing = services.health_check_create(
        user=world.owner, service=world.service, environment=production, url=target.url("/fail")
    )
    later = timezone.now() + timedelta(minutes=5)
    HealthCheck.objects.filter(pk=failing.pk).update(next_run_at=later)

    assert tasks.run_due_checks() == 1
    result = ProbeResult.objects.get()
    assert (result.health_check_id, result.ok, result.status_code) == (due.pk, True, 200)
    due.refresh_from_db()
    assert due.next_run_at > timezone.now() + timedelta(seconds=50)
    # Nothing is due now: the runner does nothing until a check's time comes.
    assert tasks.run_due_checks() == 0

    HealthCheck.objects.filter(pk=failing.pk).update(next_run_at=timezone.now())
    assert tasks.run_due_checks() == 1
    assert ProbeResult.objects.get(health_check=failing).error == "answered 503, expected 200"


def test_checks_keep_their_cadence_when_probed_late(world, staging, target):
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url=target.url("/ok"), interval_seconds=60
    )
    scheduled = timezone.now() - timedelta(seconds=4)  # beat's tick came 4 s after the check was due
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=scheduled)
    assert tasks.run_due_checks() == 1
    check.refresh_from_db()
    assert check.next_run_at == scheduled + timedelta(seconds=60)  # not 60 s from the late probe: no drift
    # A whole interval behind (workers were down): the next run is an interval from now, not a burst to catch up.
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now() - timedelta(minutes=10))
    before = timezone.now()
    assert tasks.run_due_checks() == 1
    check.refresh_from_db()
    assert check.next_run_at >= before + timedelta(seconds=60)


def test_paused_checks_are_not_probed(world, staging, target):
    services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url=target.url("/ok"), enabled=False
    )
    assert tasks.run_due_checks() == 0
    assert target.hits == []


def test_results_of_a_check_deleted_meanwhile_are_dropped_not_failed(world, staging):
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url="http://a.test/"
    )
    outcome = Outcome(ok=True, status_code=200, latency_ms=3, error="")
    written = services.results_record(
        outcomes=[(check.pk, timezone.now(), outcome), (check.pk + 99, timezone.now(), outcome)]
    )
    assert written == 1


def test_rollup_counts_complete_hours_and_purge_keeps_a_week(world, staging):
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url="http://a.test/"
    )
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    last_hour = now.replace(minute=0) - timedelta(hours=1)
    rows = [
        ProbeResult(health_check=check, checked_at=last_hour + timedelta(minutes=m), ok=m != 10, latency_ms=10)
        for m in range(0, 60, 10)
    ]
    rows.append(ProbeResult(health_check=check, checked_at=now - timedelta(days=8), ok=True, latency_ms=1))
    rows.append(ProbeResult(health_check=check, checked_at=now, ok=True, latency_ms=1))  # this hour: not yet
    ProbeResult.objects.bulk_create(rows)

    assert services.results_rollup(now=now) == 1
    assert services.results_rollup(now=now) == 1  # idempotent: the hour is replaced, not added twice
    rollup = ProbeRollup.objects.get()
    assert (rollup.hour, rollup.total, rollup.ok, rollup.latency_ms_sum) == (last_hour, 6, 5, 60)
    assert ProbeResult.objects.count() == 7  # the 8-day-old result is purged


def test_the_beat_task_takes_batches_until_nothing_is_due(world, staging, target, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH", 1)
    production = Environment.objects.create(name="Production", slug="production", order=2)
    for environment in (staging, production):
        services.health_check_create(
            user=world.owner, service=world.service, environment=environment, url=target.url("/ok")
        )
    assert tasks.run_due_checks_task() == 2
    assert ProbeResult.objects.filter(ok=True).count() == 2
