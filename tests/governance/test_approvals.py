"""Approvals: a require_approval policy parks a real deployment until eligible people approve it, through the real
engine and real CEL; rejection, expiry and cancellation end it; the fact document sees the approvals given."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from deployments import services as deployment_services
from deployments.models import Deployment, State
from governance import approvals, facts, notifications
from governance.models import Approval, ApprovalRequest, Decision
from portal.errors import Conflict
from teams.models import Membership
from tests.deployments.support import drive, release_make, scripted, step, target_make
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TWO_PERSON = {
    "match": "change.environment.protected && service.tier == 1 && !change.break_glass",
    "rule": "change.approvals.exists(a, 'lead' in a.roles && a.username != change.requester.username)",
    "message_expression": "service.slug + ' is tier 1: a lead of ' + service.owner + ' approves it first.'",
    "action": "require_approval",
    "approvers": "owner_leads",
}


@pytest.fixture
def leads(world):  # type: ignore[no-untyped-def]
    lena = MembershipFactory(
        team=world.owner_team, user=UserFactory(username="lena", email="lena@example.com"), role=Membership.Role.LEAD
    ).user
    liam = MembershipFactory(
        team=world.owner_team, user=UserFactory(username="liam", email="liam@example.com"), role=Membership.Role.LEAD
    ).user
    return lena, liam


def park(world, environment, *, user=None) -> Deployment:  # type: ignore[no-untyped-def]
    """Request a deployment and run its steps until it waits for approval (or ends)."""
    deployment = deployment_services.deployment_request(
        service=world.service, environment=environment, user=user or world.owner, release=release_make(world.service)
    )
    for _ in range(10):
        deployment = step(deployment)
        if deployment.state in (State.AWAITING_APPROVAL, State.CANCELLED, State.SUCCEEDED):
            return deployment
    raise AssertionError(f"stuck in {deployment.state}")


def open_request(deployment: Deployment) -> ApprovalRequest:
    return ApprovalRequest.objects.get(deployment=deployment, status=ApprovalRequest.Status.OPEN)


def test_a_tier_1_production_deploy_waits_for_a_lead_then_rolls_out(world, production, policy, leads) -> None:
    lena, _ = leads
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted() as runtime:
        deployment = park(world, production)
        assert deployment.state == State.AWAITING_APPROVAL
        assert "prepare" not in runtime.calls  # nothing is touched while it waits
        decision = Decision.objects.get(deployment=deployment)
        assert decision.verdict == "approval" and not decision.allowed
        request = open_request(deployment)
        assert request.decision == decision
        [requirement] = request.requirements
        assert requirement["approvers"] == "owner_leads" and requirement["count"] == 1
        assert requirement["message"] == "payments-api is tier 1: a lead of payments approves it first."
        timeline = list(deployment.events.values_list("message", flat=True))
        assert "Waiting for approval: payments-api is tier 1: a lead of payments approves it first." in timeline
        assert any(
            m.startswith("Needs 1 approval from a lead of the owning team (anyone but olivia)") for m in timeline
        )
        assert step(deployment).state == State.AWAITING_APPROVAL  # a worker's step does nothing while it waits

        with pytest.raises(PermissionDenied, match="someone else must approve"):
            approvals.approval_approve(request_id=request.pk, user=world.owner)
        with pytest.raises(PermissionDenied, match="needs 1 approval from a lead of the owning team"):
            approvals.approval_approve(request_id=request.pk, user=world.outsider)
        with pytest.raises(PermissionDenied):  # a platform admin is not a lead of the owning team
            approvals.approval_approve(request_id=request.pk, user=world.staff)

        approvals.approval_approve(request_id=request.pk, user=lena)
        deployment.refresh_from_db()
        assert deployment.state == State.POLICY_CHECK
        assert deployment.deadline > timezone.now() + timedelta(minutes=1)
        deployment = drive(deployment)
    assert deployment.state == State.SUCCEEDED
    assert Decision.objects.filter(deployment=deployment).count() == 1  # judged once, approvals do not re-judge
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED and request.closed_reason == "Approved by lena."
    assert deployment.events.filter(message="Approved by lena; the deployment goes on.").exists()
    assert deployment.events.filter(message__startswith="Policy check passed with the approvals it asked for").exists()
    event = AuditEvent.objects.get(action="approval.approved")
    assert event.actor == lena and event.after["as"] == "lead of the owning team"
    assert AuditEvent.objects.filter(action="approval.requested", object_id=str(request.pk)).exists()
    # The fact document of this deployment now carries the approval, as who the approver was then.
    document = facts.facts_build(change=facts.Change.of(deployment))
    [given] = document["change"]["approvals"]
    assert given["username"] == "lena" and given["roles"] == ["lead"] and given["platform_admin"] is False


def test_approvers_get_an_email_and_the_requester_does_not(world, production, policy, leads, mailoutbox) -> None:
    world.owner.email = "olivia@example.com"
    world.owner.save()
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, canary_steps=[50])
    request = open_request(park(world, production))
    assert notifications.approval_request_mail(request_id=request.pk) == 2
    assert sorted(mail.to[0] for mail in mailoutbox) == ["lena@example.com", "liam@example.com"]
    mail = mailoutbox[0]
    assert mail.subject == "[Runway] Approval needed: payments-api 1.0.0 → Production"
    assert "olivia asks to deploy payments-api 1.0.0 to Production" in mail.body
    assert f"/deployments/{request.deployment_id}/#approval" in mail.body
    approvals.approval_approve(request_id=request.pk, user=leads[0])
    assert notifications.approval_request_mail(request_id=request.pk) == 0  # closed: nobody is asked any more


def test_n_distinct_approvers_of_a_named_team(world, production, policy, leads) -> None:
    release_managers = world.other_team  # "search" plays the release managers here
    policy(
        "release-managers",
        "false",
        match="change.environment.protected",
        action="require_approval",
        approvers="team",
        approver_team=release_managers.slug,
        approvals_required=2,
    )
    rachel = MembershipFactory(team=release_managers, user=UserFactory(username="rachel")).user
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production)
    request = open_request(deployment)
    approvals.approval_approve(request_id=request.pk, user=world.outsider)
    with pytest.raises(Conflict, match="already answered"):
        approvals.approval_approve(request_id=request.pk, user=world.outsider)
    with pytest.raises(PermissionDenied):  # a lead of the owning team is not a release manager
        approvals.approval_approve(request_id=request.pk, user=leads[0])
    deployment.refresh_from_db()
    assert deployment.state == State.AWAITING_APPROVAL
    assert deployment.events.filter(
        message="Approved by oscar (member of search): 1 of 2 approvals, waiting for more."
    ).exists()
    assert [row["by"] for row in request.progress()] == [["oscar"]]
    approvals.approval_approve(request_id=request.pk, user=rachel)
    deployment.refresh_from_db()
    assert deployment.state == State.POLICY_CHECK
    assert drive(deployment).state == State.SUCCEEDED


def test_a_rejection_with_a_reason_cancels_the_deployment(world, production, policy, leads) -> None:
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted() as runtime:
        deployment = park(world, production)
        request = open_request(deployment)
        with pytest.raises(ValidationError) as caught:
            approvals.approval_reject(request_id=request.pk, user=leads[0], reason="  ")
        assert "Say why you reject it" in caught.value.message_dict["reason"][0]
        with pytest.raises(PermissionDenied):
            approvals.approval_reject(request_id=request.pk, user=world.outsider, reason="no")
        approvals.approval_reject(request_id=request.pk, user=leads[0], reason="Wait for the fix of INC-42.")
        assert "prepare" not in runtime.calls
    deployment.refresh_from_db()
    assert deployment.state == State.CANCELLED
    assert deployment.failure_reason == "Rejected by lena: Wait for the fix of INC-42."
    with pytest.raises(Conflict, match="already rejected"):
        approvals.approval_approve(request_id=request.pk, user=leads[1])
    event = AuditEvent.objects.get(action="approval.rejected")
    assert event.after["reason"] == "Wait for the fix of INC-42." and event.actor == leads[0]
    assert Approval.objects.get(request=request).verdict == "reject"


def test_an_expired_request_cancels_the_deployment_with_a_clear_entry(world, production, policy, leads) -> None:
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production)
    request = open_request(deployment)
    assert approvals.requests_expire() == 0  # not yet
    ApprovalRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(hours=24), expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(Conflict, match="has expired"):
        approvals.approval_approve(request_id=request.pk, user=leads[0])
    assert approvals.requests_expire() == 1
    deployment.refresh_from_db()
    assert deployment.state == State.CANCELLED
    message = (
        "The approval request expired after 24 h with 0 of 1 approvals; nothing was deployed. Deploy again to ask anew."
    )
    assert deployment.failure_reason == message
    assert deployment.events.filter(message=message, level="error").exists()
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.EXPIRED
    assert AuditEvent.objects.filter(action="approval.expired", object_id=str(request.pk)).exists()
    assert approvals.requests_expire() == 0


def test_cancelling_a_waiting_deployment_closes_its_request(world, production, policy, leads) -> None:
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production)
    with pytest.raises(Conflict, match="waiting for approval"):
        deployment_services.deployment_pause(deployment=deployment, user=world.owner, paused=True)
    deployment_services.deployment_abort(deployment=deployment, user=world.owner)
    request = ApprovalRequest.objects.get(deployment=deployment)
    assert request.status == ApprovalRequest.Status.CANCELLED
    with pytest.raises(Conflict, match="already cancelled"):
        approvals.approval_approve(request_id=request.pk, user=leads[0])


def test_a_require_approval_policy_that_errors_denies(world, production, policy, leads) -> None:
    policy("broken", **{**TWO_PERSON, "rule": "1 / history.failures_7d > 0"})
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production)
    assert deployment.state == State.CANCELLED
    assert "Policy broken could not be evaluated" in deployment.failure_reason
    assert not ApprovalRequest.objects.exists()


def test_a_deny_wins_over_an_approval(world, production, policy, leads) -> None:
    policy("two-person-rule", **TWO_PERSON)
    policy("never", "false", message="Not today.")
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production)
    assert deployment.state == State.CANCELLED and "Not today." in deployment.failure_reason
    assert Decision.objects.get(deployment=deployment).verdict == "deny"


def test_a_lead_requesting_needs_another_lead(world, production, policy, leads) -> None:
    lena, liam = leads
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, canary_steps=[50])
    deployment = park(world, production, user=lena)
    request = open_request(deployment)
    with pytest.raises(PermissionDenied, match="You asked for this deployment"):
        approvals.approval_approve(request_id=request.pk, user=lena)
    approvals.approval_approve(request_id=request.pk, user=liam)
    deployment.refresh_from_db()
    assert deployment.state == State.POLICY_CHECK


def test_the_dry_run_says_approval_is_needed(world, production, policy, leads) -> None:
    from governance import services

    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, canary_steps=[50])
    decision = services.policy_check(
        service="payments-api", environment="production", version="1.0.0", user=world.owner, strategy="canary"
    )
    assert decision.verdict == "approval" and decision.facts["change"]["approvals"] == []
    assert decision.facts["change"]["break_glass"] is False


def test_a_waiting_deployment_shows_on_the_team_page_and_on_an_approvers_home(
    client, world, production, policy, leads
) -> None:  # type: ignore[no-untyped-def]
    lena, _ = leads
    policy("two-person-rule", **TWO_PERSON)
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = park(world, production)
    assert deployment.state == State.AWAITING_APPROVAL

    client.force_login(lena)
    team_page = client.get("/reviews/teams/payments/").content.decode()
    home = client.get("/").content.decode()
    client.force_login(world.owner)  # the requester: never asked to approve their own change
    requester_home = client.get("/").content.decode()

    waiting = f'<a href="{deployment.get_absolute_url()}">Payments API {deployment.release.version}</a>'
    assert "Deployments awaiting approval" in team_page and waiting in team_page
    assert f"Approve deploying Payments API {deployment.release.version}" in home
    assert "Approve deploying" not in requester_home
