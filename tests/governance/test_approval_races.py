"""Approvals racing on PostgreSQL, each side in its own thread with its own connection and transaction: two approvers
at once, approve against expiry, approve against cancel. Every writer's transaction is slowed down while it holds its
locks, so the other side really waits on them. And a real Celery worker takes a parked deployment on once approved."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit import services as audit_services
from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentEvent, State
from governance import approvals
from governance.models import Approval, ApprovalRequest
from portal.celery import app
from portal.errors import Conflict
from teams.models import Membership
from tests.deployments.support import release_make, step, target_make
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]
HOLD = 0.25  # seconds every audit write sleeps, inside the writer's transaction (so with its locks held)


def race(*calls: tuple[float, Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run each call in its own thread (its own database connection) after its delay; (ok|error, value) each. While
    they run, every audit write sleeps HOLD seconds inside its transaction, with the writer's locks held."""
    original = audit_services.event_record

    def slow(**kwargs: Any) -> Any:
        event = original(**kwargs)
        time.sleep(HOLD)
        return event

    results: list[tuple[str, Any]] = [("", None)] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int, delay: float, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            time.sleep(delay)
            results[index] = ("ok", call())
        except Exception as error:
            results[index] = ("error", error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, d, c)) for i, (d, c) in enumerate(calls)]
    audit_services.event_record = slow  # type: ignore[assignment]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        audit_services.event_record = original  # type: ignore[assignment]
    return results


@pytest.fixture
def parked(world, policy, settings):  # type: ignore[no-untyped-def]
    """`parked(count)`: a production deployment of payments-api waiting for `count` leads of payments."""
    from deployments.models import Environment

    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    target_make(world.service, production, canary_steps=[50])
    leads = [
        MembershipFactory(team=world.owner_team, user=UserFactory(username=name), role=Membership.Role.LEAD).user
        for name in ("lena", "liam")
    ]

    def make(count: int = 1) -> tuple[Deployment, ApprovalRequest, list[Any]]:
        policy("leads", "false", action="require_approval", approvers="owner_leads", approvals_required=count)
        deployment = deployment_services.deployment_request(
            service=world.service, environment=production, user=world.owner, release=release_make(world.service)
        )
        for _ in range(5):
            deployment = step(deployment)
        assert deployment.state == State.AWAITING_APPROVAL
        return deployment, ApprovalRequest.objects.get(deployment=deployment), leads

    return make


def transitions(deployment: Deployment, source: str) -> list[str]:
    return list(DeploymentEvent.objects.filter(deployment=deployment, from_state=source).values_list("step", flat=True))


def test_two_approvers_at_once_both_count(parked) -> None:
    deployment, request, (lena, liam) = parked(2)
    results = race(
        (0, lambda: approvals.approval_approve(request_id=request.pk, user=lena)),
        (0, lambda: approvals.approval_approve(request_id=request.pk, user=liam)),
    )
    assert [kind for kind, _ in results] == ["ok", "ok"], results
    deployment.refresh_from_db()
    request.refresh_from_db()
    assert deployment.state == State.POLICY_CHECK and request.status == ApprovalRequest.Status.APPROVED
    assert Approval.objects.filter(request=request).count() == 2
    assert transitions(deployment, State.AWAITING_APPROVAL) == [State.POLICY_CHECK]  # moved on exactly once


def test_two_approvers_racing_for_one_approval_move_it_once(parked) -> None:
    deployment, request, (lena, liam) = parked(1)
    results = race(
        (0, lambda: approvals.approval_approve(request_id=request.pk, user=lena)),
        (0, lambda: approvals.approval_approve(request_id=request.pk, user=liam)),
    )
    kinds = sorted(kind for kind, _ in results)
    assert kinds == ["error", "ok"], results
    [error] = [value for kind, value in results if kind == "error"]
    assert isinstance(error, Conflict) and "already approved" in error.message
    assert Approval.objects.filter(request=request).count() == 1
    assert transitions(deployment, State.AWAITING_APPROVAL) == [State.POLICY_CHECK]


@pytest.mark.parametrize("first", ["approve", "expire"])
def test_approve_against_expiry(parked, first: str) -> None:
    deployment, request, (lena, _) = parked(1)
    # Approving first: the approver takes the locks before the request runs out; the sweep, started while they hold
    # them, finds the request expired by the clock but answered when it gets the lock. Expiring first: the
    # approver arrives while the sweep holds the locks.
    expires = timezone.now() + (timedelta(seconds=0.15) if first == "approve" else -timedelta(seconds=1))
    ApprovalRequest.objects.filter(pk=request.pk).update(expires_at=expires)
    approve = lambda: approvals.approval_approve(request_id=request.pk, user=lena)  # noqa: E731
    results = race(
        (0 if first == "approve" else 0.1, approve), (0.2 if first == "approve" else 0, approvals.requests_expire)
    )
    deployment.refresh_from_db()
    request.refresh_from_db()
    if first == "approve":
        assert results == [("ok", results[0][1]), ("ok", 0)], results
        assert request.status == ApprovalRequest.Status.APPROVED and deployment.state == State.POLICY_CHECK
    else:
        assert results[0][0] == "error" and isinstance(results[0][1], Conflict), results
        assert results[1] == ("ok", 1)
        assert request.status == ApprovalRequest.Status.EXPIRED and deployment.state == State.CANCELLED
        assert not Approval.objects.filter(request=request).exists()
    assert len(transitions(deployment, State.AWAITING_APPROVAL)) == 1


@pytest.mark.parametrize("first", ["approve", "cancel"])
def test_approve_against_cancel(parked, world, first: str) -> None:
    deployment, request, (lena, _) = parked(1)
    approve = lambda: approvals.approval_approve(request_id=request.pk, user=lena)  # noqa: E731
    cancel = lambda: deployment_services.deployment_abort(deployment=deployment, user=world.owner)  # noqa: E731
    results = race((0 if first == "approve" else 0.1, approve), (0.1 if first == "approve" else 0, cancel))
    deployment.refresh_from_db()
    request.refresh_from_db()
    assert deployment.state == State.CANCELLED  # cancelling before the rollout is allowed either way
    assert results[1][0] == "ok", results
    if first == "approve":
        # Approved, back at its policy step (nothing touched yet), then cancelled by its owner.
        assert results[0][0] == "ok"
        assert request.status == ApprovalRequest.Status.APPROVED
        assert transitions(deployment, State.AWAITING_APPROVAL) == [State.POLICY_CHECK]
        assert transitions(deployment, State.POLICY_CHECK)[-1] == State.CANCELLED
    else:
        assert results[0][0] == "error" and "already cancelled" in results[0][1].message
        assert request.status == ApprovalRequest.Status.CANCELLED
        assert transitions(deployment, State.AWAITING_APPROVAL) == [State.CANCELLED]
        assert not Approval.objects.filter(request=request).exists()


def test_a_real_worker_parks_the_deployment_and_takes_it_on_once_approved(world, policy, client, mailoutbox) -> None:
    from deployments.models import Environment

    lena = MembershipFactory(
        team=world.owner_team, user=UserFactory(username="lena", email="lena@example.com"), role=Membership.Role.LEAD
    ).user
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    target_make(world.service, production, canary_steps=[50])
    policy("leads", "false", action="require_approval", approvers="owner_leads", message="A lead approves it.")

    def wait_for(deployment: Deployment, *states: str) -> Deployment:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            deployment.refresh_from_db()
            if deployment.state in states:
                return deployment
            time.sleep(0.1)
        raise AssertionError(f"still {deployment.state}")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        deployment = deployment_services.deployment_request(
            service=world.service, environment=production, user=world.owner, release=release_make(world.service)
        )
        deployment = wait_for(deployment, State.AWAITING_APPROVAL, State.CANCELLED)
        assert deployment.state == State.AWAITING_APPROVAL
        request = ApprovalRequest.objects.get(deployment=deployment)
        deadline = time.monotonic() + 10
        while not mailoutbox and time.monotonic() < deadline:  # the worker emails the lead
            time.sleep(0.1)
        assert [mail.to for mail in mailoutbox] == [["lena@example.com"]]
        client.force_login(lena)
        response = client.post(
            reverse("governance:approval-answer", args=[request.pk, "approve"]), {"confirmed": "yes"}
        )
        assert response.status_code == 302
        deployment = wait_for(deployment, State.SUCCEEDED, State.FAILED, State.CANCELLED, State.ROLLED_BACK)
    assert deployment.state == State.SUCCEEDED, deployment.failure_reason
