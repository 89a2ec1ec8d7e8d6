"""The fact document: everything a deploy policy may know about a service and a proposed change.

It is the contract policies are written against (docs/governance.md describes it field by field): a plain dict of
JSON values, so a decision can keep the very document that was judged. Each top-level group comes from one provider
function registered with `@fact(name, sample=...)`; a later capability (scorecards, incidents, SLOs) adds its group
by adding one provider here. `sample` is a complete, plausible value of the group: policy tests start from it, and an
expression is checked against it when saved, so a reference to a field the document never has is refused then.
"""

from __future__ import annotations

import copy
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Service, Tag
from deployments.models import Deployment, Environment, State

Facts = dict[str, Any]
Provider = Callable[["Change"], Any]

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FAILED_STATES = (State.FAILED, State.ROLLING_BACK, State.ROLLED_BACK, State.ROLLBACK_FAILED)
# A deployment an external CD system reported counts by the status it reported, like one Runway drove.
SUCCEEDED = Q(state=State.SUCCEEDED) | Q(state=State.EXTERNAL, runtime_state__reported_status="succeeded")
FAILED = Q(state__in=FAILED_STATES) | Q(
    state=State.EXTERNAL, runtime_state__reported_status__in=["failed", "rolled_back"]
)
ROLLED_BACK = Q(state=State.ROLLED_BACK) | Q(state=State.EXTERNAL, runtime_state__reported_status="rolled_back")


@dataclass
class Change:
    """A proposed change: a deployment being judged, or the parameters of one not made yet (a dry run)."""

    service: Service
    environment: Environment
    strategy: str
    version: str
    commit: str = ""
    requester: User | None = None
    deployment: Deployment | None = None
    at: datetime = field(default_factory=timezone.now)

    @classmethod
    def of(cls, deployment: Deployment) -> Change:
        return cls(
            service=deployment.service,
            environment=deployment.environment,
            strategy=deployment.strategy,
            version=deployment.release.version,
            commit=deployment.release.commit_sha,
            requester=deployment.requested_by,
            deployment=deployment,
        )


@dataclass(frozen=True)
class _Group:
    name: str
    build: Provider
    sample: Any
    open_maps: tuple[str, ...]  # dotted paths under the group whose keys are data (environment slugs), not fields


_GROUPS: dict[str, _Group] = {}


def fact(name: str, *, sample: Any, open_maps: tuple[str, ...] = ()) -> Callable[[Provider], Provider]:
    """Register `build(change)` as the provider of the top-level group `name`."""

    def register(build: Provider) -> Provider:
        _GROUPS[name] = _Group(name=name, build=build, sample=sample, open_maps=open_maps)
        return build

    return register


def facts_build(*, change: Change) -> Facts:
    """The fact document for one change; a handful of queries whatever the service's history."""
    return {name: group.build(change) for name, group in _GROUPS.items()}


def sample_document() -> Facts:
    """A complete fact document with every field present (a fresh copy each time: callers merge into it)."""
    return {name: copy.deepcopy(group.sample) for name, group in _GROUPS.items()}


def open_maps() -> frozenset[str]:
    return frozenset(f"{name}.{path}" for name, group in _GROUPS.items() for path in group.open_maps)


def group_names() -> tuple[str, ...]:
    return tuple(_GROUPS)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z") if moment else None


def _is_platform_admin(user: User | None) -> bool:
    return bool(user and user.is_staff)


@fact(
    "service",
    sample={
        "slug": "payments-api",
        "name": "Payments API",
        "owner": "payments",
        "system": "payments",
        "tier": 1,
        "lifecycle": "production",
        "tags": ["pci"],
        "language": "python",
        "golden_path": {"name": "python-service", "version": "1.0.0", "latest": "1.1.0", "behind": True},
        "runbooks": 2,
        "stale_runbooks": 0,
        "adrs": 1,
        "last_ownership_review": None,
    },
)
def _service(change: Change) -> dict[str, Any]:
    from scaffolder import registry  # the scaffolder builds on the catalog; read its registry, not its models
    from techdocs.models import ADR, Runbook

    def count(queryset: Any) -> Coalesce:
        grouped = queryset.filter(service=OuterRef("pk")).order_by().values("service").annotate(n=Count("pk"))
        return Coalesce(Subquery(grouped.values("n")[:1]), 0)

    # One row for the service, its owner, system and document counts; the tags are the only other query.
    row = (
        Service.objects.filter(pk=change.service.pk)
        .values("slug", "name", "tier", "lifecycle", "language", "golden_path", "golden_path_version")
        .annotate(
            owner_slug=F("owner__slug"),
            system_slug=F("system__slug"),
            runbook_count=count(Runbook.objects.all()),
            stale_count=count(Runbook.objects.filter(Q(review_due_at__isnull=True) | Q(review_due_at__lt=change.at))),
            adr_count=count(ADR.objects.all()),
        )
        .get()
    )
    tags = sorted(Tag.objects.filter(services=change.service.pk).values_list("name", flat=True))
    path = registry.golden_path_get(row["golden_path"]) if row["golden_path"] else None
    latest = path.version if path else None
    return {
        "slug": row["slug"],
        "name": row["name"],
        "owner": row["owner_slug"],
        "system": row["system_slug"],
        "tier": row["tier"],
        "lifecycle": row["lifecycle"],
        "tags": tags,
        "language": row["language"],
        "golden_path": {
            "name": row["golden_path"] or None,
            "version": row["golden_path_version"] or None,
            "latest": latest,
            "behind": bool(latest and row["golden_path_version"] and latest != row["golden_path_version"]),
        },
        "runbooks": row["runbook_count"],
        "stale_runbooks": row["stale_count"],
        "adrs": row["adr_count"],
        # Ownership reviews do not exist yet; the field is here so that policies can already test for null.
        "last_ownership_review": None,
    }


@fact(
    "change",
    sample={
        "environment": {"slug": "production", "name": "Production", "protected": True, "order": 2},
        "strategy": "canary",
        "version": "v1.4.0",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "succeeded_in": {"staging": "2026-01-05T09:30:00Z"},
        "requester": {"username": "olivia", "platform_admin": False, "roles": ["member"]},
        "approvals": [],
        "break_glass": False,
    },
    open_maps=("succeeded_in",),
)
def _change(change: Change) -> dict[str, Any]:
    from teams.models import Membership

    environment = change.environment
    succeeded: dict[str, str | None] = {}
    if change.commit:
        rows = (
            Deployment.objects.filter(SUCCEEDED, service=change.service, release__commit_sha=change.commit)
            .exclude(environment=environment)
            .values("environment__slug")
            .annotate(at=Max("finished_at"))
        )
        succeeded = {row["environment__slug"]: _iso(row["at"]) for row in rows}
    requester = change.requester
    roles: list[str] = []
    if requester is not None:
        roles = sorted(
            Membership.objects.filter(user=requester, team_id=change.service.owner_id).values_list("role", flat=True)
        )
    return {
        "environment": {
            "slug": environment.slug,
            "name": environment.name,
            "protected": environment.protected,
            "order": environment.order,
        },
        "strategy": change.strategy,
        "version": change.version,
        "commit": change.commit,
        "succeeded_in": succeeded,
        "requester": {
            "username": requester.get_username() if requester else "",
            "platform_admin": _is_platform_admin(requester),
            "roles": roles,
        },
        # Approvals arrive with the approvals slice; until then no change has any.
        "approvals": [],
        # Break-glass (an emergency deploy an admin approved) arrives with approvals; until then never.
        "break_glass": False,
    }


@fact(
    "history",
    sample={
        "deployments_7d": 3,
        "failures_7d": 1,
        "rollbacks_7d": 1,
        "deployments_30d": 12,
        "failures_30d": 2,
        "rollbacks_30d": 1,
    },
)
def _history(change: Change) -> dict[str, int]:
    week, month = change.at - timedelta(days=7), change.at - timedelta(days=30)
    deployments = Deployment.objects.filter(service=change.service, created_at__gte=month, created_at__lte=change.at)
    if change.deployment is not None:
        deployments = deployments.exclude(pk=change.deployment.pk)
    failed, rolled_back = FAILED, ROLLED_BACK
    recent = Q(created_at__gte=week)
    counts = deployments.aggregate(
        deployments_7d=Count("pk", filter=recent),
        failures_7d=Count("pk", filter=recent & failed),
        rollbacks_7d=Count("pk", filter=recent & rolled_back),
        deployments_30d=Count("pk"),
        failures_30d=Count("pk", filter=failed),
        rollbacks_30d=Count("pk", filter=rolled_back),
    )
    return {name: int(value or 0) for name, value in counts.items()}


@fact(
    "now",
    sample={
        "timestamp": "2026-01-06T10:15:00Z",
        "time_zone": "UTC",
        "date": "2026-01-06",
        "weekday": 2,
        "day": "Tuesday",
        "hour": 10,
        "minute": 15,
    },
)
def _now(change: Change) -> dict[str, Any]:
    local = change.at.astimezone(zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"]))
    return {
        "timestamp": _iso(change.at),
        "time_zone": settings.GOVERNANCE["ORG_TIME_ZONE"],
        "date": local.date().isoformat(),
        "weekday": local.isoweekday(),  # 1 is Monday, 7 is Sunday
        "day": DAYS[local.weekday()],  # not strftime, which follows the process's locale
        "hour": local.hour,
        "minute": local.minute,
    }


@fact(
    "freeze",
    sample=[
        {
            "name": "Weekend freeze",
            "reason": "Nobody is on call to watch a Friday-afternoon deploy.",
            "recurring": True,
            "time_zone": "Europe/London",
            "starts_at": "2026-01-09T14:00:00Z",
            "ends_at": "2026-01-12T08:00:00Z",
            "ends_local": "2026-01-12 08:00 Europe/London",
        }
    ],
)
def _freeze(change: Change) -> list[dict[str, Any]]:
    """The freeze windows in force for this service and environment at the change's time (empty when none)."""
    from governance import selectors

    return selectors.freeze_windows_in_force(service=change.service, environment=change.environment, at=change.at)


LISTED_INCIDENTS = 20


@fact(
    "incidents",
    sample={
        "open": [
            {
                "id": 42,
                "title": "Checkout errors after the 14:00 deploy",
                "severity": "SEV2",
                "status": "investigating",
                "started_at": "2026-01-06T09:50:00Z",
            }
        ],
        "open_count": 1,
        "worst_open_severity": "SEV2",
    },
)
def _incidents(change: Change) -> dict[str, Any]:
    """The service's open incidents (not resolved yet), worst first: "no deploys into a SEV1 but the fix"."""
    from incidents.models import OPEN_STATUSES, Incident

    open_incidents = Incident.objects.filter(
        services=change.service.pk, status__in=OPEN_STATUSES, started_at__lte=change.at
    )
    rows = list(
        open_incidents.order_by("severity", "-started_at", "-pk").values(
            "pk", "title", "severity", "status", "started_at"
        )[:LISTED_INCIDENTS]
    )
    # Counted apart only when the list is cut short, so the usual document costs one query for this group.
    count = open_incidents.count() if len(rows) == LISTED_INCIDENTS else len(rows)
    return {
        "open": [
            {
                "id": row["pk"],
                "title": row["title"],
                "severity": row["severity"],
                "status": row["status"],
                "started_at": _iso(row["started_at"]),
            }
            for row in rows
        ],
        "open_count": count,
        "worst_open_severity": rows[0]["severity"] if rows else None,
    }
