"""Retiring a service on the deployment machinery: a request, checks, an approval, then short versioned steps.

requested → approved → stopping → archiving → revoking → done; a step that keeps failing leaves the workflow
`failed` at that step, and a person resumes it there. Until the first destructive step (stopping) it can be
cancelled. Like a deployment step, each step locks the row, checks its version, does one idempotent piece of work
outside the transaction, and writes the transition with its timeline and audit events; the next step is
enqueued on commit and the sweeper rings again for anything due or abandoned by a dead worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import get_groups_with_perms, get_users_with_perms, remove_perm

from audit import services as audit
from catalog.models import Service
from catalog.permissions import user_can
from deployments import runtimes, signals
from deployments.models import (
    ACTIVE_STATES,
    DECOMMISSION_CLOSED,
    Decommission,
    DecommissionEvent,
    Deployment,
    DeployTarget,
    Placement,
)
from deployments.models import DecommissionState as D
from portal.errors import Conflict
from scaffolder import publishers
from scaffolder.models import GoldenPathUpdate
from teams.models import Membership

log = structlog.get_logger(__name__)
RETRY_SECONDS = 2.0

TRANSITIONS: Mapping[str, frozenset[str]] = {
    D.REQUESTED: frozenset({D.APPROVED, D.CANCELLED}),
    D.APPROVED: frozenset({D.STOPPING, D.FAILED, D.CANCELLED}),
    D.STOPPING: frozenset({D.ARCHIVING, D.FAILED}),
    D.ARCHIVING: frozenset({D.REVOKING, D.FAILED}),
    D.REVOKING: frozenset({D.DONE, D.FAILED}),
    # Resuming goes back to the step that failed; cancelling is allowed only if nothing destructive ran.
    D.FAILED: frozenset({D.APPROVED, D.STOPPING, D.ARCHIVING, D.REVOKING, D.CANCELLED}),
    D.DONE: frozenset(),
    D.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    pass


# Checks


@dataclass
class Checks:
    """What stands in the way of retiring a service now."""

    dependents: list[Service] = field(default_factory=list)
    in_flight: list[Deployment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.dependents and not self.in_flight

    @property
    def problems(self) -> list[str]:
        problems = []
        if self.dependents:
            names = ", ".join(service.slug for service in self.dependents)
            problems.append(
                f"{len(self.dependents)} service{'s' if len(self.dependents) != 1 else ''} still depend on it: "
                f"{names}. Remove those dependencies (or retire those services) first."
            )
        if self.in_flight:
            listed = ", ".join(f"#{d.pk} ({d.release.version} to {d.environment.slug})" for d in self.in_flight)
            problems.append(f"Deployments are in flight: {listed}. Wait for them to finish or abort them.")
        return problems


def checks(service: Service) -> Checks:
    dependents = (
        Service.objects.filter(dependencies__target=service)
        .exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
        .distinct()
        .order_by("slug")
    )
    in_flight = (
        Deployment.objects.filter(service=service, state__in=ACTIVE_STATES)
        .select_related("release", "environment")
        .order_by("pk")
    )
    return Checks(dependents=list(dependents), in_flight=list(in_flight))


def open_decommission(service: Service) -> Decommission | None:
    return Decommission.objects.filter(service=service).exclude(state__in=DECOMMISSION_CLOSED).first()


# Who may do what


def can_request(user: User | AnonymousUser, service: Service) -> bool:
    return user_can(user, "catalog.decommission_service", service)


def can_approve(user: User | AnonymousUser, decommission: Decommission) -> bool:
    """A lead of the owning team or a platform admin; nobody approves their own request but an admin."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    if decommission.requested_by_id == user.pk:
        return False
    return Membership.objects.filter(
        team_id=decommission.service.owner_id, user_id=user.pk, role=Membership.Role.LEAD
    ).exists()


def approver_role(user: User, decommission: Decommission) -> str:
    """What made `user` able to approve, in words: "a lead of Payments" or "a platform admin"."""
    lead = Membership.objects.filter(
        team_id=decommission.service.owner_id, user_id=user.pk, role=Membership.Role.LEAD
    ).exists()
    if lead:
        return f"a lead of {decommission.service.owner}"
    return "a platform admin" if user.is_staff else "no longer a lead or an admin"


def can_operate(user: User | AnonymousUser, decommission: Decommission) -> bool:
    """Cancel or resume: the owners (with the decommission permission, until it is revoked), leads and admins."""
    return user_can(user, "catalog.decommission_service", decommission.service) or can_approve(user, decommission)


# Timeline and transitions


def note(decommission: Decommission, message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> None:
    DecommissionEvent.objects.create(
        decommission=decommission, step=decommission.state, level=level, message=message, data=data or {}
    )


def transition(
    decommission: Decommission,
    target: str,
    *,
    message: str,
    actor: User | AnonymousUser | None = None,
    level: str = "info",
    data: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Move a decommission (locked by the caller) to `target`, with one timeline event and one audit event."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Decommission transitions must run inside the transaction that locked the row.")
    source = decommission.state
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(f"A decommission cannot go from {source} to {target}.")
    decommission.state = target
    decommission.version += 1
    decommission.attempts = 0
    decommission.lease_until = None
    if target in DECOMMISSION_CLOSED:
        decommission.finished_at = timezone.now()
        decommission.next_run_at = None
    for name, value in changes.items():
        setattr(decommission, name, value)
    decommission.save()
    DecommissionEvent.objects.create(
        decommission=decommission, step=target, from_state=source, level=level, message=message, data=data or {}
    )
    audit.event_record(
        actor=actor,
        action=f"decommission.{target}",
        target=decommission,
        before={"state": source},
        after={"state": target, "message": message[:500]},
        service_id=decommission.service_id,
    )


def _lifecycle_set(service: Service, lifecycle: str, *, actor: User | AnonymousUser | None) -> None:
    before = service.lifecycle
    if before == lifecycle:
        return
    service.lifecycle = lifecycle
    service.save(update_fields=["lifecycle", "updated_at"])  # the save signal invalidates cached catalog pages
    audit.event_record(
        actor=actor,
        action="service.updated",
        target=service,
        before={"lifecycle": before},
        after={"lifecycle": lifecycle},
        service_id=service.pk,
    )


def enqueue(decommission: Decommission, *, delay: float = 0.0) -> None:
    from deployments import tasks

    pk, version = decommission.pk, decommission.version
    countdown = min(max(delay, 0.0), 60.0) or None
    transaction.on_commit(lambda: tasks.decommission_step.apply_async((pk, version), countdown=countdown))


# What people do


def decommission_request(*, service: Service, user: User, reason: str, planned_for: date) -> Decommission:
    """Record an owner's request with its reason and planned date; refused while something still needs the service."""
    if not can_request(user, service):
        raise PermissionDenied(
            f"Only {service.owner} (the owners of {service.slug}) and platform admins may retire it."
        )
    errors: dict[str, list[str]] = {}
    reason = reason.strip()
    if len(reason) < 10:
        errors["reason"] = ["Say why the service is being retired (at least 10 characters): it stays on the record."]
    if planned_for < timezone.localdate():
        errors["planned_for"] = ["The planned date cannot be in the past."]
    if service.lifecycle == Service.Lifecycle.DECOMMISSIONED:
        errors["service"] = [f"{service.slug} is already decommissioned."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = Service.objects.select_for_update().get(pk=service.pk)
        existing = open_decommission(locked)
        if existing:
            raise _conflict(existing)
        found = checks(locked)
        if not found.ok:
            raise ValidationError({"service": found.problems})
        decommission = Decommission(
            service=locked, reason=reason, planned_for=planned_for, requested_by=user, previous_lifecycle=""
        )
        try:
            with transaction.atomic():
                decommission.save()
        except IntegrityError:
            existing = open_decommission(locked)
            if existing is None:
                raise
            raise _conflict(existing) from None
        note(
            decommission,
            f"{user} asked to retire {service.slug} on {planned_for:%d %b %Y}: {reason}",
            data={"checks": "passed"},
        )
        note(decommission, "Checks passed: nothing depends on it and no deployment is in flight.")
        audit.event_record(
            actor=user,
            action="decommission.requested",
            target=decommission,
            after={"reason": reason[:500], "planned_for": planned_for.isoformat()},
            service_id=service.pk,
        )
    return decommission


def _conflict(existing: Decommission) -> Conflict:
    return Conflict(
        f"{existing.service.slug} already has decommission #{existing.pk} ({existing.get_state_display().lower()}).",
        existing_url=existing.get_absolute_url(),
    )


def _locked(decommission: Decommission) -> Decommission:
    return Decommission.objects.select_for_update(of=("self",)).select_related("service").get(pk=decommission.pk)


def decommission_approve(*, decommission: Decommission, user: User) -> Decommission:
    """A lead's approval: the checks run again, the service is marked decommissioning, the work is scheduled."""
    if not can_approve(user, decommission):
        if decommission.requested_by_id == user.pk and not user.is_staff:
            raise PermissionDenied("You asked for this decommission; another lead of the team or an admin approves.")
        raise PermissionDenied(f"Only a lead of {decommission.service.owner} or a platform admin may approve this.")
    with transaction.atomic():
        locked = _locked(decommission)
        if locked.state != D.REQUESTED:
            raise Conflict(f"Decommission #{locked.pk} is {locked.get_state_display().lower()}, not awaiting approval.")
        found = checks(locked.service)
        if not found.ok:
            note(locked, f"{user} could not approve: " + " ".join(found.problems), level="warning")
        else:
            _approve(locked, user)
    if not found.ok:
        raise ValidationError({"service": found.problems})  # after the commit, so the timeline keeps the refusal
    return locked


def _approve(locked: Decommission, user: User) -> None:
    """Schedule the work for the planned day (or now) and mark the service as on its way out."""
    start = max(timezone.now(), timezone.make_aware(datetime.combine(locked.planned_for, time.min)))
    when = "now" if start <= timezone.now() else f"on {locked.planned_for:%d %b %Y}"
    previous = locked.service.lifecycle
    role = approver_role(user, locked)
    transition(
        locked,
        D.APPROVED,
        actor=user,
        message=f"Approved by {user}, {role}; the service stops {when}.",
        data={"approved_as": role},
        approved_by=user,
        approved_at=timezone.now(),
        previous_lifecycle=previous,
        next_run_at=start,
    )
    _lifecycle_set(locked.service, Service.Lifecycle.DECOMMISSIONING, actor=user)
    enqueue(locked, delay=(start - timezone.now()).total_seconds())


def decommission_cancel(*, decommission: Decommission, user: User) -> Decommission:
    """Withdraw the request; only before anything was stopped, archived or revoked."""
    if not can_operate(user, decommission):
        raise PermissionDenied(f"Only {decommission.service.owner} and platform admins may cancel this.")
    with transaction.atomic():
        locked = _locked(decommission)
        if not locked.is_open or locked.started:
            raise Conflict(
                f"Decommission #{locked.pk} can no longer be cancelled: "
                + ("it has finished." if not locked.is_open else "environments have already been stopped.")
            )
        transition(locked, D.CANCELLED, actor=user, message=f"Cancelled by {user}.")
        if locked.previous_lifecycle:
            _lifecycle_set(locked.service, locked.previous_lifecycle, actor=user)
    return locked


def decommission_resume(*, decommission: Decommission, user: User) -> Decommission:
    """Run the failed step again, from where it stopped (every step skips what it already did)."""
    if not can_operate(user, decommission):
        raise PermissionDenied(f"Only {decommission.service.owner} and platform admins may resume this.")
    with transaction.atomic():
        locked = _locked(decommission)
        if locked.state != D.FAILED:
            raise Conflict(
                f"Decommission #{locked.pk} is {locked.get_state_display().lower()}; only a failed one resumes."
            )
        step = locked.failed_step or D.APPROVED
        transition(
            locked,
            step,
            actor=user,
            message=f"Resumed by {user} at {D(step).label.lower()}.",
            failed_step="",
            failure_reason="",
            next_run_at=None,
        )
        enqueue(locked)
    return locked


# What workers do


def run_step(decommission_id: int, version: int) -> None:
    claimed = _claim(decommission_id, version)
    if claimed is None:
        return
    decommission, give_up = claimed
    if give_up:
        outcome = _failed(decommission, give_up)
    else:
        try:
            outcome = STEPS[decommission.state](decommission)
        except Exception as error:
            log.exception("decommission step crashed", decommission=decommission.pk, state=decommission.state)
            outcome = _crashed(decommission, f"{type(error).__name__}: {error}")
    _finish(decommission, outcome)


@dataclass
class Outcome:
    target: str | None = None
    message: str = ""
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level, message)
    # What the step did, written under the step that did it, before the transition that announces the next one:
    # a transition's event carries the state it enters, so a result written there would sit one step late.
    done: str = ""
    done_data: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    lifecycle: str = ""  # the service's lifecycle after this step, if it changes


def _claim(decommission_id: int, version: int) -> tuple[Decommission, str] | None:
    now = timezone.now()
    with transaction.atomic():
        decommission = (
            Decommission.objects.select_for_update(of=("self",))
            .select_related("service")
            .filter(pk=decommission_id)
            .first()
        )
        if decommission is None or decommission.version != version or decommission.state not in STEPS:
            return None
        if decommission.lease_until and decommission.lease_until > now:
            return None
        if decommission.next_run_at and decommission.next_run_at > now + timedelta(milliseconds=200):
            return None
        decommission.version += 1
        decommission.attempts += 1
        decommission.lease_until = now + timedelta(seconds=settings.DEPLOY_STEP_LEASE_SECONDS)
        decommission.save(update_fields=["version", "attempts", "lease_until", "updated_at"])
    limit = settings.DEPLOY_MAX_STEP_ATTEMPTS
    if decommission.attempts > limit:
        return decommission, f"The step {decommission.get_state_display().lower()} failed {limit} times."
    return decommission, ""


def _failed(decommission: Decommission, reason: str) -> Outcome:
    return Outcome(
        target=D.FAILED,
        message=f"{reason} Fix the cause, then resume: the step starts again where it stopped.",
        level="error",
        changes={"failed_step": decommission.state, "failure_reason": reason},
    )


def _crashed(decommission: Decommission, error: str) -> Outcome:
    if decommission.attempts >= settings.DEPLOY_MAX_STEP_ATTEMPTS:
        return _failed(decommission, f"{decommission.get_state_display()} failed: {error}.")
    return Outcome(
        notes=[("warning", f"{decommission.get_state_display()} failed ({error}); trying again.")],
        delay=RETRY_SECONDS * decommission.attempts,
    )


def _finish(claimed: Decommission, outcome: Outcome) -> None:
    with transaction.atomic():
        decommission = _locked(claimed)
        if decommission.version != claimed.version:
            return
        for level, message in outcome.notes:
            note(decommission, message, level=level)
        if outcome.done:
            note(decommission, outcome.done, data=outcome.done_data)
        next_run = timezone.now() + timedelta(seconds=outcome.delay) if outcome.delay else None
        changes = {"progress": claimed.progress, **outcome.changes}
        if outcome.target:
            transition(
                decommission,
                outcome.target,
                message=outcome.message,
                level=outcome.level,
                data=outcome.data,
                next_run_at=next_run,
                **changes,
            )
        else:
            for name, value in changes.items():
                setattr(decommission, name, value)
            decommission.version += 1
            decommission.lease_until = None
            decommission.next_run_at = next_run
            decommission.save()
        if outcome.lifecycle:
            _lifecycle_set(decommission.service, outcome.lifecycle, actor=None)
        if decommission.state in STEPS:
            enqueue(decommission, delay=outcome.delay)


def _step_checks(decommission: Decommission) -> Outcome:
    """The checks once more: something may have come to depend on the service since the approval."""
    found = checks(decommission.service)
    if not found.ok:
        reason = "Blocked: " + " ".join(found.problems)
        return Outcome(
            target=D.FAILED,
            message=reason + " Resume once that is resolved, or cancel.",
            level="error",
            changes={"failed_step": D.APPROVED, "failure_reason": reason},
        )
    return Outcome(target=D.STOPPING, done="Checks passed again.", message="Stopping it in every environment.")


def _step_stop(decommission: Decommission) -> Outcome:
    """Stop the service in each environment through its runtime; one that was stopped is not asked again."""
    service = decommission.service
    targets = {
        target.environment.slug: target.runtime
        for target in DeployTarget.objects.filter(service=service).select_related("environment")
    }
    for placement in Placement.objects.filter(service=service).select_related("environment"):
        targets.setdefault(placement.environment.slug, "")
    stopped: list[str] = decommission.progress.setdefault("stopped", [])
    for environment, runtime in sorted(targets.items()):
        if environment in stopped:
            continue
        if runtime:
            runtimes.get(runtime).stop_all(service=service.slug, environment=environment)
        stopped.append(environment)  # kept even if a later environment fails, so a retry skips this one
    Placement.objects.filter(service=service).delete()
    where = ", ".join(stopped) if stopped else "no environment (it never ran anywhere)"
    said = [str(answer) for _, answer in signals.service_stopped.send(sender=Service, service=service) if answer]
    return Outcome(
        target=D.ARCHIVING,
        done=" ".join([f"Stopped in {where}.", *said]),
        done_data={"stopped": stopped},
        message="Archiving its repository.",
    )


def _step_archive(decommission: Decommission) -> Outcome:
    service = decommission.service
    if publishers.local_exists(name=service.slug):
        publishers.local_archive(name=service.slug, reason=f"{service.slug} was decommissioned.")
        message = "Repository archived: it can still be cloned and read, and refuses pushes."
    elif service.repository_url:
        message = (
            f"The repository lives outside Runway ({service.repository_url}); archive it there. Nothing to do here."
        )
    else:
        message = "The service has no repository to archive."
    # An update from the golden path can no longer be merged into an archived repository.
    dropped = GoldenPathUpdate.objects.filter(service=service, status__in=GoldenPathUpdate.OPEN).update(
        status=GoldenPathUpdate.Status.DISCARDED
    )
    if dropped:
        message += " Its open golden path update was discarded."
    return Outcome(target=D.REVOKING, done=message, message="Revoking every permission on it.")


def _step_revoke(decommission: Decommission) -> Outcome:
    """Take back every object permission on the service: it becomes a read-only record."""
    service = decommission.service
    revoked: list[str] = []
    groups: dict[Any, list[str]] = get_groups_with_perms(service, attach_perms=True)  # type: ignore[assignment]
    users: dict[Any, list[str]] = get_users_with_perms(service, attach_perms=True, with_group_users=False)  # type: ignore[assignment]
    for group, perms in groups.items():
        for perm in perms:
            remove_perm(perm, group, service)
            revoked.append(f"{group.name}: {perm}")
    for user, perms in users.items():
        for perm in perms:
            remove_perm(perm, user, service)
            revoked.append(f"{user.get_username()}: {perm}")
    return Outcome(
        target=D.DONE,
        done=f"{len(revoked)} permission{'s' if len(revoked) != 1 else ''} revoked.",
        done_data={"revoked": revoked},
        message=f"{service.slug} is decommissioned; its page stays as a read-only record.",
        lifecycle=Service.Lifecycle.DECOMMISSIONED,
    )


STEPS: dict[str, Callable[[Decommission], Outcome]] = {
    D.APPROVED: _step_checks,
    D.STOPPING: _step_stop,
    D.ARCHIVING: _step_archive,
    D.REVOKING: _step_revoke,
}


def decommissions_sweep() -> int:
    """Ring again for running steps idle or overdue for the sweeper's grace and not held by a live worker, as
    `deployments_sweep` does (a step rings its successor itself; a wait for the planned date ends here)."""
    from deployments import tasks
    from deployments.services import SWEEP_GRACE_SECONDS

    now = timezone.now()
    grace = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    due = Decommission.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        Q(next_run_at__isnull=True, updated_at__lt=grace) | Q(next_run_at__lt=grace),
        state__in=list(STEPS),
        approved_at__isnull=False,
    ).values_list("pk", "version")
    count = 0
    for pk, version in due:
        tasks.decommission_step.delay(pk, version)
        count += 1
    return count
