"""The demo's deployments: the simulated runtime's faults, and the history `demo_load` makes with the real engine."""

import io
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from catalog.management.commands.demo_load import DEPLOYED_SERVICES
from deployments import services
from deployments.models import Deployment, DeploymentEvent, DeployTarget, Environment, Placement, Release, State
from scaffolder import demo as scaffolder_demo
from scaffolder import publishers
from tests.deployments.support import drive, release_make

pytestmark = pytest.mark.django_db


def _deploy_twice(world, staging, fault: str) -> Deployment:  # type: ignore[no-untyped-def]
    """A first release, then a second one whose config asks the simulated runtime for `fault`."""
    for version in ("1.0.0", "1.1.0"):
        deployment = services.deployment_request(
            service=world.service, environment=staging, user=world.owner, release=release_make(world.service, version)
        )
        if version == "1.1.0":
            Deployment.objects.filter(pk=deployment.pk).update(config={**deployment.config, "simulate": fault})
        deployment = drive(deployment)
    return deployment


@pytest.mark.parametrize("fault", ["slow", "errors"])
def test_a_simulated_fault_fails_the_analysis_and_rolls_back(world, staging, target, fault) -> None:
    deployment = _deploy_twice(world, staging, fault)

    assert deployment.state == State.ROLLED_BACK
    reason = {"slow": "Mann-Whitney", "errors": "error rate"}[fault]
    assert deployment.failure_reason.startswith("Analysis failed") and reason in deployment.failure_reason
    assert Placement.objects.get(service=world.service, environment=staging).release.version == "1.0.0"


def test_an_unknown_simulated_fault_is_an_error_not_a_healthy_release(world, staging, target) -> None:
    deployment = _deploy_twice(world, staging, "flaky")

    # Refused at prepare, before anything was rolled out: cancelled, with nothing to roll back.
    assert deployment.state == State.CANCELLED
    assert "Unknown simulated fault 'flaky'" in deployment.failure_reason


def test_demo_load_makes_a_deployment_history_with_the_engine_once(settings, tmp_path) -> None:
    settings.GIT_ROOT = tmp_path / "git"
    out = io.StringIO()
    call_command("demo_load", stdout=out, stderr=io.StringIO())

    # Targets: simulated everywhere; canary in production (protected), rolling before it.
    environments = list(Environment.objects.order_by("order"))
    made = DeployTarget.objects.filter(service__slug=scaffolder_demo.SERVICE)  # scaffolded: runs for real
    assert sorted(made.values_list("runtime", flat=True)) == ["local"] * Environment.objects.count()
    targets = DeployTarget.objects.select_related("environment", "service").exclude(
        service__slug=scaffolder_demo.SERVICE
    )
    assert {t.service.slug for t in targets} == set(DEPLOYED_SERVICES)
    assert targets.count() == len(DEPLOYED_SERVICES) * len(environments)
    assert {t.runtime for t in targets} == {"simulated"}
    assert {(t.environment.slug, t.environment.protected, t.strategy) for t in targets} == {
        ("dev", False, "rolling"),
        ("staging", False, "rolling"),
        ("production", True, "canary"),
    }

    # History: every cell of the environments matrix filled, several successes per environment, one rollback.
    deployments = Deployment.objects.select_related("environment", "release", "previous_release")
    states = Counter(deployments.values_list("state", flat=True))
    assert states[State.ROLLED_BACK] == 1 and set(states) == {State.SUCCEEDED, State.ROLLED_BACK}
    assert f"{sum(states.values())} deployments made by the engine" in out.getvalue()
    for environment in environments:
        assert deployments.filter(environment=environment, state=State.SUCCEEDED).count() >= 3
    assert Placement.objects.count() == len(DEPLOYED_SERVICES) * len(environments)
    rolled_back = deployments.get(state=State.ROLLED_BACK)
    assert rolled_back.environment.slug == "production" and "Mann-Whitney" in rolled_back.failure_reason
    kept = Placement.objects.get(service=rolled_back.service, environment=rolled_back.environment)
    assert kept.release == rolled_back.previous_release
    assert deployments.filter(environment__slug="production", previous_release__isnull=False).count() >= 3

    # Releases are commits of the stand-in repositories, which the deploy form reads (tags and a newer commit).
    for release in Release.objects.select_related("service"):
        repository = publishers.local_path(name=release.service.slug)
        tagged = subprocess.run(
            ["git", "--git-dir", repository, "rev-parse", f"{release.version}^{{commit}}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert tagged == release.commit_sha and release.committed_at
    refs = services.repository_refs(service=rolled_back.service)
    assert len(refs["tags"]) == 4 and refs["commits"][0]["sha"] not in {tag["sha"] for tag in refs["tags"]}

    # Spread over past weeks, and every timestamp agrees: releases, deployments, timelines and audit events.
    now = timezone.now()
    assert now - deployments.earliest("created_at").created_at > timedelta(days=10)
    moment = timedelta(seconds=1)  # a transition stamps `finished_at` just before writing its event
    for deployment in deployments:
        assert deployment.release.committed_at < deployment.created_at <= deployment.started_at
        assert deployment.started_at < deployment.finished_at < now
        during = (deployment.created_at, deployment.finished_at + moment)
        events = DeploymentEvent.objects.filter(deployment=deployment, at__range=during)
        assert events.count() == deployment.events.count() > 5
        audit = AuditEvent.objects.filter(object_id=str(deployment.pk), action__startswith="deployment.")
        assert audit.filter(occurred_at__range=during).count() == audit.count() > 5
        assert audit.filter(action=f"deployment.{deployment.state}").exists()

    # A second load adds nothing.
    counts = (Deployment.objects.count(), DeploymentEvent.objects.count(), AuditEvent.objects.count())
    out = io.StringIO()
    call_command("demo_load", stdout=out, stderr=io.StringIO())
    assert (Deployment.objects.count(), DeploymentEvent.objects.count(), AuditEvent.objects.count()) == counts
    assert "deployment history already there" in out.getvalue()
