"""A deployment that fails before its rollout touched anything ends without a rollback.

The runtime's rollback stops the replicas of the deployment's commit; for a redeploy of the release already running
those are the live replicas, so rolling back a deployment that never rolled out would stop what runs.
"""

import pytest

from deployments import runtimes
from deployments.models import Deployment, DeploymentEvent, Environment, Placement, State
from deployments.runtimes.base import Context, StepFailed
from deployments.services import deployment_request
from tests.deployments.support import ScriptedRuntime, drive, release_make, scripted, step, target_make

pytestmark = pytest.mark.django_db


class PrepareFails(ScriptedRuntime):
    """A runtime whose prepare reports a failure (a checkout that cannot be made, a CD job that failed)."""

    def prepare(self, ctx: Context) -> None:
        self.calls.append("prepare")
        raise StepFailed("Release 1.0.0 could not be prepared: commit not found in the repository.")


@pytest.fixture
def production() -> Environment:
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


def deploy(world, environment, release) -> Deployment:  # type: ignore[no-untyped-def]
    return deployment_request(service=world.service, environment=environment, user=world.owner, release=release)


@pytest.fixture
def running(world, production):  # type: ignore[no-untyped-def]
    """Release 1.0.0 runs in production, deployed by the engine."""
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    release = release_make(world.service)
    with scripted():
        first = drive(deploy(world, production, release))
    assert first.state == State.SUCCEEDED
    return first


def assert_untouched(world, production, first: Deployment, failed: Deployment) -> None:  # type: ignore[no-untyped-def]
    placement = Placement.objects.get(service=world.service, environment=production)
    assert placement.release_id == first.release_id and placement.deployment_id == first.pk
    assert failed.traffic_share == 0
    assert not failed.events.filter(step__in=[State.FAILED, State.ROLLING_BACK, State.ROLLED_BACK]).exists()


def test_a_redeploy_whose_prepare_fails_ends_cancelled_without_touching_the_running_release(
    world, production, running
) -> None:  # type: ignore[no-untyped-def]
    runtime = PrepareFails()
    runtimes.REGISTRY["scripted"] = lambda: runtime
    try:
        failed = drive(deploy(world, production, running.release))
    finally:
        runtimes.REGISTRY.pop("scripted", None)

    assert runtime.calls == ["prepare"]  # never scaled, routed, stopped or rolled back
    assert failed.state == State.CANCELLED
    assert failed.failure_reason == "Release 1.0.0 could not be prepared: commit not found in the repository."
    event = failed.events.get(step=State.CANCELLED)
    assert event.level == DeploymentEvent.Level.ERROR
    assert event.message == (
        "Release 1.0.0 could not be prepared: commit not found in the repository. "
        "Nothing was rolled out, so nothing is rolled back; what ran before still runs."
    )
    assert_untouched(world, production, running, failed)


def test_a_policy_step_that_keeps_crashing_ends_cancelled_without_a_rollback(world, production, running) -> None:  # type: ignore[no-untyped-def]
    with scripted() as runtime:
        runtime.script.extend(["crash"] * 3)  # prepare crashes its worker on every attempt
        failed = drive(deploy(world, production, running.release))
        calls = list(runtime.calls)

    assert calls == ["prepare"] * 3
    assert failed.state == State.CANCELLED
    assert failed.failure_reason == "The step policy check crashed its worker 3 times."
    assert "nothing is rolled back" in failed.events.get(step=State.CANCELLED).message
    assert_untouched(world, production, running, failed)


def test_a_crash_loop_after_the_rollout_started_still_rolls_back(world, production, running) -> None:  # type: ignore[no-untyped-def]
    """Once the rollout touched the environment, failing must restore it: only the steps before it end cancelled."""
    with scripted() as runtime:
        deployment = deploy(world, production, release_make(world.service, "1.1.0"))
        while deployment.state != State.ROLLING_OUT:
            deployment = step(deployment)
        runtime.script.extend(["crash"] * 3)
        failed = drive(deployment)
        assert "rollback" in runtime.calls
    assert failed.state == State.ROLLED_BACK
    assert "crashed its worker 3 times" in failed.failure_reason
