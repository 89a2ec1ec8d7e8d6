"""The fact document: everything a deploy policy may know about a service and a proposed change.

It is the contract policies are written against (docs/governance.md describes it field by field): a plain dict of
JSON values, so a decision can keep the very document that was judged. Each top-level group comes from one provider
function registered with `@fact(name, sample=...)`; a later capability (scorecards, incidents, SLOs) adds its group
by adding one provider here. `sample` is a complete, plausible value of the group: policy tests start from it, and an
expression is checked against it when saved, so a reference to a field the document never has is refused then.

A group that says something about a service whatever change is proposed also registers `many`: the same group for
many services at once in a constant number of queries. `service_documents()` builds the document of services with no
change proposed (scorecards judge those) from the groups that have it; `change` and `freeze` belong to a change only.
"""

from __future__ import annotations

import copy
import zoneinfo
from collections.abc import Callable, Sequence
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
# (service ids, moment) -> {service id: the group's value}; every id asked for gets a value.
ManyProvider = Callable[[Sequence[int], datetime], dict[int, Any]]

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
    break_glass_reason: str = ""

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
            break_glass_reason=deployment.break_glass_reason,
        )


@dataclass(frozen=True)
class _Group:
    name: str
    build: Provider
    sample: Any
    open_maps: tuple[str, ...]  # dotted paths under the group whose keys are data (environment slugs), not fields
    many: ManyProvider | None = None  # the group for many services at once; None for a change's own groups


_GROUPS: dict[str, _Group] = {}


def fact(
    name: str, *, sample: Any, open_maps: tuple[str, ...] = (), many: ManyProvider | None = None
) -> Callable[[Provider], Provider]:
    """Register `build(change)` as the provider of the top-level group `name` (and `many` as its bulk form)."""

    def register(build: Provider) -> Provider:
        _GROUPS[name] = _Group(name=name, build=build, sample=sample, open_maps=open_maps, many=many)
        return build

    return register


def facts_build(*, change: Change) -> Facts:
    """The fact document for one change; a handful of queries whatever the service's history."""
    return {name: group.build(change) for name, group in _GROUPS.items()}


def service_documents(*, service_ids: Sequence[int], at: datetime | None = None) -> dict[int, Facts]:
    """The fact document of each service with no change proposed: the groups that describe a service (not `change`
    nor `freeze`), a constant number of queries however many services; services that do not exist are left out."""
    at = at or timezone.now()
    ids = list(dict.fromkeys(service_ids))
    built = {name: group.many(ids, at) for name, group in _GROUPS.items() if group.many is not None}
    service_group = built.get("service", {})
    return {pk: {name: values[pk] for name, values in built.items()} for pk in ids if pk in service_group}


def service_group_names() -> tuple[str, ...]:
    """The groups a service document has (what a scorecard rule may read)."""
    return tuple(name for name, group in _GROUPS.items() if group.many is not None)


def sample_document() -> Facts:
    """A complete fact document with every field present (a fresh copy each time: callers merge into it)."""
    return {name: copy.deepcopy(group.sample) for name, group in _GROUPS.items()}


def open_maps() -> frozenset[str]:
    """Dotted paths whose keys are data; "" in a group's `open_maps` makes the whole group such a map."""
    return frozenset(f"{name}.{path}" if path else name for name, group in _GROUPS.items() for path in group.open_maps)


def group_names() -> tuple[str, ...]:
    return tuple(_GROUPS)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z") if moment else None


def _is_platform_admin(user: User | None) -> bool:
    return bool(user and user.is_staff)


def _service_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from scaffolder import registry  # the scaffolder builds on the catalog; read its registry, not its models
    from techdocs.models import ADR, Runbook

    def count(queryset: Any) -> Coalesce:
        grouped = queryset.filter(service=OuterRef("pk")).order_by().values("service").annotate(n=Count("pk"))
        return Coalesce(Subquery(grouped.values("n")[:1]), 0)

    latest_review = (
        Runbook.objects.filter(service=OuterRef("pk")).order_by().values("service").annotate(at=Max("last_reviewed_at"))
    )
    # One row per service with its owner, system and document counts; the tags are the only other query.
    rows = (
        Service.objects.filter(pk__in=ids)
        .values(
            "pk",
            "slug",
            "name",
            "tier",
            "lifecycle",
            "language",
            "golden_path",
            "golden_path_version",
            "on_call_url",
            "chat_channel",
            "owner__on_call_url",
            "owner__chat_channel",
        )  # fmt: skip
        .annotate(
            owner_slug=F("owner__slug"),
            system_slug=F("system__slug"),
            runbook_count=count(Runbook.objects.all()),
            stale_count=count(Runbook.objects.filter(Q(review_due_at__isnull=True) | Q(review_due_at__lt=at))),
            adr_count=count(ADR.objects.all()),
            runbook_reviewed=Subquery(latest_review.values("at")[:1]),
            # Kept by ownership reviews (reviews.Ownership), read by relation: no row means never verified.
            verified_at=F("ownership__verified_at"),
            orphaned_since=F("ownership__orphaned_since"),
        )
    )
    tags: dict[int, list[str]] = {}
    for service_id, name in Tag.objects.filter(services__in=ids).values_list("services", "name").order_by("name"):
        tags.setdefault(service_id, []).append(name)
    documents = {}
    for row in rows:
        path = registry.golden_path_get(row["golden_path"]) if row["golden_path"] else None
        latest = path.version if path else None
        documents[row["pk"]] = {
            "slug": row["slug"],
            "name": row["name"],
            "owner": row["owner_slug"],
            "system": row["system_slug"],
            "tier": row["tier"],
            "lifecycle": row["lifecycle"],
            "tags": tags.get(row["pk"], []),
            "language": row["language"],
            "golden_path": {
                "name": row["golden_path"] or None,
                "version": row["golden_path_version"] or None,
                "latest": latest,
                "behind": bool(latest and row["golden_path_version"] and latest != row["golden_path_version"]),
            },
            # As the service page shows them: the service's own, or else its owning team's.
            "on_call_url": row["on_call_url"] or row["owner__on_call_url"],
            "chat_channel": row["chat_channel"] or row["owner__chat_channel"],
            "runbooks": row["runbook_count"],
            "stale_runbooks": row["stale_count"],
            "runbook_last_reviewed": _iso(row["runbook_reviewed"]),
            "adrs": row["adr_count"],
            "last_ownership_review": _iso(row["verified_at"]),
            "orphaned": row["orphaned_since"] is not None,
        }
    return documents


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
        "on_call_url": "https://oncall.example.com/payments",
        "chat_channel": "#payments",
        "runbooks": 2,
        "stale_runbooks": 0,
        "runbook_last_reviewed": "2026-01-02T09:00:00Z",
        "adrs": 1,
        "last_ownership_review": "2026-01-05T09:30:00Z",
        "orphaned": False,
    },
    many=_service_many,
)
def _service(change: Change) -> dict[str, Any]:
    return _service_many([change.service.pk], change.at)[change.service.pk]


@fact(
    "change",
    sample={
        "environment": {"slug": "production", "name": "Production", "protected": True, "order": 2},
        "strategy": "canary",
        "version": "v1.4.0",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "succeeded_in": {"staging": "2026-01-05T09:30:00Z"},
        "requester": {"username": "olivia", "platform_admin": False, "roles": ["member"]},
        "approvals": [{"username": "lena", "roles": ["lead"], "platform_admin": False, "at": "2026-01-06T10:20:00Z"}],
        "break_glass": False,
        "break_glass_reason": "",
    },
    open_maps=("succeeded_in",),
)
def _change(change: Change) -> dict[str, Any]:
    from governance.models import Approval
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
        "approvals": _approvals(change, Approval),
        "break_glass": bool(change.break_glass_reason),
        "break_glass_reason": change.break_glass_reason,
    }


def _history_counts(at: datetime) -> dict[str, Count]:
    recent = Q(created_at__gte=at - timedelta(days=7))
    return {
        "deployments_7d": Count("pk", filter=recent),
        "failures_7d": Count("pk", filter=recent & FAILED),
        "rollbacks_7d": Count("pk", filter=recent & ROLLED_BACK),
        "deployments_30d": Count("pk"),
        "failures_30d": Count("pk", filter=FAILED),
        "rollbacks_30d": Count("pk", filter=ROLLED_BACK),
    }


def _recent_deployments(at: datetime) -> Any:
    return Deployment.objects.filter(created_at__gte=at - timedelta(days=30), created_at__lte=at)


def _history_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, int]]:
    counts = _history_counts(at)
    documents = {pk: dict.fromkeys(counts, 0) for pk in ids}
    rows = _recent_deployments(at).filter(service__in=ids).values("service_id").annotate(**counts).order_by()
    for row in rows:
        service_id = row.pop("service_id")
        documents[service_id] = {name: int(value or 0) for name, value in row.items()}
    return documents


def _approvals(change: Change, model: Any) -> list[dict[str, Any]]:
    """Approvals given so far to this deployment (a break-glass approval before its policy step), as who the
    approvers were when they approved. A dry run has none."""
    if change.deployment is None or change.deployment.pk is None:
        return []
    rows = model.objects.filter(request__deployment=change.deployment, verdict="approve").order_by("created_at", "pk")
    return [
        {
            "username": row.username,
            "roles": row.owner_roles,
            "platform_admin": row.platform_admin,
            "at": _iso(row.created_at),
        }
        for row in rows
    ]


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
    many=_history_many,
)
def _history(change: Change) -> dict[str, int]:
    deployments = _recent_deployments(change.at).filter(service=change.service)
    if change.deployment is not None:
        deployments = deployments.exclude(pk=change.deployment.pk)
    counts = deployments.aggregate(**_history_counts(change.at))
    return {name: int(value or 0) for name, value in counts.items()}


def _now_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    now = _now_at(at)
    return {pk: now for pk in ids}  # one dict shared: documents are read, never written


@fact(
    "now",
    many=_now_many,
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
    return _now_at(change.at)


def _now_at(at: datetime) -> dict[str, Any]:
    local = at.astimezone(zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"]))
    return {
        "timestamp": _iso(at),
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


def _delivery_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from deployments.models import DeployTarget

    documents: dict[int, dict[str, Any]] = {pk: {"strategies": {}, "protected_strategies": []} for pk in ids}
    targets = DeployTarget.objects.filter(service__in=ids).values_list(
        "service_id", "environment__slug", "environment__protected", "strategy"
    )
    for service_id, environment, protected, strategy in targets.order_by("environment__order", "environment__slug"):
        document = documents[service_id]
        document["strategies"][environment] = strategy
        if protected and strategy not in document["protected_strategies"]:
            document["protected_strategies"].append(strategy)
    for document in documents.values():
        document["protected_strategies"].sort()
    return documents


@fact(
    "delivery",
    sample={"strategies": {"staging": "rolling", "production": "canary"}, "protected_strategies": ["canary"]},
    open_maps=("strategies",),
    many=_delivery_many,
)
def _delivery(change: Change) -> dict[str, Any]:
    """How the service is set up to deploy: each environment's deploy target strategy."""
    return _delivery_many([change.service.pk], change.at)[change.service.pk]


def _scorecards_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from scorecards.models import Score  # scorecards build on governance: read their rows, as the service group does

    documents: dict[int, dict[str, Any]] = {pk: {} for pk in ids}
    rows = Score.objects.filter(service__in=ids, scorecard__enabled=True).values_list(
        "service_id", "scorecard__name", "level", "rank", "failing"
    )
    for service_id, name, level, rank, failing in rows.order_by():
        documents[service_id][name] = {
            "level": level or None,
            "rank": rank,
            "failing": sorted(item["rule"] for item in failing),
        }
    return documents


@fact(
    "scorecards",
    sample={"production-readiness": {"level": "Silver", "rank": 2, "failing": ["progressive-delivery"]}},
    open_maps=("",),
    many=_scorecards_many,
)
def _scorecards(change: Change) -> dict[str, Any]:
    """Where the service stands on each enabled scorecard, by the scorecard's name: as last scored by a worker."""
    return _scorecards_many([change.service.pk], change.at)[change.service.pk]


def _slo_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from monitoring import selectors
    from monitoring.models import SLO

    statuses = selectors.slo_statuses(list(SLO.objects.filter(service__in=ids)), now=at)  # two queries at most
    by_service: dict[int, list[Any]] = {pk: [] for pk in ids}
    for status in statuses:
        by_service[status.slo.service_id].append(status)
    return {pk: _slo_document(found) for pk, found in by_service.items()}


@fact(
    "slo",
    sample={
        "count": 2,
        "unknown": 0,
        "burning": True,
        "exhausted": False,
        "alert": "ticket",
        "budget_remaining_min": 0.42,
        "objectives": {
            "checkout-availability": {
                "target": 0.999,
                "window_days": 28,
                "budget_remaining": 0.42,
                "burn_rate_1h": 2.5,
                "alert": "ticket",
                "status": "burning",
            }
        },
    },
    open_maps=("objectives",),
    many=_slo_many,
)
def _slo(change: Change) -> dict[str, Any]:
    """The service's SLOs: "no production deploys but fixes while the error budget is spent" reads `slo.exhausted`."""
    return _slo_many([change.service.pk], change.at)[change.service.pk]


def _slo_document(statuses: list[Any]) -> dict[str, Any]:
    """`burning` is true while a page or ticket burn-rate alert fires; an SLO whose SLI cannot be read counts in
    `unknown` and is neither burning nor within budget."""
    from monitoring import burn

    known = [s.budget.remaining for s in statuses if s.status != burn.UNKNOWN and s.budget.remaining is not None]
    alerts = {s.budget.alert for s in statuses if s.status != burn.UNKNOWN}
    return {
        "count": len(statuses),
        "unknown": sum(s.status == burn.UNKNOWN for s in statuses),
        "burning": any(s.status in (burn.BURNING, burn.EXHAUSTED) and s.budget.alert for s in statuses),
        "exhausted": any(s.status == burn.EXHAUSTED for s in statuses),
        "alert": "page" if "page" in alerts else ("ticket" if "ticket" in alerts else ""),
        "budget_remaining_min": round(min(known), 4) if known else None,
        "objectives": {
            s.slo.name: {
                "target": s.slo.target,
                "window_days": s.slo.window_days,
                "budget_remaining": _rounded(s.budget.remaining, 4),
                "burn_rate_1h": _rounded(s.budget.burn_rates.get("1h"), 3),
                "alert": s.budget.alert,
                "status": s.status,
            }
            for s in statuses
        },
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
