"""Approvals: deployments a require_approval policy (or a break-glass request) parked until enough people approve.

A request lists what it needs (`requirements`: per failed policy, how many distinct approvers and from whom). Anyone
eligible for one requirement may answer; the requester never may. An approval counts for every requirement its
approver is eligible for; once each requirement has its count, the deployment goes back to its policy step, which
finds its decision made and the approvals given, and rolls out. One rejection (with a reason) cancels it; so does
the request expiring (a beat task) or the deployment being cancelled.

Races: every answer, the expiry and a cancellation lock the deployment row first, then the request, so for one
deployment they happen one after another and each re-reads the state the one before left. Two approvers at once
are counted both; an approval after expiry or cancellation is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from deployments import engine, machine
from deployments.models import Deployment, DeploymentEvent, State
from governance.models import Action, Approval, ApprovalRequest, Approvers, Decision, PolicyVersion, approvers_text
from portal.errors import Conflict

log = structlog.get_logger(__name__)
MAX_REASON = 2000


def expiry() -> timedelta:
    """How long a request waits for its approvals (GOVERNANCE["APPROVAL_EXPIRY_HOURS"])."""
    return timedelta(hours=float(settings.GOVERNANCE["APPROVAL_EXPIRY_HOURS"]))


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{round(hours, 1):g} h" if hours >= 1 else f"{round(delta.total_seconds() / 60):g} min"


def requirements_of(decision: Decision) -> list[dict[str, Any]]:
    """What each failed require_approval policy of the decision asks for, from the versions that judged."""
    failed = [r for r in decision.results if r["action"] == Action.REQUIRE_APPROVAL and r["outcome"] == "fail"]
    versions = PolicyVersion.objects.in_bulk([r["version_id"] for r in failed])
    requirements = []
    for result in failed:
        version = versions[result["version_id"]]
        requirements.append(
            {
                "policy": result["policy"],
                "version_id": version.pk,
                "version": version.number,
                "approvers": version.approvers,
                "team": version.approver_team,
                "count": version.approvals_required,
                "message": result["message"],
            }
        )
    return requirements


def _open(*, deployment: Deployment, kind: str, requirements: list[dict[str, Any]], reason: str, **extra: Any) -> None:
    request = ApprovalRequest.objects.create(
        deployment=deployment,
        kind=kind,
        requirements=requirements,
        requested_by=deployment.requested_by,
        reason=reason,
        expires_at=timezone.now() + expiry(),
        **extra,
    )
    needs = "; ".join(approvers_text(r) for r in requirements)
    requester = deployment.requested_by.get_username() if deployment.requested_by else "the requester"
    machine.note(
        deployment,
        f"Needs {needs} (anyone but {requester}), within {_hours(expiry())}.",
        level=DeploymentEvent.Level.WARNING,
        data={"approval_request": request.pk},
    )
    audit.event_record(
        actor=deployment.requested_by,
        action="approval.requested",
        target=request,
        after={"deployment": deployment.pk, "kind": kind, "requirements": requirements, "reason": reason[:500]},
        service_id=deployment.service_id,
    )
    from governance import tasks

    tasks.approval_notify.delay_on_commit(request.pk)


def request_open(*, deployment: Deployment, decision_id: int | None) -> None:
    """Ask for the approvals the deployment's decision requires; runs in the transaction that parks it."""
    assert decision_id is not None, "a deployment waits for approvals its decision asked for"
    decision = Decision.objects.get(pk=decision_id)
    requirements = requirements_of(decision)
    reason = " ".join(r["message"] for r in requirements)
    _open(
        deployment=deployment,
        kind=ApprovalRequest.Kind.POLICY,
        requirements=requirements,
        reason=reason,
        decision=decision,
    )


def break_glass_open(*, deployment: Deployment) -> None:
    """A break-glass deploy waits for one platform admin before its policy step; runs in the parking transaction."""
    requirement = {
        "policy": "",
        "version_id": None,
        "version": None,
        "approvers": Approvers.PLATFORM_ADMINS,
        "team": "",
        "count": 1,
        "message": f"Break-glass: {deployment.break_glass_reason}",
    }
    _open(
        deployment=deployment,
        kind=ApprovalRequest.Kind.BREAK_GLASS,
        requirements=[requirement],
        reason=deployment.break_glass_reason,
    )


def granted(*, deployment: Deployment, decision_id: int | None) -> bool:
    if decision_id is None:
        return False
    return ApprovalRequest.objects.filter(
        deployment=deployment,
        kind=ApprovalRequest.Kind.POLICY,
        decision_id=decision_id,
        status=ApprovalRequest.Status.APPROVED,
    ).exists()


@dataclass(frozen=True)
class Person:
    """Who someone is, as far as approvals care, for one service."""

    username: str
    owner_roles: list[str]
    teams: list[str]
    platform_admin: bool


def person(*, user: User, owner_id: int) -> Person:
    from teams.models import Membership

    rows = list(Membership.objects.filter(user=user).values_list("team_id", "team__slug", "role"))
    return Person(
        username=user.get_username(),
        owner_roles=sorted(role for team_id, _, role in rows if team_id == owner_id),
        teams=sorted(slug for _, slug, _ in rows),
        platform_admin=bool(user.is_staff),
    )


def eligible_for(requirements: list[dict[str, Any]], who: Person) -> list[int]:
    """Indexes of the requirements `who` may approve (the requester is excluded by the caller)."""
    found = []
    for index, requirement in enumerate(requirements):
        kind = requirement.get("approvers")
        if (
            (kind == Approvers.OWNER_LEADS and "lead" in who.owner_roles)
            or (kind == Approvers.TEAM and requirement.get("team") in who.teams)
            or (kind == Approvers.PLATFORM_ADMINS and who.platform_admin)
        ):
            found.append(index)
    return found


def _locked(request_id: int) -> tuple[Deployment, ApprovalRequest]:
    """Lock the deployment, then the request: the one order every writer here uses."""
    deployment_id = ApprovalRequest.objects.filter(pk=request_id).values_list("deployment_id", flat=True).first()
    if deployment_id is None:
        raise ApprovalRequest.DoesNotExist(f"No approval request #{request_id}.")
    deployment = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("service", "release", "environment", "requested_by")
        .get(pk=deployment_id)
    )
    request = ApprovalRequest.objects.select_for_update().get(pk=request_id)
    return deployment, request


def _still_open(deployment: Deployment, request: ApprovalRequest) -> None:
    if not request.is_open:
        word = request.get_status_display().lower()
        raise Conflict(f"The approval request for deployment #{deployment.pk} is already {word}; nothing to answer.")
    if deployment.state != State.AWAITING_APPROVAL:
        raise Conflict(
            f"Deployment #{deployment.pk} is {deployment.get_state_display().lower()}; it awaits no approval."
        )
    if request.expires_at <= timezone.now():
        raise Conflict(f"The approval request for deployment #{deployment.pk} has expired; it is being cancelled.")


def _answerer(deployment: Deployment, request: ApprovalRequest, user: User | AnonymousUser) -> tuple[Person, list[int]]:
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("Sign in to answer an approval request.")
    if deployment.requested_by_id == user.pk:
        raise PermissionDenied("You asked for this deployment: someone else must approve or reject it.")
    who = person(user=user, owner_id=deployment.service.owner_id)
    counts_for = eligible_for(request.requirements, who)
    if not counts_for:
        needs = "; ".join(approvers_text(r) for r in request.requirements)
        raise PermissionDenied(f"You are not among the approvers of this request: it needs {needs}.")
    if request.answers.filter(user=user).exists():
        raise Conflict("You have already answered this approval request.")
    return who, counts_for


def _record(
    request: ApprovalRequest, user: User, who: Person, counts_for: list[int], verdict: str, reason: str
) -> Approval:
    return Approval.objects.create(
        request=request,
        user=user,
        username=who.username,
        verdict=verdict,
        reason=reason,
        owner_roles=who.owner_roles,
        teams=who.teams,
        platform_admin=who.platform_admin,
        counts_for=counts_for,
    )


def answer_role(answer: Approval) -> str:
    """As what an approval counted: “lead of the owning team”, “platform admin”, “member of release-managers”."""
    who = Person(username=answer.username, owner_roles=[], teams=[], platform_admin=answer.platform_admin)
    return _as(who, answer.request.requirements, list(answer.counts_for))


def _as(who: Person, requirements: list[dict[str, Any]], counts_for: list[int]) -> str:
    labels = {
        Approvers.OWNER_LEADS: "lead of the owning team",
        Approvers.PLATFORM_ADMINS: "platform admin",
    }
    said = []
    for index in counts_for:
        requirement = requirements[index]
        label = labels.get(requirement["approvers"]) or f"member of {requirement['team']}"
        if label not in said:
            said.append(label)
    return ", ".join(said)


@transaction.atomic
def approval_approve(*, request_id: int, user: User | AnonymousUser) -> ApprovalRequest:
    """Approve; once every requirement has its count, the deployment goes back to its policy step and on."""
    deployment, request = _locked(request_id)
    _still_open(deployment, request)
    who, counts_for = _answerer(deployment, request, user)
    assert isinstance(user, User)
    answer = _record(request, user, who, counts_for, Approval.Verdict.APPROVE, "")
    rows = request.progress()
    audit.event_record(
        actor=user,
        action="approval.approved",
        target=request,
        after={
            "deployment": deployment.pk,
            "by": who.username,
            "as": _as(who, request.requirements, counts_for),
            "counts_for": counts_for,
            "kind": request.kind,
        },
        service_id=deployment.service_id,
    )
    approved_by = sorted({name for row in rows for name in row["by"]})
    if all(row["met"] for row in rows):
        request.status, request.closed_at = ApprovalRequest.Status.APPROVED, timezone.now()
        request.closed_reason = f"Approved by {', '.join(approved_by)}."
        request.save(update_fields=["status", "closed_at", "closed_reason"])
        what = "Break-glass approved" if request.kind == ApprovalRequest.Kind.BREAK_GLASS else "Approved"
        machine.transition(
            deployment,
            State.POLICY_CHECK,
            message=f"{what} by {', '.join(approved_by)}; the deployment goes on.",
            actor=user,
            data={"approval_request": request.pk},
            # The wait for people does not count against the rollout's own deadline.
            deadline=timezone.now() + timedelta(seconds=settings.DEPLOY_DEADLINE_SECONDS),
        )
        engine.enqueue(deployment.pk, deployment.version)
    else:
        given = sum(min(len(row["by"]), int(row["count"])) for row in rows)
        wanted = sum(int(row["count"]) for row in rows)
        machine.note(
            deployment,
            f"Approved by {who.username} ({_as(who, request.requirements, counts_for)}): {given} of {wanted} "
            "approvals, waiting for more.",
            data={"approval_request": request.pk, "approval": answer.pk},
        )
    return request


@transaction.atomic
def approval_reject(*, request_id: int, user: User | AnonymousUser, reason: str) -> ApprovalRequest:
    """Reject with a reason: the deployment is cancelled (nothing was touched)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why you reject it: the requester reads this on the timeline."]})
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise ValidationError({"reason": [f"Keep the reason under {MAX_REASON} characters of plain text."]})
    deployment, request = _locked(request_id)
    _still_open(deployment, request)
    who, counts_for = _answerer(deployment, request, user)
    assert isinstance(user, User)
    _record(request, user, who, counts_for, Approval.Verdict.REJECT, reason)
    message = f"Rejected by {who.username}: {reason}"
    request.status, request.closed_at, request.closed_reason = ApprovalRequest.Status.REJECTED, timezone.now(), message
    request.save(update_fields=["status", "closed_at", "closed_reason"])
    audit.event_record(
        actor=user,
        action="approval.rejected",
        target=request,
        after={"deployment": deployment.pk, "by": who.username, "reason": reason, "kind": request.kind},
        service_id=deployment.service_id,
    )
    machine.transition(
        deployment,
        State.CANCELLED,
        message=f"{message}. Nothing was deployed.",
        actor=user,
        level=DeploymentEvent.Level.ERROR,
        failure_reason=message,
        data={"approval_request": request.pk},
    )
    return request


def requests_close(*, deployment: Deployment, reason: str) -> None:
    """Close the open requests of a deployment that ended while it waited; the caller holds its lock."""
    for request in ApprovalRequest.objects.select_for_update().filter(
        deployment=deployment, status=ApprovalRequest.Status.OPEN
    ):
        request.status, request.closed_at, request.closed_reason = (
            ApprovalRequest.Status.CANCELLED,
            timezone.now(),
            reason,
        )
        request.save(update_fields=["status", "closed_at", "closed_reason"])


def requests_expire() -> int:
    """End every open request past its time: its deployment is cancelled with a timeline entry saying why."""
    now = timezone.now()
    expired = 0
    for request_id in ApprovalRequest.objects.filter(
        status=ApprovalRequest.Status.OPEN, expires_at__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            deployment, request = _locked(request_id)
            if not request.is_open or request.expires_at > timezone.now():
                continue  # answered or cancelled while we looked
            rows = request.progress()
            given = sum(len(row["by"]) for row in rows)
            wanted = sum(int(row["count"]) for row in rows)
            message = (
                f"The approval request expired after {_hours(request.expires_at - request.created_at)} with {given} "
                f"of {wanted} approvals; nothing was deployed. Deploy again to ask anew."
            )
            request.status, request.closed_at, request.closed_reason = ApprovalRequest.Status.EXPIRED, now, message
            request.save(update_fields=["status", "closed_at", "closed_reason"])
            audit.event_record(
                actor=None,
                action="approval.expired",
                target=request,
                after={"deployment": deployment.pk, "approvals": given, "needed": wanted},
                service_id=deployment.service_id,
            )
            if deployment.state == State.AWAITING_APPROVAL:
                machine.transition(
                    deployment,
                    State.CANCELLED,
                    message=message,
                    level=DeploymentEvent.Level.ERROR,
                    failure_reason=message,
                    data={"approval_request": request.pk},
                )
            expired += 1
    if expired:
        log.info("approval requests expired", expired=expired)
    return expired


def approvers_of(request: ApprovalRequest) -> list[User]:
    """The people who may answer a request now (for its email): eligible for a requirement, not the requester."""
    from teams.models import Membership

    service = request.deployment.service
    users: dict[int, User] = {}
    for requirement in request.requirements:
        kind = requirement.get("approvers")
        if kind == Approvers.PLATFORM_ADMINS:
            found = User.objects.filter(is_staff=True, is_active=True)
        elif kind == Approvers.OWNER_LEADS:
            found = User.objects.filter(
                is_active=True, memberships__team_id=service.owner_id, memberships__role=Membership.Role.LEAD
            )
        else:
            found = User.objects.filter(is_active=True, memberships__team__slug=requirement.get("team"))
        users.update({user.pk: user for user in found})
    users.pop(request.deployment.requested_by_id or 0, None)
    return sorted(users.values(), key=lambda user: user.username)
