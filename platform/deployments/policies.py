"""The policy gate every deployment passes before anything changes. Governance fills it with CEL policies later;
for now every deployment is allowed, and the timeline records that the check ran."""

from dataclasses import dataclass

from deployments.models import Deployment


@dataclass(frozen=True)
class PolicyVerdict:
    allowed: bool
    message: str


def deploy_check(deployment: Deployment) -> PolicyVerdict:
    return PolicyVerdict(allowed=True, message="no deploy policies are defined yet")
