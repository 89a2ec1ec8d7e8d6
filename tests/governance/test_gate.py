"""The policy step of real deployments, driven through the real engine and judged by real CEL policies."""

import pytest

from audit.models import AuditEvent
from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentEvent, State
from governance.models import Decision
from tests.deployments.support import drive, release_make, scripted, step, target_make

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def deploy(world, environment, release, **kwargs) -> Deployment:  # type: ignore[no-untyped-def]
    return deployment_services.deployment_request(
        service=world.service, environment=environment, user=world.owner, release=release, **kwargs
    )


def test_with_no_policies_the_deployment_proceeds_and_the_decision_is_recorded(world, production) -> None:
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.SUCCEEDED
    decision = Decision.objects.get(deployment=deployment)
    assert decision.verdict == "allow" and decision.results == []
    assert decision.facts["change"]["environment"]["slug"] == "production"
    assert deployment.events.filter(message__contains="no deploy policies are enabled").exists()


def test_a_deny_policy_fails_the_deployment_with_its_message(world, staging, production, policy) -> None:
    policy(
        "staging-before-production",
        "'staging' in change.succeeded_in",
        match="change.environment.slug == 'production'",
        message_expression="'Release ' + change.version + ' has not succeeded in staging yet.'",
    )
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    release = release_make(world.service)
    with scripted() as runtime:
        deployment = drive(deploy(world, production, release))
    assert deployment.state == State.CANCELLED
    assert deployment.failure_reason == (
        "Policy check refused the deployment: Release 1.0.0 has not succeeded in staging yet."
    )
    assert "prepare" not in runtime.calls  # nothing was touched
    decision = Decision.objects.get(deployment=deployment)
    [result] = decision.results
    assert decision.verdict == "deny" and result["outcome"] == "fail"
    assert result["version_id"] == decision.results[0]["version_id"] and result["version"] == 1
    assert AuditEvent.objects.filter(action="policy.decision", object_id=str(decision.pk)).exists()


def test_the_same_release_passes_once_it_succeeded_in_staging(world, staging, production, policy) -> None:
    policy("staging-before-production", "'staging' in change.succeeded_in", match="change.environment.protected")
    target_make(world.service, staging, runtime="scripted", canary_steps=[50])
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    release = release_make(world.service)
    with scripted():
        assert drive(deploy(world, staging, release)).state == State.SUCCEEDED
        assert drive(deploy(world, production, release)).state == State.SUCCEEDED


def test_warn_policies_go_on_the_timeline_and_audit_policies_only_on_the_decision(world, production, policy) -> None:
    policy("tier-one-docs", "service.runbooks > 0", action="warn", message="payments-api has no runbook.")
    policy("hours", "false", action="audit", message="Outside working hours.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.SUCCEEDED
    warning = deployment.events.get(level=DeploymentEvent.Level.WARNING)
    assert warning.message == "Policy warning: payments-api has no runbook."
    assert warning.data == {"decision": deployment.policy_decision.pk}
    assert not deployment.events.filter(message__contains="working hours").exists()
    outcomes = {r["policy"]: r["outcome"] for r in deployment.policy_decision.results}
    assert outcomes == {"hours": "fail", "tier-one-docs": "fail"}


def test_a_deployment_past_its_policy_step_is_not_rejudged_by_a_later_edit(world, production, policy) -> None:
    policy("canary-in-production", "change.strategy != 'rolling'", message="Use canary.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = deploy(world, production, release_make(world.service))
        deployment = step(step(deployment))  # pending → policy check → rolling out
        assert deployment.state == State.ROLLING_OUT
        policy("canary-in-production", "false", message="Nothing ships.")
        deployment = drive(deployment)
    assert deployment.state == State.SUCCEEDED
    decision = Decision.objects.get(deployment=deployment)
    assert decision.results[0]["version"] == 1 and decision.verdict == "allow"


def test_a_retried_policy_step_reuses_its_decision(world, production, policy) -> None:
    """The worker crashed after judging (in `prepare`); the retry must not judge again with an edited policy."""
    policy("canary-in-production", "change.strategy != 'rolling'", message="Use canary.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted() as runtime:
        deployment = step(deploy(world, production, release_make(world.service)))
        runtime.script.append("crash")
        deployment = step(deployment)
        assert deployment.state == State.POLICY_CHECK and Decision.objects.count() == 1
        policy("canary-in-production", "false", message="Nothing ships.")
        deployment = drive(deployment)
    assert deployment.state == State.SUCCEEDED and Decision.objects.count() == 1


def test_a_deny_policy_that_errors_fails_the_deployment_naming_the_policy(world, production, policy) -> None:
    policy("failure-ratio", "history.deployments_30d / history.failures_30d < 10", message="Too many failures.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.CANCELLED
    assert deployment.failure_reason == (
        "Policy check refused the deployment: Policy failure-ratio could not be evaluated: "
        "division by zero in CEL expression"
    )


def test_a_refused_deployment_touches_nothing_not_even_the_release_already_running(world, production, policy) -> None:  # type: ignore[no-untyped-def]
    """Rolling back a refused redeploy of the running release would stop that release (the local runtime stops the
    replicas of the deployment's commit): a refusal ends the deployment before anything is touched."""
    from deployments.models import Placement

    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    release = release_make(world.service)
    with scripted() as runtime:
        assert drive(deploy(world, production, release)).state == State.SUCCEEDED
        policy("frozen", "false", message="Production is frozen.")
        runtime.calls.clear()
        refused = drive(deploy(world, production, release))
    assert runtime.calls == []
    assert refused.state == State.CANCELLED and refused.traffic_share == 0
    assert refused.failure_reason == "Policy check refused the deployment: Production is frozen."
    event = refused.events.get(step=State.CANCELLED)
    assert event.level == DeploymentEvent.Level.ERROR and event.message == refused.failure_reason
    assert Placement.objects.get(service=world.service, environment=production).release == release


def test_the_policy_step_reads_in_one_statement_and_a_retry_writes_nothing(  # type: ignore[no-untyped-def]
    world, production, policy, django_assert_num_queries
) -> None:
    from deployments import engine, policies
    from governance import selectors

    policy("canary-in-production", "change.strategy != 'rolling'", message="Use canary.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    requested = deploy(world, production, release_make(world.service))
    deployment = Deployment.objects.select_related(*engine.CLAIM_RELATED).get(pk=requested.pk)  # as a step has it
    policies.deploy_check(deployment)  # the process reads the enabled policies once
    Decision.objects.all().delete()
    # The fact document with whether it was judged already, then the decision and its audit event in one transaction
    # (BEGIN, two INSERTs, COMMIT); without a shared cache the enabled policies are read every time.
    with django_assert_num_queries(5 if selectors._shared_cache() else 6):
        first = policies.deploy_check(deployment)
    with django_assert_num_queries(2):  # the same statement finds the decision, which is loaded and returned
        again = policies.deploy_check(deployment)
    assert again.decision_id == first.decision_id and Decision.objects.count() == 1


def test_production_waits_while_staging_is_down(world, staging, production, policy) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.models import HealthCheck, ProbeResult

    policy(
        "staging-up-before-production",
        "!('staging' in health.down)",
        match="change.environment.slug == 'production'",
        message_expression=(
            "'Staging is down (' + string(health.environments['staging'].uptime_7d) + ' % up this week).'"
        ),
    )
    check = HealthCheck.objects.create(service=world.service, environment=staging, url="http://a.example/healthz")
    for minutes in (2, 1):
        at = timezone.now() - timedelta(minutes=minutes)
        ProbeResult.objects.create(health_check=check, checked_at=at, ok=False, error="answered 503, expected 200")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        refused = drive(deploy(world, production, release_make(world.service)))
    assert refused.state == State.CANCELLED
    assert refused.failure_reason == "Policy check refused the deployment: Staging is down (0 % up this week)."

    ProbeResult.objects.create(health_check=check, checked_at=timezone.now(), ok=True, status_code=200)
    with scripted():
        allowed = drive(deploy(world, production, release_make(world.service, "1.1.0")))
    assert allowed.state == State.SUCCEEDED  # degraded, not down: one probe passed since
