"""Reads for governance: policies, their versions and decisions."""

import difflib

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


def _lines(version: PolicyVersion) -> list[str]:
    return [f"{name}: {value}" for name, value in version.content().items() if value]


def policy_versions(*, policy: Policy) -> list[PolicyVersion]:
    """A policy's versions, newest first, each with its author loaded and `changes`: the line diff from the version
    before it, as (kind, line) pairs with kind in add/del/same."""
    versions = list(PolicyVersion.objects.filter(policy=policy).select_related("author").order_by("-number"))
    for version, older in zip(versions, [*versions[1:], None], strict=True):
        version.policy = policy
        changes: list[tuple[str, str]] = []
        if older is not None:
            for line in difflib.ndiff(_lines(older), _lines(version)):
                kind = {"+": "add", "-": "del", " ": "same"}.get(line[0])
                if kind:
                    changes.append((kind, line))
        version.changes = changes  # type: ignore[attr-defined]
    return versions
