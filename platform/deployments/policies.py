"""The policy gate every deployment passes before anything changes: one call into governance, which builds the
fact document, evaluates the enabled CEL policies and records the decision with the deployment."""

from dataclasses import dataclass, field

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
