"""Status per check (healthy / degraded / down / unknown, and unknown is never green) and uptime over 24 h, 7 d and
30 d from raw results and hourly rollups, in a bounded number of queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Environment
from monitoring import selectors, services
from monitoring.models import HealthCheck, HealthStatus, ProbeResult, ProbeRollup
from tests.factories import service_make

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def check(world) -> HealthCheck:
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    return services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url="http://a.test/", interval_seconds=60
    )


def _results(check: HealthCheck, oks: list[bool], *, last_at=None, every=timedelta(seconds=60)) -> None:  # type: ignore[no-untyped-def]
    """`oks` oldest first, the last one at `last_at` (now by default)."""
    last_at = last_at or timezone.now()
    ProbeResult.objects.bulk_create(
        ProbeResult(
            health_check=check,
            checked_at=last_at - every * (len(oks) - 1 - i),
            ok=ok,
            status_code=200 if ok else 503,
            error="" if ok else "answered 503, expected 200",
        )
        for i, ok in enumerate(oks)
    )


def _status(check: HealthCheck) -> tuple[str, str]:
    health = selectors.health_for_checks([check])[check.pk]
    return health.status, health.reason


@pytest.mark.parametrize(
    ("oks", "status"),
    [
        ([True] * 6, HealthStatus.HEALTHY),
        ([False, True, True, True, True, True], HealthStatus.HEALTHY),  # the failure is older than the last 5
        ([True, True, True, False, True], HealthStatus.DEGRADED),
        ([True, True, True, True, False], HealthStatus.DEGRADED),  # one failure is not yet down
        ([True, True, True, False, False], HealthStatus.DOWN),
        ([False], HealthStatus.DOWN),
    ],
)
def test_status_from_the_last_results(check, oks, status):
    _results(check, oks)
    assert _status(check)[0] == status


def test_no_results_stale_results_and_paused_checks_are_unknown(check):
    assert _status(check) == (HealthStatus.UNKNOWN, "no results yet")
    _results(check, [True] * 5, last_at=timezone.now() - timedelta(minutes=10))
    assert _status(check) == (HealthStatus.UNKNOWN, "no recent results")
    _results(check, [True])
    assert _status(check)[0] == HealthStatus.HEALTHY
    HealthCheck.objects.filter(pk=check.pk).update(enabled=False)
    check.refresh_from_db()
    assert _status(check) == (HealthStatus.UNKNOWN, "paused")


def test_uptime_over_each_window_adds_rollups_older_than_the_raw_results(check):
    now = timezone.now()
    # Last 24 h: 3 of 4 passed. 2-5 days ago: 4 more, all passed (raw). 20 days ago: a rolled-up hour, 5 of 10.
    _results(check, [True, False, True, True], last_at=now, every=timedelta(hours=1))
    _results(check, [True] * 4, last_at=now - timedelta(days=2), every=timedelta(days=1))
    ProbeRollup.objects.create(
        health_check=check, hour=(now - timedelta(days=20)).replace(minute=0, second=0, microsecond=0), total=10, ok=5
    )
    # Older than 30 days: counts nowhere.
    ProbeRollup.objects.create(health_check=check, hour=now - timedelta(days=40), total=100, ok=0)
    uptime = selectors.health_for_checks([check])[check.pk].uptime
    assert uptime["24h"] == pytest.approx(75.0)
    assert uptime["7d"] == pytest.approx(100 * 7 / 8)
    assert uptime["30d"] == pytest.approx(100 * 12 / 18)


def test_uptime_is_none_without_probes(check):
    assert selectors.health_for_checks([check])[check.pk].uptime == {"24h": None, "7d": None, "30d": None}


def test_health_of_many_checks_takes_a_fixed_number_of_queries(world, check, django_assert_max_num_queries):
    environments = [Environment.objects.create(name=f"Env {i}", slug=f"env-{i}", order=10 + i) for i in range(3)]
    checks = [check]
    for i in range(10):
        service = service_make(owner=world.owner_team, slug=f"svc-{i}", name=f"Service {i}")
        for environment in environments:
            checks.append(HealthCheck.objects.create(service=service, environment=environment, url="http://a.test/"))
    for one in checks:
        _results(one, [True, False, True])
    with django_assert_max_num_queries(3):
        health = selectors.health_for_checks(checks)
    assert len(health) == 31
    assert {h.status for h in health.values()} == {HealthStatus.DEGRADED}
    with django_assert_max_num_queries(4):
        rows = selectors.service_health(world.service)
    assert [(c.environment.slug, h.status) for c, h in rows] == [("staging", HealthStatus.DEGRADED)]
