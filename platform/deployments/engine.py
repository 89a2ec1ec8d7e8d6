"""Drives deployments one short step at a time. PostgreSQL holds the truth; the broker is only a doorbell.

A step is `run_step(id, version)`:
1. *claim*: lock the row, check that the state is active, the deployment not paused, the version the one the task
   was enqueued for and no live lease held; then bump the version, count the attempt and take a lease. A stale or
   duplicate task finds another version and does nothing.
2. *work*: one idempotent call to the runtime, outside any transaction, so no lock is held while it runs.
3. *finish*: lock the row again, check the version is still ours, write the outcome (a transition with its
   timeline and audit events, or a step advanced, or a wait) and enqueue the next step on commit.

A worker that dies between claim and finish leaves a lease that expires; the sweeper then enqueues the step again,
and the attempt counter makes a step that keeps killing its worker fail the deployment instead of looping.
Waits are a `next_run_at` time. Short ones are also a Celery countdown (never longer than `MAX_COUNTDOWN`, far
below the broker's visibility timeout); the sweeper picks up whatever is due, so a lost message only costs time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments import analysis, machine, policies, runtimes, signals, strategies
from deployments.models import ACTIVE_STATES, WAITING_STATES, Deployment, DeploymentEvent, Placement, State
from deployments.runtimes.base import Context, StepFailed, Waiting
from scaffolder import publishers

log = structlog.get_logger(__name__)
MAX_COUNTDOWN = 60
MAX_INCONCLUSIVE = 3  # consecutive analyses without usable data before the step is aborted
RETRY_SECONDS = 1.0
# Where a deployment keeps the counts of its analysis windows so far, for the judge's evidence test (analysis.Evidence).
EVIDENCE_KEY = "analysis_evidence"


@dataclass
class Outcome:
    """What a step's work decided; `finish` writes it."""

    target: str | None = None  # a state to move to
    message: str = ""
    level: str = DeploymentEvent.Level.INFO
    changes: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (level, message, data)
    data: dict[str, Any] = field(default_factory=dict)  # the transition's timeline data
    delay: float = 0.0  # seconds before the next step runs
    crashed: bool = False  # keeps the attempt count, so a step that keeps crashing ends
    # Written in the same transaction as the transition (e.g. the approval request of a deployment parked for one).
    after: Callable[[Deployment], None] | None = None


def enqueue(deployment_id: int, version: int, *, delay: float = 0.0) -> None:
    """Ring the doorbell once the current transaction commits."""
    from deployments import tasks

    countdown = min(max(delay, 0.0), MAX_COUNTDOWN)
    transaction.on_commit(
        lambda: tasks.deployment_step.apply_async((deployment_id, version), countdown=countdown or None)
    )


def context_for(deployment: Deployment) -> Context:
    release = deployment.release
    previous = deployment.previous_release
    slug = deployment.service.slug
    repository = publishers.local_path(name=slug) if publishers.local_exists(name=slug) else ""
    return Context(
        deployment_id=deployment.pk,
        service=slug,
        environment=deployment.environment.slug,
        version=release.version,
        commit_sha=release.commit_sha,
        repository=repository,
        previous_version=previous.version if previous else None,
        previous_commit_sha=previous.commit_sha if previous else None,
        config=dict(deployment.config),
        state=dict(deployment.runtime_state),
    )


# What a step reads of a deployment, loaded with its row; the requester is the policy step's (the fact document's
# `change.requester`), a round trip fewer on the step that stands between a deployment and its start.
CLAIM_RELATED = ("release", "previous_release", "service", "environment", "requested_by")


def _claim(deployment_id: int, version: int) -> tuple[Deployment, Outcome | None] | None:
    """Take the step if it is still ours to take; an Outcome here means fail without working (too many crashes)."""
    now = timezone.now()
    with transaction.atomic():
        deployment = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related(*CLAIM_RELATED)
            .filter(pk=deployment_id)
            .first()
        )
        if deployment is None or deployment.version != version or deployment.state not in ACTIVE_STATES:
            return None
        if deployment.state in WAITING_STATES:  # people move it on, not workers
            return None
        if deployment.paused or (deployment.lease_until and deployment.lease_until > now):
            return None
        if deployment.next_run_at and deployment.next_run_at > now + timedelta(milliseconds=200):
            # Early: a wait longer than MAX_COUNTDOWN is a chain of countdowns; this link rings the next one.
            enqueue(deployment.pk, version, delay=(deployment.next_run_at - now).total_seconds())
            return None
        deployment.version += 1
        deployment.attempts += 1
        deployment.lease_until = now + timedelta(seconds=settings.DEPLOY_STEP_LEASE_SECONDS)
        deployment.save(update_fields=["version", "attempts", "lease_until", "updated_at"])
    limit = settings.DEPLOY_MAX_STEP_ATTEMPTS
    if deployment.attempts > limit and deployment.state != State.FAILED:
        reason = f"The step {_step_name(deployment)} crashed its worker {limit} times."
        if deployment.state == State.ROLLING_BACK:
            return deployment, _rollback_not_done(deployment, reason, give_up=True)
        return deployment, _after_failure(deployment, reason)
    return deployment, None


def run_step(deployment_id: int, version: int) -> None:
    claimed = _claim(deployment_id, version)
    if claimed is None:
        return
    deployment, outcome = claimed
    ctx = context_for(deployment)
    if outcome is None:
        try:
            outcome = _work(deployment, ctx)
            ctx.state.pop("last_wait", None)
        except Waiting as waiting:
            # A poll repeats every few seconds; the timeline says what is awaited once, not on every poll.
            message = str(waiting)
            notes: list[tuple[str, str, dict[str, Any]]] = []
            if ctx.state.get("last_wait") != message:
                notes.append(("info", message, {}))
            ctx.state["last_wait"] = message
            outcome = Outcome(notes=notes, delay=waiting.seconds)
        except StepFailed as failure:
            outcome = _after_failure(deployment, str(failure))
        except Exception as error:
            log.exception("deployment step crashed", deployment=deployment.pk, state=deployment.state)
            outcome = _after_crash(deployment, f"{type(error).__name__}: {error}")
    _finish(deployment, outcome, ctx)


def _finish(claimed: Deployment, outcome: Outcome, ctx: Context) -> None:
    with transaction.atomic():
        # str(deployment) names its release, service and environment in the audit event: load them with the row
        # (three queries fewer per transition), but lock only the row, as _claim does.
        deployment = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("release__service", "environment")
            .get(pk=claimed.pk)
        )
        if deployment.version != claimed.version:
            log.info("deployment step outcome dropped: a newer writer", deployment=deployment.pk)
            return
        for level, message, data in outcome.notes:
            machine.note(deployment, message, level=level, data=data)
        deployment.runtime_state = ctx.state
        next_run = timezone.now() + timedelta(seconds=outcome.delay) if outcome.delay else None
        if outcome.target is not None:
            machine.transition(
                deployment,
                outcome.target,
                message=outcome.message,
                level=outcome.level,
                data=outcome.data,
                next_run_at=next_run,
                **outcome.changes,
            )
            if outcome.target == State.SUCCEEDED:
                _place(deployment)
            if outcome.after is not None:
                outcome.after(deployment)
        else:
            for name, value in outcome.changes.items():
                setattr(deployment, name, value)
            deployment.version += 1
            deployment.lease_until = None
            if not outcome.crashed:
                deployment.attempts = 0
            deployment.next_run_at = next_run
            deployment.save()
        if deployment.state in ACTIVE_STATES - WAITING_STATES and not deployment.paused:
            enqueue(deployment.pk, deployment.version, delay=outcome.delay)


def _place(deployment: Deployment) -> None:
    Placement.objects.update_or_create(
        service_id=deployment.service_id,
        environment_id=deployment.environment_id,
        defaults={"release": deployment.release, "deployment": deployment, "since": timezone.now()},
    )
    signals.deployment_placed.send(sender=Deployment, deployment=deployment)


def _step_name(deployment: Deployment) -> str:
    if deployment.state in (State.ROLLING_OUT, State.ANALYSING) and deployment.current_step < len(deployment.plan):
        return f"{deployment.current_step + 1} ({deployment.plan[deployment.current_step]['action']})"
    return deployment.get_state_display().lower()


def _fail(reason: str) -> Outcome:
    return Outcome(
        target=State.FAILED, message=reason, level=DeploymentEvent.Level.ERROR, changes={"failure_reason": reason}
    )


def _after_failure(deployment: Deployment, reason: str) -> Outcome:
    if deployment.state == State.ROLLING_BACK:
        return _rollback_not_done(deployment, reason)
    if deployment.state in machine.CANCELLABLE:
        message = f"{reason} Nothing was rolled out, so nothing is rolled back; what ran before still runs."
        return _end_before_rollout(reason, message=message)
    return _fail(reason)


def _end_before_rollout(reason: str, *, message: str = "", **outcome: Any) -> Outcome:
    """A deployment refused or failed before its rollout ends cancelled, never failed: a failed one always rolls back,
    and the runtime's rollback stops the replicas of the deployment's commit, which for a redeploy of the release
    already running are the live ones."""
    return Outcome(
        target=State.CANCELLED,
        message=message or reason,
        level=DeploymentEvent.Level.ERROR,
        changes={"failure_reason": reason},
        **outcome,
    )


def _after_crash(deployment: Deployment, error: str) -> Outcome:
    """Count the crash and try again shortly; `_claim` fails the deployment once the attempts run out."""
    if deployment.state == State.ROLLING_BACK:
        return _rollback_not_done(deployment, error)
    note = f"Step {_step_name(deployment)} failed with {error}; trying again (attempt {deployment.attempts})."
    return Outcome(notes=[("warning", note, {})], delay=RETRY_SECONDS * deployment.attempts, crashed=True)


def _rollback_not_done(deployment: Deployment, error: str, *, give_up: bool = False) -> Outcome:
    tries = deployment.rollback_attempts + 1
    if give_up or tries >= settings.DEPLOY_MAX_ROLLBACK_ATTEMPTS:
        return Outcome(
            target=State.ROLLBACK_FAILED,
            message=f"Rollback failed {tries} times ({error}); a person must look at this environment.",
            level=DeploymentEvent.Level.ERROR,
            changes={"rollback_attempts": tries, "needs_attention": True},
        )
    return Outcome(
        notes=[("warning", f"Rollback attempt {tries} failed: {error}. Trying again.", {})],
        changes={"rollback_attempts": tries},
        delay=RETRY_SECONDS * tries,
    )


def _work(deployment: Deployment, ctx: Context) -> Outcome:
    runtime = runtimes.get(deployment.runtime)
    state = deployment.state
    if state == State.PENDING:
        return Outcome(target=State.POLICY_CHECK, message="Checking deploy policies.")
    if state == State.POLICY_CHECK:
        verdict = policies.deploy_check(deployment)
        # Warn policies never block: each failed one is a warning on the timeline, pointing at the decision.
        notes = [("warning", f"Policy warning: {text}", {"decision": verdict.decision_id}) for text in verdict.warnings]
        if not verdict.allowed and not verdict.needs_approval:
            reason = f"Policy check refused the deployment: {verdict.message}"
            return _end_before_rollout(reason, notes=notes, data={"decision": verdict.decision_id})
        passed = f"Policy check passed ({verdict.message})."
        if verdict.needs_approval:
            if not policies.approval_granted(deployment, decision_id=verdict.decision_id):
                decision_id = verdict.decision_id
                return Outcome(
                    target=State.AWAITING_APPROVAL,
                    message=f"Waiting for approval: {verdict.message}",
                    level=DeploymentEvent.Level.WARNING,
                    notes=notes,
                    data={"decision": decision_id},
                    after=lambda parked: policies.approval_open(parked, decision_id=decision_id),
                )
            passed = f"Policy check passed with the approvals it asked for ({verdict.message})."
            notes = []  # said on the first pass, before it waited
        runtime.prepare(ctx)
        return Outcome(
            target=State.ROLLING_OUT,
            message=f"{passed} Release {deployment.release.version} prepared.",
            notes=notes,
            data={"decision": verdict.decision_id},
        )
    if state == State.ROLLING_OUT:
        return _roll_out(deployment, ctx, runtime)
    if state == State.ANALYSING:
        return _analyse(deployment, ctx, runtime)
    if state == State.PROMOTING:
        replicas = int(deployment.config.get("replicas", 1))
        runtime.scale(ctx, replicas=replicas)
        runtime.route(ctx, share=100)
        runtime.finalize(ctx)
        return Outcome(
            target=State.SUCCEEDED,
            message=f"{deployment.release.version} now runs in {deployment.environment} on "
            f"{strategies.replicas(replicas)}.",
            changes={"traffic_share": 100},
        )
    if state == State.FAILED:
        return Outcome(target=State.ROLLING_BACK, message="Rolling back to the previous release.")
    if state == State.ROLLING_BACK:
        runtime.rollback(ctx)
        previous = deployment.previous_release
        message = (
            f"Rolled back: {previous.version} serves all traffic again."
            if previous
            else "Rolled back: the new release's replicas are stopped (nothing ran here before)."
        )
        return Outcome(target=State.ROLLED_BACK, message=message, changes={"traffic_share": 0})
    raise machine.IllegalTransition(f"No step runs in state {state}.")


def _roll_out(deployment: Deployment, ctx: Context, runtime: runtimes.Runtime) -> Outcome:
    index = deployment.current_step
    if index >= len(deployment.plan):
        return Outcome(target=State.PROMOTING, message="Every step passed; promoting the release.")
    step = deployment.plan[index]
    ctx.step = f"{index}:{step['action']}"
    action = step["action"]
    changes: dict[str, Any] = {"current_step": index + 1}
    numbered = f"Step {index + 1} of {strategies.step_count(deployment.plan)}"
    if action == "analyse":
        bake = float(step["bake"])
        return Outcome(
            target=State.ANALYSING,
            message=f"{numbered}: baking {step['bake']} s before analysis: {step.get('label', '')}.",
            delay=bake,
            changes={"metric_errors": 0},
        )
    if action == "scale":
        runtime.scale(ctx, replicas=int(step["replicas"]))
    elif action == "retire":
        runtime.retire_old(ctx, keep=int(step["keep"]))
    elif action == "shift":
        runtime.route(ctx, share=int(step["share"]))
        changes["traffic_share"] = int(step["share"])
    note = f"{numbered}: {strategies.describe(step)}."
    if index + 1 >= len(deployment.plan):
        return Outcome(
            target=State.PROMOTING, message=f"{note} Every step passed; promoting the release.", changes=changes
        )
    return Outcome(notes=[("info", note, {"step": step})], changes=changes)


def _analyse(deployment: Deployment, ctx: Context, runtime: runtimes.Runtime) -> Outcome:
    index = deployment.current_step
    step = deployment.plan[index]
    ctx.step = f"{index}:analyse"
    observation = runtime.observe(ctx)
    evidence = analysis.Evidence.from_dict(ctx.state.get(EVIDENCE_KEY))
    verdict = analysis.evaluate(observation, analysis.Thresholds.from_config(deployment.config), evidence)
    if "evidence" in verdict.figures:
        # What the next window adds its counts to (a window without usable data adds none).
        ctx.state[EVIDENCE_KEY] = verdict.figures["evidence"]
    data = {"verdict": verdict.result, "figures": verdict.figures, "reasons": verdict.reasons, "step": index}
    label = step.get("label", "")
    if verdict.result == "pass":
        message = f"Analysis passed ({label}): " + _figures_line(verdict.figures)
        following = index + 1
        if following >= len(deployment.plan):
            return Outcome(
                target=State.PROMOTING,
                message=message + " Promoting the release.",
                changes={"current_step": following, "metric_errors": 0},
                notes=[("info", "Analysis figures", data)],
            )
        return Outcome(
            target=State.ROLLING_OUT,
            message=message,
            changes={"current_step": following, "metric_errors": 0},
            notes=[("info", "Analysis figures", data)],
        )
    if verdict.result == "fail":
        reason = f"Analysis failed ({label}): " + "; ".join(verdict.reasons)
        outcome = _fail(reason)
        outcome.notes.append(("error", "Analysis figures", data))
        return outcome
    errors = deployment.metric_errors + 1
    if errors >= MAX_INCONCLUSIVE:
        reason = f"No usable analysis data after {errors} tries ({label}): " + "; ".join(verdict.reasons)
        outcome = _fail(reason)
        outcome.notes.append(("error", "Analysis figures", data))
        return outcome
    return Outcome(
        notes=[("warning", f"Analysis inconclusive ({'; '.join(verdict.reasons)}); measuring again.", data)],
        changes={"metric_errors": errors},
        delay=min(float(step["bake"]), 2.0) or RETRY_SECONDS,
    )


def _figures_line(figures: dict[str, Any]) -> str:
    canary = figures.get("canary", {})
    parts = [
        f"error rate {analysis.percent(canary.get('error_rate') or 0)}",
        f"p95 {canary.get('p95_ms') or 0:.0f} ms",
        f"probes {analysis.percent(canary.get('probe_success') or 0)}",
    ]
    return ", ".join(parts) + "."
