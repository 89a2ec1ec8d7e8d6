"""Writes for deployments: targets, releases, deployment requests, manual controls, reported deploys, the sweeper.

Every state change goes through `deployments.machine`; everything a person asks for is checked here, once, for
the pages and the API alike.
"""

import re
import subprocess
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import services as audit
from catalog.models import Service
from catalog.permissions import user_can
from deployments import engine, machine, policies, signals, strategies
from deployments.models import (
    ACTIVE_STATES,
    DECOMMISSION_CLOSED,
    WAITING_STATES,
    Decommission,
    Deployment,
    DeploymentEvent,
    DeployTarget,
    Environment,
    Placement,
    Release,
    RuntimeKind,
    State,
    Strategy,
)
from portal.errors import Conflict
from scaffolder import publishers

log = structlog.get_logger(__name__)

ENVIRONMENT_FIELDS = ["name", "slug", "order", "protected", "description"]
TARGET_FIELDS = [
    "runtime",
    "strategy",
    "replicas",
    "canary_steps",
    "bake_seconds",
    "max_error_rate",
    "max_p95_ms",
    "min_probe_success",
    "webhook_url",
]
REF_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._/+-]{0,99}\Z")
FINISHED_SERVICE = (Service.Lifecycle.DECOMMISSIONING, Service.Lifecycle.DECOMMISSIONED)


@transaction.atomic
def environment_create(*, created_by: User | None, **fields: Any) -> Environment:
    environment = Environment(**fields)
    environment.full_clean()
    environment.save()
    audit.event_record(
        actor=created_by,
        action="environment.created",
        target=environment,
        after=audit.snapshot(environment, fields=ENVIRONMENT_FIELDS),
    )
    return environment


@transaction.atomic
def environment_update(*, environment: Environment, updated_by: User, **fields: Any) -> Environment:
    before = audit.snapshot(environment, fields=ENVIRONMENT_FIELDS)
    for name, value in fields.items():
        setattr(environment, name, value)
    environment.full_clean()
    environment.save()
    audit.event_record(
        actor=updated_by,
        action="environment.updated",
        target=environment,
        before=before,
        after=audit.snapshot(environment, fields=ENVIRONMENT_FIELDS),
    )
    return environment


def _require(user: User | AnonymousUser, perm: str, service: Service, action: str) -> None:
    if not user_can(user, perm, service):
        raise PermissionDenied(f"Only {service.owner} (the owners of {service.slug}) and platform admins may {action}.")


@transaction.atomic
def target_save(*, service: Service, environment: Environment, user: User, **fields: Any) -> DeployTarget:
    """Create or change how `service` deploys to `environment`; owners and staff only."""
    _require(user, "catalog.deploy_service", service, "change where it deploys")
    target = DeployTarget.objects.filter(service=service, environment=environment).first()
    before = audit.snapshot(target, fields=TARGET_FIELDS) if target else None
    target = target or DeployTarget(service=service, environment=environment)
    for name, value in fields.items():
        setattr(target, name, value)
    _target_check(target)
    target.save()
    audit.event_record(
        actor=user,
        action="deploy_target.saved",
        target=target,
        before=before,
        after=audit.snapshot(target, fields=TARGET_FIELDS),
        service_id=service.pk,
    )
    return target


def _target_check(target: DeployTarget) -> None:
    target.full_clean(exclude=["service", "environment"], validate_unique=False)
    errors: dict[str, list[str]] = {}
    steps = target.canary_steps
    if not isinstance(steps, list) or not all(isinstance(s, int) and 0 < s < 100 for s in steps):
        errors["canary_steps"] = ["Canary steps are whole percentages between 1 and 99, such as [10, 25, 50]."]
    if target.runtime == RuntimeKind.WEBHOOK and not (target.webhook_url and target.webhook_secret):
        errors["webhook_url"] = ["A webhook runtime needs the URL of the CD system and a shared secret."]
    if errors:
        raise ValidationError(errors)


def targets_default(*, service: Service) -> list[DeployTarget]:
    """Deploy targets for a new service from a golden path: rolling outside production, canary in it."""
    targets = []
    for environment in Environment.objects.all():
        target, _ = DeployTarget.objects.get_or_create(
            service=service,
            environment=environment,
            defaults={
                "runtime": RuntimeKind.LOCAL,
                "strategy": Strategy.CANARY if environment.protected else Strategy.ROLLING,
                "replicas": 2,
                "bake_seconds": 10 if environment.protected else 3,
            },
        )
        targets.append(target)
    return targets


# Releases


class GitError(Exception):
    pass


def _git(repository: str, *args: str) -> str:
    result = subprocess.run(
        ["git", "--git-dir", repository, *args], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise GitError(result.stderr.strip()[:300])
    return result.stdout.strip()


def repository_refs(*, service: Service, limit: int = 20) -> dict[str, list[dict[str, str]]]:
    """Tags and recent commits of the service's repository, newest first, for the deploy form."""
    if not publishers.local_exists(name=service.slug):
        return {"tags": [], "commits": []}
    repository = publishers.local_path(name=service.slug)
    fmt = "%(refname:short)\x1f%(objectname)\x1f%(creatordate:iso-strict)"
    tags = [
        dict(zip(("name", "sha", "date"), line.split("\x1f"), strict=False))
        for line in _git(
            repository, "for-each-ref", "--sort=-creatordate", f"--count={limit}", f"--format={fmt}", "refs/tags"
        ).splitlines()
        if line
    ]
    commits = [
        dict(zip(("sha", "date", "subject"), line.split("\x1f"), strict=False))
        for line in _git(repository, "log", f"-{limit}", "--format=%H%x1f%cI%x1f%s", "--all", "--").splitlines()
        if line
    ]
    return {"tags": tags, "commits": commits}


def ref_resolve(*, service: Service, ref: str) -> tuple[str, str, str]:
    """(version, commit sha, commit time) for a tag, branch or commit of the service's repository, changing nothing:
    a tag is its own version, anything else the commit's first 12 characters."""
    ref = ref.strip()
    if not REF_PATTERN.match(ref) or ".." in ref:
        raise ValidationError({"ref": [f"{ref!r} is not a tag, branch or commit name."]})
    if not publishers.local_exists(name=service.slug):
        raise ValidationError(
            {"ref": [f"{service.slug} has no repository in Runway; report deploys from your CD system instead."]}
        )
    repository = publishers.local_path(name=service.slug)
    try:
        sha = _git(repository, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        committed = _git(repository, "show", "-s", "--format=%cI", sha, "--")
    except GitError:
        raise ValidationError(
            {"ref": [f"No commit, tag or branch called {ref} in {service.slug}'s repository."]}
        ) from None
    is_tag = bool(_git(repository, "tag", "--list", "--", ref))
    return (ref if is_tag else sha[:12]), sha, committed


def release_for_ref(*, service: Service, ref: str, user: User | None) -> Release:
    """The release for a tag, branch or commit of the service's repository, made on first use."""
    version, sha, committed = ref_resolve(service=service, ref=ref)
    existing = Release.objects.filter(service=service, version=version).first()
    if existing:
        if existing.commit_sha != sha:
            raise ValidationError(
                {"ref": [f"Release {version} already points at {existing.short_sha}, not {sha[:10]}."]}
            )
        return existing
    release = Release(service=service, version=version, commit_sha=sha, committed_at=parse_datetime(committed))
    release.created_by = user
    release.full_clean(exclude=["service"])
    try:
        with transaction.atomic():
            release.save()
            signals.release_recorded.send(sender=Release, release=release, created=True, commits=None)
    except IntegrityError:
        return Release.objects.get(service=service, version=version)
    return release


def release_record(
    *,
    service: Service,
    version: str,
    commit_sha: str,
    committed_at: datetime | None,
    user: User | None,
    commits: list[dict[str, Any]] | None = None,
) -> Release:
    """A release named by a CD system (no repository in Runway): the version must keep pointing at one commit.
    `commits` (sha and committed_at each) are the change set the CD system reports with it, if any."""
    existing = Release.objects.filter(service=service, version=version).first()
    if existing:
        if existing.commit_sha != commit_sha:
            raise ValidationError(
                {"commit_sha": [f"Release {version} of {service.slug} is commit {existing.short_sha}, not this one."]}
            )
        signals.release_recorded.send(sender=Release, release=existing, created=False, commits=commits)
        return existing
    release = Release(
        service=service, version=version, commit_sha=commit_sha, committed_at=committed_at, created_by=user
    )
    release.full_clean(exclude=["service", "created_by"])
    release.save()
    signals.release_recorded.send(sender=Release, release=release, created=True, commits=commits)
    return release


# Deployments


def active_deployment(*, service: Service, environment: Environment) -> Deployment | None:
    return (
        Deployment.objects.filter(service=service, environment=environment, state__in=ACTIVE_STATES)
        .select_related("release")
        .first()
    )


def _conflict(existing: Deployment) -> Conflict:
    return Conflict(
        f"{existing.service.slug} already has deployment #{existing.pk} ({existing.release.version}, "
        f"{existing.get_state_display().lower()}) in {existing.environment}; wait for it or abort it first.",
        existing_url=existing.get_absolute_url(),
    )


def deployment_request(
    *,
    service: Service,
    environment: Environment,
    user: User,
    ref: str = "",
    release: Release | None = None,
    strategy: str = "",
    rollback_of: Deployment | None = None,
    break_glass_reason: str = "",
) -> Deployment:
    """Check everything that can be checked now, record the deployment as pending, and start it on commit. A
    break-glass deploy (with its reason) waits for a platform admin's approval before its policy step instead."""
    _require(user, "catalog.deploy_service", service, "deploy it")
    break_glass_reason = _break_glass_reason_check(break_glass_reason)
    if service.lifecycle in FINISHED_SERVICE:
        raise ValidationError({"service": [f"{service.slug} is {service.get_lifecycle_display().lower()}."]})
    if retiring := Decommission.objects.filter(service=service).exclude(state__in=DECOMMISSION_CLOSED).first():
        raise ValidationError(
            {"service": [f"{service.slug} is being decommissioned (#{retiring.pk}); it takes no new deployments."]}
        )
    target = DeployTarget.objects.filter(service=service, environment=environment).first()
    if target is None:
        raise ValidationError(
            {"environment": [f"{service.slug} is not set up to deploy to {environment}; add a deploy target first."]}
        )
    if strategy and strategy not in Strategy.values:
        raise ValidationError({"strategy": [f"Choose one of: {', '.join(Strategy.values)}."]})
    if release is None:
        if not ref:
            raise ValidationError({"ref": ["Choose a commit or tag to deploy."]})
        release = release_for_ref(service=service, ref=ref, user=user)
    elif release.service_id != service.pk:
        raise ValidationError({"release": [f"Release {release} is not a release of {service.slug}."]})
    strategy = strategy or target.strategy
    config = {
        "replicas": target.replicas,
        "bake_seconds": target.bake_seconds,
        "canary_steps": target.canary_steps,
        "max_error_rate": target.max_error_rate,
        "max_p95_ms": target.max_p95_ms,
        "min_probe_success": target.min_probe_success,
        "webhook_url": target.webhook_url,
    }
    plan = strategies.plan_for(
        strategy, replicas=target.replicas, canary_steps=target.canary_steps, bake_seconds=target.bake_seconds
    )
    with transaction.atomic():
        existing = active_deployment(service=service, environment=environment)
        if existing:
            raise _conflict(existing)
        placement = Placement.objects.filter(service=service, environment=environment).first()
        deployment = Deployment(
            release=release,
            service=service,
            environment=environment,
            strategy=strategy,
            runtime=target.runtime,
            requested_by=user,
            plan=plan,
            config=config,
            previous_release=placement.release if placement else None,
            rollback_of=rollback_of,
            deadline=timezone.now() + timedelta(seconds=settings.DEPLOY_DEADLINE_SECONDS),
            break_glass_reason=break_glass_reason,
        )
        try:
            with transaction.atomic():
                deployment.save()
        except IntegrityError:
            # Another request won the race between the check above and this insert; the index is the referee.
            existing = active_deployment(service=service, environment=environment)
            if existing is None:
                raise
            raise _conflict(existing) from None
        what = f"Rollback to {release.version}" if rollback_of else f"Deploy {release.version}"
        machine.note(
            deployment,
            f"{what} to {environment} with {deployment.get_strategy_display().lower()}, requested by {user}.",
            step=State.PENDING,
            data={"plan": plan},
        )
        audit.event_record(
            actor=user,
            action="deployment.requested",
            target=deployment,
            after={"release": release.version, "environment": environment.slug, "strategy": strategy},
            service_id=service.pk,
        )
        if break_glass_reason:
            _break_glass_park(deployment, user=user)
        else:
            engine.enqueue(deployment.pk, deployment.version)
    return deployment


def _break_glass_reason_check(reason: str) -> str:
    reason = (reason or "").strip()
    if "\x00" in reason or len(reason) > 2000:
        raise ValidationError({"reason": ["Keep the reason under 2,000 characters of plain text."]})
    return reason


def _break_glass_park(deployment: Deployment, *, user: User) -> None:
    """Flag a break-glass deploy loudly (timeline, audit) and park it for one platform admin's approval."""
    message = (
        f"BREAK-GLASS: {user} asks for an emergency deploy of {deployment.release.version} to "
        f"{deployment.environment}: {deployment.break_glass_reason} It waits for a platform admin's approval."
    )
    audit.event_record(
        actor=user,
        action="deployment.break_glass",
        target=deployment,
        after={"reason": deployment.break_glass_reason, "environment": deployment.environment.slug},
        service_id=deployment.service_id,
    )
    machine.transition(
        deployment,
        State.AWAITING_APPROVAL,
        message=message,
        actor=user,
        level=DeploymentEvent.Level.ERROR,
        data={"break_glass": True},
    )
    policies.break_glass_open(deployment)


def deployment_break_glass(*, deployment: Deployment, user: User, reason: str) -> Deployment:
    """Ask for an emergency deploy of a deployment's release to its environment (typically one a policy refused):
    a new deployment, flagged break-glass, that waits for one platform admin's approval before its policy step,
    where policies see `change.break_glass`."""
    if not _break_glass_reason_check(reason):
        raise ValidationError({"reason": ["Say why this cannot wait: the platform admin who approves reads it."]})
    return deployment_request(
        service=deployment.service,
        environment=deployment.environment,
        user=user,
        release=deployment.release,
        strategy=deployment.strategy,
        break_glass_reason=reason,
    )


def _locked(deployment: Deployment) -> Deployment:
    return Deployment.objects.select_for_update(of=("self",)).select_related("service", "release").get(pk=deployment.pk)


@transaction.atomic
def deployment_promote(*, deployment: Deployment, user: User) -> Deployment:
    """Skip the remaining steps and analyses: the release takes all traffic now."""
    _require(user, "catalog.deploy_service", deployment.service, "promote its deployments")
    locked = _locked(deployment)
    if locked.state not in machine.PROMOTABLE:
        raise Conflict(f"Deployment #{locked.pk} is {locked.get_state_display().lower()}; it cannot be promoted.")
    machine.transition(locked, State.PROMOTING, message=f"Promoted by {user} before its analyses finished.", actor=user)
    engine.enqueue(locked.pk, locked.version)
    return locked


@transaction.atomic
def deployment_abort(*, deployment: Deployment, user: User) -> Deployment:
    """Cancel a deployment that has not changed anything yet, or fail it and roll it back."""
    _require(user, "catalog.deploy_service", deployment.service, "abort its deployments")
    locked = _locked(deployment)
    if locked.state in machine.CANCELLABLE:
        waiting = locked.state == State.AWAITING_APPROVAL
        machine.transition(locked, State.CANCELLED, message=f"Cancelled by {user}.", actor=user, paused=False)
        if waiting:
            policies.approvals_close(locked, reason=f"The deployment was cancelled by {user}.")
    elif locked.state in machine.ABORTABLE:
        reason = f"Aborted by {user}."
        machine.transition(
            locked, State.FAILED, message=reason, actor=user, level="warning", failure_reason=reason, paused=False
        )
        engine.enqueue(locked.pk, locked.version)
    else:
        raise Conflict(f"Deployment #{locked.pk} is {locked.get_state_display().lower()}; there is nothing to abort.")
    return locked


@transaction.atomic
def deployment_pause(*, deployment: Deployment, user: User, paused: bool) -> Deployment:
    """Hold a deployment at its current step (the running step finishes), or let it go on."""
    _require(user, "catalog.deploy_service", deployment.service, "pause its deployments")
    locked = _locked(deployment)
    if locked.state not in ACTIVE_STATES:
        raise Conflict(f"Deployment #{locked.pk} has finished; it cannot be paused or resumed.")
    if locked.state in WAITING_STATES:
        raise Conflict(f"Deployment #{locked.pk} is waiting for approval; nothing runs until it is approved.")
    if locked.paused == paused:
        return locked
    locked.paused = paused
    locked.save(update_fields=["paused", "updated_at"])
    machine.note(locked, f"{'Paused' if paused else 'Resumed'} by {user}.", level="warning" if paused else "info")
    audit.event_record(
        actor=user,
        action="deployment.paused" if paused else "deployment.resumed",
        target=locked,
        service_id=locked.service_id,
    )
    if not paused:
        engine.enqueue(locked.pk, locked.version)
    return locked


def deployment_redeploy(*, deployment: Deployment, user: User) -> Deployment:
    """Deploy an earlier deployment's release again: a rollback done as a new, fully tracked deployment."""
    return deployment_request(
        service=deployment.service,
        environment=deployment.environment,
        user=user,
        release=deployment.release,
        rollback_of=deployment,
    )


SWEEP_GRACE_SECONDS = 10
SWEEP_RING_AGAIN_SECONDS = 30


def deployments_sweep() -> dict[str, int]:
    """Enqueue every active step that is due and not held by a live worker; fail deployments past their deadline."""
    now = timezone.now()
    expired = 0
    overdue = Deployment.objects.filter(
        state__in=[State.PENDING, State.POLICY_CHECK, State.ROLLING_OUT, State.ANALYSING, State.PROMOTING],
        deadline__lt=now,
    ).values_list("pk", flat=True)
    for pk in overdue:
        with transaction.atomic():
            deployment = Deployment.objects.select_for_update().filter(pk=pk, deadline__lt=now).first()
            if deployment is None or deployment.state not in ACTIVE_STATES:
                continue
            reason = "The deployment passed its deadline without finishing."
            target = State.CANCELLED if deployment.state in machine.CANCELLABLE else State.FAILED
            machine.transition(deployment, target, message=reason, level="error", failure_reason=reason)
            engine.enqueue(deployment.pk, deployment.version)
            expired += 1
    # Every step enqueues the next one itself, and waits ring by countdown: the sweeper is for what got lost (a
    # message, a worker). So it rings only steps idle or overdue for SWEEP_GRACE_SECONDS, and rings each at most
    # once per SWEEP_RING_AGAIN_SECONDS unless the deployment moved since: with a backlog in the queue it would
    # otherwise pile copies of every waiting step on top of it.
    grace = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    due = list(
        Deployment.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            Q(next_run_at__isnull=True, updated_at__lt=grace) | Q(next_run_at__lt=grace),
            Q(rung_at__isnull=True)
            | Q(rung_at__lt=F("updated_at"))
            | Q(rung_at__lt=now - timedelta(seconds=SWEEP_RING_AGAIN_SECONDS)),
            state__in=ACTIVE_STATES - WAITING_STATES,
            paused=False,
        ).values_list("pk", "version")
    )
    if due:
        Deployment.objects.filter(pk__in=[pk for pk, _ in due]).update(rung_at=now)
    from deployments import tasks

    for pk, version in due:
        tasks.deployment_step.delay(pk, version)
    resumed = len(due)
    if expired or resumed:
        log.info("deployments swept", expired=expired, resumed=resumed)
    return {"expired": expired, "resumed": resumed}


@transaction.atomic
def deploy_event_record(
    *,
    service: Service,
    environment: Environment,
    version: str,
    commit_sha: str,
    status: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    committed_at: datetime | None,
    user: User,
    message: str = "",
    strategy: str = "",
    commits: list[dict[str, Any]] | None = None,
) -> Deployment:
    """Record a deployment done by an external CD system so history and DORA metrics include it."""
    _require(user, "catalog.deploy_service", service, "report its deployments")
    if status not in ("succeeded", "failed", "rolled_back"):
        raise ValidationError({"status": ["Report succeeded, failed or rolled_back."]})
    if strategy and strategy not in Strategy.values:
        raise ValidationError({"strategy": [f"Report one of {', '.join(Strategy.values)}, or leave it out."]})
    release = release_record(
        service=service, version=version, commit_sha=commit_sha, committed_at=committed_at, user=user, commits=commits
    )
    now = timezone.now()
    placement = Placement.objects.filter(service=service, environment=environment).first()
    if not strategy:
        # The deploy policies judge the report by its strategy: assume what Runway would have used there.
        target = DeployTarget.objects.filter(service=service, environment=environment).only("strategy").first()
        strategy = target.strategy if target else Strategy.ROLLING
    deployment = Deployment.objects.create(
        release=release,
        service=service,
        environment=environment,
        strategy=strategy,
        runtime=RuntimeKind.WEBHOOK,
        requested_by=user,
        state=State.EXTERNAL,
        started_at=started_at or now,
        finished_at=finished_at or now,
        previous_release=placement.release if placement else None,
        traffic_share=100 if status == "succeeded" else 0,
        failure_reason="" if status == "succeeded" else (message or f"Reported {status} by the CD system."),
        runtime_state={"reported_status": status},
    )
    DeploymentEvent.objects.create(
        deployment=deployment,
        step="external",
        level="info" if status == "succeeded" else "error",
        message=message or f"{release.version} {status.replace('_', ' ')} in {environment} (reported by {user}).",
        data={"status": status},
    )
    if status == "succeeded":
        Placement.objects.update_or_create(
            service=service,
            environment=environment,
            defaults={"release": release, "deployment": deployment, "since": finished_at or now},
        )
    audit.event_record(
        actor=user,
        action="deployment.reported",
        target=deployment,
        after={"release": version, "environment": environment.slug, "status": status},
        service_id=service.pk,
    )
    _report_judge(deployment)
    return deployment


def _report_judge(deployment: Deployment) -> None:
    """Judge a reported deploy by the deploy policies and say on its timeline whether it was compliant. It already
    happened, so the verdict never refuses the report; a judgement that crashes leaves the report recorded, unjudged."""
    try:
        with transaction.atomic():  # a savepoint: a crash here undoes only the judgement
            compliance = policies.report_check(deployment)
            if compliance.compliant:
                level, message = DeploymentEvent.Level.INFO, "Compliant with the deploy policies."
            else:
                level = DeploymentEvent.Level.WARNING
                message = "Not compliant with the deploy policies (recorded, not refused): " + " ".join(
                    compliance.messages
                )
            DeploymentEvent.objects.create(
                deployment=deployment,
                step="external",
                level=level,
                message=message,
                data={"decision": compliance.decision_id},
            )
    except Exception:
        log.exception("reported deploy not judged", deployment=deployment.pk)
        DeploymentEvent.objects.create(
            deployment=deployment,
            step="external",
            level=DeploymentEvent.Level.WARNING,
            message="The deploy policies could not judge this report; it is recorded unjudged.",
        )
