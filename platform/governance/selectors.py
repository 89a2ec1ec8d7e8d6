"""Reads for governance: policies, their versions and decisions."""

from django.db.models import QuerySet

from deployments.models import Deployment
from governance.models import Decision, Policy, PolicyVersion


def policy_list() -> QuerySet[Policy]:
    """Every policy with the version that judges, for the Governance pages (readable by every signed-in user)."""
    return Policy.objects.select_related("current", "current__author")


def policy_versions_enabled() -> list[PolicyVersion]:
    """The versions that judge changes now, one query; each version's policy is the row already loaded."""
    versions = []
    for policy in Policy.objects.filter(enabled=True, current__isnull=False).select_related("current"):
        version = policy.current
        assert version is not None
        version.policy = policy
        versions.append(version)
    return versions


def decision_list() -> QuerySet[Decision]:
    """Decisions with what the page shows of their deployment; readable by every signed-in user, as the catalog is."""
    return Decision.objects.select_related("deployment__release", "deployment__environment", "requested_by")


def decision_for(*, deployment: Deployment) -> Decision | None:
    return Decision.objects.filter(deployment=deployment).first()


def policy_versions(*, policy: Policy) -> list[PolicyVersion]:
    """A policy's versions, newest first, each with its author loaded."""
    versions = list(PolicyVersion.objects.filter(policy=policy).select_related("author").order_by("-number"))
    for version in versions:
        version.policy = policy
    return versions
