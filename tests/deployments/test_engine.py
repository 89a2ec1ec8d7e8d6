"""The deployment engine on scripted runtimes: strategies, analysis verdicts, crashes, rollbacks and controls."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from deployments import machine, services
from deployments.models import Deployment, DeploymentEvent, Environment, Placement, State
from portal.errors import Conflict
from tests.deployments.support import drive, release_make, scripted, step, target_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def production() -> Environment:
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


def deploy(world, environment, release, **kwargs) -> Deployment:  # type: ignore[no-untyped-def]
    return services.deployment_request(
        service=world.service, environment=environment, user=world.owner, release=release, **kwargs
    )


def test_canary_succeeds_and_records_what_runs_where(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[10, 50])
    release = release_make(world.service)
    with scripted() as runtime:
        deployment = drive(deploy(world, production, release))
    assert deployment.state == State.SUCCEEDED
    assert deployment.traffic_share == 100
    assert runtime.calls == [
        "prepare", "scale:1", "route:10", "observe", "route:50", "observe", "scale:2", "route:100",
        "scale:2", "route:100", "finalize",
    ]  # fmt: skip
    placement = Placement.objects.get(service=world.service, environment=production)
    assert placement.release == release and placement.deployment == deployment
    states = list(deployment.events.filter(step__in=State.values).values_list("step", flat=True))
    assert states[-1] == "succeeded" and "analysing" in states and "policy_check" in states


def test_every_transition_has_exactly_one_audit_event(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[10])
    with scripted() as runtime:
        runtime.script.extend(["fail"])
        deployment = drive(deploy(world, production, release_make(world.service)))
    transitions = deployment.events.exclude(from_state="").count()
    audits = AuditEvent.objects.filter(object_id=str(deployment.pk), action__startswith="deployment.")
    assert audits.exclude(action="deployment.requested").count() == transitions
    assert deployment.state == State.ROLLED_BACK


def test_failed_analysis_rolls_back_and_never_promotes(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[10, 50])
    with scripted() as runtime:
        runtime.script.extend(["pass", "fail"])
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.ROLLED_BACK
    assert "finalize" not in runtime.calls and runtime.calls[-1] == "rollback"
    assert "canary error rate" in deployment.failure_reason
    assert not deployment.events.filter(step="promoting").exists()
    figures = deployment.events.filter(message="Analysis figures").last()
    assert figures.data["verdict"] == "fail" and figures.data["figures"]["canary"]["error_rate"] == 0.5
    assert not Placement.objects.filter(service=world.service, environment=production).exists()


def test_health_check_failure_rolls_back_and_keeps_the_previous_release(world, production) -> None:
    target_make(world.service, production, runtime="scripted", strategy="rolling", replicas=2)
    old, new = release_make(world.service, "1.0.0"), release_make(world.service, "1.1.0")
    with scripted():
        drive(deploy(world, production, old))
    with scripted() as runtime:
        runtime.script.append("bad")
        deployment = drive(deploy(world, production, new))
    assert deployment.state == State.ROLLED_BACK
    assert deployment.previous_release == old
    assert "did not pass its health check" in deployment.failure_reason
    assert Placement.objects.get(service=world.service, environment=production).release == old


def test_metric_errors_abort_the_step_after_three_tries(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[25])
    with scripted() as runtime:
        runtime.script.extend(["error", "error", "error"])
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.ROLLED_BACK
    assert "No usable analysis data after 3 tries" in deployment.failure_reason
    assert deployment.events.filter(level="warning", message__startswith="Analysis inconclusive").count() == 2


def test_a_step_that_keeps_crashing_fails_the_deployment(world, production) -> None:
    target_make(world.service, production, runtime="scripted", strategy="blue_green")
    with scripted() as runtime:
        runtime.script.extend(["crash"] * 4)
        deployment = drive(deploy(world, production, release_make(world.service)))
    # prepare is what crashes, before the rollout: it ends cancelled without a rollback (see
    # test_failure_before_rollout.py, which also shows a crash loop during the rollout rolling back).
    assert deployment.state == State.CANCELLED and "rollback" not in runtime.calls
    assert "crashed its worker 3 times" in deployment.failure_reason


def test_rollback_is_tried_three_times_then_flagged(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[10])
    with scripted() as runtime:
        runtime.script.extend(["fail", "rollback_fail", "rollback_fail", "rollback_fail"])
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.ROLLBACK_FAILED
    assert deployment.needs_attention and deployment.rollback_attempts == 3
    assert runtime.calls.count("rollback") == 3


def test_stale_and_duplicate_steps_write_nothing(world, production) -> None:
    target_make(world.service, production, runtime="scripted")
    with scripted():
        deployment = deploy(world, production, release_make(world.service))
        stale_version = deployment.version
        deployment = step(deployment)
        assert deployment.state == State.POLICY_CHECK
        events = DeploymentEvent.objects.count()
        from deployments import engine

        engine.run_step(deployment.pk, stale_version)  # a redelivered message
        assert Deployment.objects.get(pk=deployment.pk).version == deployment.version
        assert DeploymentEvent.objects.count() == events


def test_second_deploy_to_the_same_environment_is_refused_naming_the_first(world, production) -> None:
    target_make(world.service, production, runtime="scripted")
    first = deploy(world, production, release_make(world.service))
    with pytest.raises(Conflict, match=f"deployment #{first.pk}"):
        deploy(world, production, release_make(world.service, "2.0.0"))
    assert Deployment.objects.count() == 1


def test_bad_requests_change_nothing(world, production) -> None:
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    target_make(world.service, production, runtime="scripted")
    release = release_make(world.service)
    with pytest.raises(ValidationError, match="not set up to deploy to Staging"):
        deploy(world, staging, release)
    with pytest.raises(PermissionDenied, match="Only Payments"):
        services.deployment_request(service=world.service, environment=production, user=world.outsider, release=release)
    with pytest.raises(ValidationError, match="has no repository"):
        services.deployment_request(service=world.service, environment=production, user=world.owner, ref="v1")
    with pytest.raises(ValidationError, match="strategy"):
        deploy(world, production, release, strategy="yolo")
    assert Deployment.objects.count() == 0


def test_promote_now_skips_remaining_analyses(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[10, 25, 50])
    with scripted() as runtime:
        deployment = deploy(world, production, release_make(world.service))
        for _ in range(4):
            deployment = step(deployment)
        services.deployment_promote(deployment=deployment, user=world.owner)
        deployment = drive(deployment)
    assert deployment.state == State.SUCCEEDED
    assert runtime.calls.count("observe") <= 1
    assert deployment.events.filter(message__startswith="Promoted by olivia").exists()


def test_abort_before_rollout_cancels_and_after_rolls_back(world, production) -> None:
    target_make(world.service, production, runtime="scripted")
    with scripted() as runtime:
        first = deploy(world, production, release_make(world.service))
        first = services.deployment_abort(deployment=first, user=world.owner)
        assert first.state == State.CANCELLED
        second = deploy(world, production, release_make(world.service, "2.0.0"))
        for _ in range(3):
            second = step(second)
        services.deployment_abort(deployment=second, user=world.owner)
        second = drive(second)
    assert second.state == State.ROLLED_BACK and "rollback" in runtime.calls
    with pytest.raises(Conflict):
        services.deployment_abort(deployment=second, user=world.owner)


def test_pause_holds_and_resume_continues(world, production) -> None:
    target_make(world.service, production, runtime="scripted")
    with scripted():
        deployment = step(deploy(world, production, release_make(world.service)))
        services.deployment_pause(deployment=deployment, user=world.owner, paused=True)
        held = step(deployment)
        assert held.state == State.POLICY_CHECK and held.version == deployment.version
        services.deployment_pause(deployment=deployment, user=world.owner, paused=False)
        assert drive(deployment).state == State.SUCCEEDED


def test_redeploy_is_a_new_tracked_deployment(world, production) -> None:
    target_make(world.service, production, runtime="scripted", strategy="rolling")
    with scripted():
        first = drive(deploy(world, production, release_make(world.service)))
        drive(deploy(world, production, release_make(world.service, "2.0.0")))
        again = drive(services.deployment_redeploy(deployment=first, user=world.owner))
    assert again.rollback_of == first and again.release == first.release
    assert Placement.objects.get(service=world.service, environment=production).release == first.release


def test_terminal_states_refuse_every_transition() -> None:
    for terminal in ("succeeded", "rolled_back", "rollback_failed", "cancelled"):
        assert all(not machine.can_transition(terminal, target) for target in State.values)
    assert not machine.can_transition("failed", "promoting")


def test_the_sweeper_rings_lost_steps_once_not_every_waiting_one(world, production, monkeypatch) -> None:
    from deployments import tasks

    rung: list[tuple[int, int]] = []
    monkeypatch.setattr(tasks.deployment_step, "delay", lambda pk, version: rung.append((pk, version)))
    target_make(world.service, production, runtime="scripted")
    lost = deploy(world, production, release_make(world.service))
    other = Environment.objects.create(name="Staging", slug="staging", order=1)
    target_make(world.service, other, runtime="scripted")
    fresh = deploy(world, other, release_make(world.service, "2.0.0"))
    long_ago = timezone.now() - timedelta(seconds=60)
    Deployment.objects.filter(pk=lost.pk).update(updated_at=long_ago)  # its message never arrived

    services.deployments_sweep()
    services.deployments_sweep()  # a second sweep right away must not ring it again

    assert rung == [(lost.pk, lost.version)]  # not `fresh`: its own message is still on its way
    leased = timezone.now() + timedelta(seconds=60)
    Deployment.objects.filter(pk=lost.pk).update(updated_at=long_ago, lease_until=leased)
    services.deployments_sweep()
    assert len(rung) == 1  # a live lease: a worker has it
    Deployment.objects.filter(pk=lost.pk).update(rung_at=long_ago - timedelta(seconds=1), lease_until=None)
    services.deployments_sweep()
    assert len(rung) == 2 and fresh.pk not in [pk for pk, _ in rung]  # rung again once the last ring is old
