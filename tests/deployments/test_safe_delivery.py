"""One bad and one good release of the fault-injecting service through the real engine, a real worker and the local
runtime: the judge rolls the bad one back on the analysis traffic and promotes the good one. The full matrix of
faults is a benchmark (tests/bench/bench_safe_delivery.py), not a test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import TestWorkController, start_worker

from deployments.models import DeployTarget, Environment, State
from deployments.runtimes import local
from portal.celery import app
from tests.deployments.faulty import FaultyRepo, faulty_repo_make
from tests.deployments.test_faults import ENVIRONMENT, SERVICE, deploy, finished, placed, timeline, verdicts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def faulty(settings, tmp_path: Path) -> Iterator[FaultyRepo]:  # type: ignore[no-untyped-def]
    repo = faulty_repo_make(name=SERVICE, root=tmp_path / "faulty")
    settings.GIT_ROOT = repo.git_root
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    try:
        yield repo
    finally:
        local.supervisord_shutdown()


@pytest.fixture
def staging(world, faulty: FaultyRepo) -> Environment:  # type: ignore[no-untyped-def]
    """A canary at 50 %, baked 1 s, then 2 replicas; the judge at its defaults."""
    environment = Environment.objects.create(name="Staging", slug=ENVIRONMENT, order=1)
    DeployTarget.objects.create(
        service=world.service,
        environment=environment,
        runtime="local",
        strategy="canary",
        replicas=2,
        canary_steps=[50],
        bake_seconds=1,
    )
    return environment


@pytest.fixture
def worker(faulty: FaultyRepo) -> Iterator[TestWorkController]:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as controller:
        yield controller


def test_a_slow_release_is_rolled_back_and_a_good_one_promoted(world, faulty, staging, worker) -> None:  # type: ignore[no-untyped-def]
    first = finished(deploy(world, staging, "1.0.0"))
    assert first.state == State.SUCCEEDED, timeline(first)

    faulty.release("1.1.0", {"mode": "latency", "factor": 3, "where": "median"})
    bad = finished(deploy(world, staging, "1.1.0"))

    assert bad.state == State.ROLLED_BACK, timeline(bad)
    assert verdicts(bad) == ["fail"]
    assert "the canary is slower than the baseline" in bad.failure_reason
    assert placed() == ("1.0.0", first.pk)

    faulty.release("1.2.0", {"mode": "good"})
    good = finished(deploy(world, staging, "1.2.0"))

    assert good.state == State.SUCCEEDED, timeline(good)
    assert verdicts(good) == ["pass"]
    figures = good.events.filter(message="Analysis figures").get().data["figures"]
    assert figures["baseline"]["requests"] >= 10 and figures["baseline"]["errors"] == 0  # judged beside 1.0.0
    assert placed() == ("1.2.0", good.pk)
