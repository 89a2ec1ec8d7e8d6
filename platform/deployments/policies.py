"""The policy gate every deployment passes before anything changes: one call into governance, which builds the
fact document, evaluates the enabled CEL policies and records the decision with the deployment."""

from dataclasses import dataclass, field
from typing import Any

from deployments.models import Deployment


@dataclass(frozen=True)
class PolicyVerdict:
    allowed: bool
    message: str
    warnings: list[str] = field(default_factory=list)
    decision_id: int | None = None
    # A require_approval policy failed (and nothing denied): the deployment waits for approvals.
    needs_approval: bool = False


def deploy_check(deployment: Deployment) -> PolicyVerdict:
    from governance import services  # governance builds on deployments, not the other way round

    decision = services.deployment_judge(deployment=deployment)
    judged = len(decision.results)
    needs_approval = decision.verdict == "approval"
    if needs_approval:
        message = " ".join(decision.messages("require_approval"))
    elif not decision.allowed:
        # What blocked: deny policies that failed or errored, and require_approval policies that errored.
        message = " ".join(
            r["message"]
            for r in decision.results
            if (r["action"] == "deny" and r["outcome"] in ("fail", "error"))
            or (r["action"] == "require_approval" and r["outcome"] == "error")
        )
    elif not judged:
        message = "no deploy policies are enabled"
    else:
        applied = sum(1 for result in decision.results if result["outcome"] != "skip")
        message = f"{applied} of {judged} policies applied, none denied; decision #{decision.pk}"
    return PolicyVerdict(
        allowed=decision.allowed,
        message=message,
        warnings=decision.messages("warn"),
        decision_id=decision.pk,
        needs_approval=needs_approval,
    )


def approval_granted(deployment: Deployment, *, decision_id: int | None) -> bool:
    """Whether the approvals the deployment's decision asked for were given."""
    from governance import approvals

    return approvals.granted(deployment=deployment, decision_id=decision_id)


def approval_open(deployment: Deployment, *, decision_id: int | None) -> None:
    """Ask for the approvals the decision requires (in the transaction that parks the deployment)."""
    from governance import approvals

    approvals.request_open(deployment=deployment, decision_id=decision_id)


def break_glass_open(deployment: Deployment) -> None:
    """Ask one platform admin to approve a break-glass deploy (in the transaction that parks it)."""
    from governance import approvals

    approvals.break_glass_open(deployment=deployment)


def approval_for(deployment: Deployment, *, user: Any) -> Any:
    """The deployment's latest approval request, its progress, and whether `user` may answer it (for its page)."""
    from governance import selectors

    return selectors.approval_for(deployment=deployment, user=user)


def approvals_close(deployment: Deployment, *, reason: str) -> None:
    """The deployment ended while it waited (cancelled by a person): its open approval request closes with it."""
    from governance import approvals

    approvals.requests_close(deployment=deployment, reason=reason)


@dataclass(frozen=True)
class Compliance:
    """What the deploy policies said about a deployment an external CD system reported: compliant or not, never
    refused. `decision_id` is None when it could not be judged (the report is kept all the same)."""

    compliant: bool | None
    messages: list[str] = field(default_factory=list)
    decision_id: int | None = None
    url: str | None = None


def report_check(deployment: Deployment) -> Compliance:
    """Judge a deployment an external CD system reported (once: a second call finds the decision made)."""
    from governance import services

    return _compliance(services.report_judge(deployment=deployment))


def report_compliance(deployment: Deployment) -> Compliance:
    """What was recorded about a reported deployment's compliance, read afresh from its decision."""
    from governance import selectors

    decision = selectors.decision_for(deployment=deployment)
    return _compliance(decision) if decision is not None else Compliance(compliant=None)


def _compliance(decision: Any) -> Compliance:
    return Compliance(
        compliant=decision.allowed,
        # A reported deploy that a require_approval policy would have held went out without those approvals.
        messages=decision.messages("deny") + decision.messages("require_approval"),
        decision_id=decision.pk,
        url=decision.get_absolute_url(),
    )
