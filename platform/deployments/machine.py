"""Every deployment state change lives here: the legal transitions, and the one function that makes them.

A transition is written with its timeline event and its audit event in the caller's transaction, bumps the
deployment's version so that a stale worker can no longer write, and leaves the next step to `engine`.
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from deployments.models import TERMINAL_STATES, Deployment, DeploymentEvent, State

TRANSITIONS: Mapping[str, frozenset[str]] = {
    # A break-glass deploy waits for a platform admin before its policy step.
    State.PENDING: frozenset({State.POLICY_CHECK, State.AWAITING_APPROVAL, State.CANCELLED}),
    State.POLICY_CHECK: frozenset({State.ROLLING_OUT, State.AWAITING_APPROVAL, State.FAILED, State.CANCELLED}),
    # Approved: back to the policy step, which finds its decision made and the approvals given, and rolls out.
    # Rejected, expired or cancelled: nothing was touched, so it ends cancelled.
    State.AWAITING_APPROVAL: frozenset({State.POLICY_CHECK, State.CANCELLED}),
    State.ROLLING_OUT: frozenset({State.ANALYSING, State.PROMOTING, State.FAILED}),
    State.ANALYSING: frozenset({State.ROLLING_OUT, State.PROMOTING, State.FAILED}),
    State.PROMOTING: frozenset({State.SUCCEEDED, State.FAILED}),
    State.FAILED: frozenset({State.ROLLING_BACK}),
    State.ROLLING_BACK: frozenset({State.ROLLED_BACK, State.ROLLBACK_FAILED}),
    **{terminal: frozenset() for terminal in TERMINAL_STATES},
}
# Before the first destructive step a deployment can simply be cancelled; afterwards it must be rolled back.
CANCELLABLE = frozenset({State.PENDING, State.POLICY_CHECK, State.AWAITING_APPROVAL})
ABORTABLE = frozenset({State.ROLLING_OUT, State.ANALYSING, State.PROMOTING})
PROMOTABLE = frozenset({State.ROLLING_OUT, State.ANALYSING})


class IllegalTransition(Exception):
    """A change the state machine does not allow, such as leaving a terminal state."""


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def transition(
    deployment: Deployment,
    target: str,
    *,
    message: str,
    actor: User | AnonymousUser | None = None,
    level: str = DeploymentEvent.Level.INFO,
    data: dict[str, Any] | None = None,
    **changes: Any,
) -> DeploymentEvent:
    """Move `deployment` (locked by the caller) to `target`, with one timeline event and one audit event."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Deployment transitions must run inside the transaction that locked the deployment.")
    source = deployment.state
    if not can_transition(source, target):
        raise IllegalTransition(f"A deployment cannot go from {source} to {target}.")
    now = timezone.now()
    deployment.state = target
    deployment.version += 1
    deployment.attempts = 0
    deployment.lease_until = None
    if target == State.POLICY_CHECK and deployment.started_at is None:
        deployment.started_at = now
    if target in TERMINAL_STATES:
        deployment.finished_at = now
        deployment.next_run_at = None
    for name, value in changes.items():
        setattr(deployment, name, value)
    deployment.save()
    event = DeploymentEvent.objects.create(
        deployment=deployment, step=target, from_state=source, level=level, message=message, data=data or {}
    )
    audit.event_record(
        actor=actor,
        action=f"deployment.{target}",
        target=deployment,
        before={"state": source},
        after={"state": target, "step": deployment.current_step, "message": message[:500]},
        service_id=deployment.service_id,
    )
    return event


def note(
    deployment: Deployment, message: str, *, step: str = "", level: str = "info", data: dict[str, Any] | None = None
) -> None:
    """A timeline line that is not a state change (analysis figures, a retry, a manual pause)."""
    DeploymentEvent.objects.create(
        deployment=deployment, step=step or deployment.state, level=level, message=message, data=data or {}
    )
