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


def deploy_check(deployment: Deployment) -> PolicyVerdict:
    from governance import services  # governance builds on deployments, not the other way round

    decision = services.deployment_judge(deployment=deployment)
    judged = len(decision.results)
    if not decision.allowed:
        message = " ".join(decision.messages("deny"))
    elif not judged:
        message = "no deploy policies are enabled"
    else:
        applied = sum(1 for result in decision.results if result["outcome"] != "skip")
        message = f"{applied} of {judged} policies applied, none denied; decision #{decision.pk}"
    return PolicyVerdict(
        allowed=decision.allowed, message=message, warnings=decision.messages("warn"), decision_id=decision.pk
    )


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
        messages=decision.messages("deny"),
        decision_id=decision.pk,
        url=decision.get_absolute_url(),
    )
