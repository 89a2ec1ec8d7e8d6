"""Reads: health checks with their status and uptime, and SLOs with their budgets, in a fixed number of queries."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum, Window
from django.db.models.functions import Coalesce, RowNumber, Trunc
from django.utils import timezone

from catalog.models import Service
from deployments.models import DeployTarget
from monitoring import burn, replicas
from monitoring.models import (
    SLO,
    Anomaly,
    HealthCheck,
    HealthStatus,
    MetricRollup,
    MetricSample,
    ProbeResult,
    ProbeRollup,
    ProbeSource,
    SliSample,
    SliState,
)

RECENT = 5  # results that decide a check's status
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class Health:
    status: str
    reason: str
    last_checked_at: datetime | None
    last_error: str
    last_latency_ms: int | None
    uptime: dict[str, float | None]  # percent of probes that passed per window; None where no probe ran


def health_checks_visible() -> QuerySet[HealthCheck]:
    """Every check: the catalog, its health included, is readable by every signed-in user."""
    return HealthCheck.objects.select_related("service__owner", "environment").order_by(
        "service__slug", "environment__order", "environment__slug"
    )


def stale_after(check: HealthCheck) -> timedelta:
    """How old the latest result may be before the check's status is unknown: two missed runs and some slack."""
    return timedelta(seconds=2 * check.interval_seconds + check.timeout_ms / 1000 + 30)


def _status(check: HealthCheck, recent: list[ProbeResult], now: datetime) -> tuple[str, str]:
    if not check.enabled:
        return HealthStatus.UNKNOWN, "paused"
    if not recent:
        return HealthStatus.UNKNOWN, "no results yet"
    latest = recent[0]
    if now - latest.checked_at > stale_after(check):
        return HealthStatus.UNKNOWN, "no recent results"
    if all(result.ok for result in recent):
        return HealthStatus.HEALTHY, "the only probe passed" if len(
            recent
        ) == 1 else f"last {len(recent)} probes passed"
    if not latest.ok and (len(recent) == 1 or not recent[1].ok):
        return HealthStatus.DOWN, latest.error or "failing"
    failed = sum(1 for result in recent if not result.ok)
    return HealthStatus.DEGRADED, f"{failed} of the last {len(recent)} probes failed"


def _uptime(checks: Sequence[HealthCheck], now: datetime) -> dict[int, dict[str, float | None]]:
    """Raw results where they are certainly all kept (the last retention-minus-one days), hourly rollups before."""
    ids = [check.pk for check in checks]
    boundary = now.replace(minute=0, second=0, microsecond=0) - timedelta(
        days=settings.MONITORING_RAW_RETENTION_DAYS - 1
    )
    totals: dict[int, dict[str, list[int]]] = defaultdict(lambda: {name: [0, 0] for name in WINDOWS})
    raw_aggregates = {}
    for name, span in WINDOWS.items():
        since = max(now - span, boundary)
        raw_aggregates[f"total_{name}"] = Count("id", filter=Q(checked_at__gte=since))
        raw_aggregates[f"ok_{name}"] = Count("id", filter=Q(checked_at__gte=since, ok=True))
    raw = (
        ProbeResult.objects.filter(health_check_id__in=ids, checked_at__gte=boundary)
        .values("health_check_id")
        .annotate(**raw_aggregates)
    )
    row: dict[str, Any]
    for row in raw:  # type: ignore[assignment]  # the stubs type values() rows without the annotations
        for name in WINDOWS:
            totals[row["health_check_id"]][name][0] += row[f"total_{name}"]
            totals[row["health_check_id"]][name][1] += row[f"ok_{name}"]
    older = {name: now - span for name, span in WINDOWS.items() if now - span < boundary}
    if older:
        rollup_aggregates = {}
        for name, since in older.items():
            in_window = Q(hour__gte=since)
            rollup_aggregates[f"total_{name}"] = Sum("total", filter=in_window)
            rollup_aggregates[f"ok_{name}"] = Sum("ok", filter=in_window)
        rolled = (
            ProbeRollup.objects.filter(health_check_id__in=ids, hour__lt=boundary, hour__gte=min(older.values()))
            .values("health_check_id")
            .annotate(**rollup_aggregates)
        )
        for row in rolled:  # type: ignore[assignment]
            for name in older:
                totals[row["health_check_id"]][name][0] += row[f"total_{name}"] or 0
                totals[row["health_check_id"]][name][1] += row[f"ok_{name}"] or 0
    return {
        check_id: {name: (100.0 * ok / total if total else None) for name, (total, ok) in by_window.items()}
        for check_id, by_window in totals.items()
    }


def _recent_results(checks: Sequence[HealthCheck]) -> dict[int, list[ProbeResult]]:
    """The last RECENT results of each check, newest first: one query with a window function."""
    ranked = (
        ProbeResult.objects.filter(health_check_id__in=[check.pk for check in checks])
        .annotate(rank=Window(RowNumber(), partition_by=[F("health_check_id")], order_by=F("checked_at").desc()))
        .filter(rank__lte=RECENT)
        .order_by("health_check_id", "rank")
    )
    recent: dict[int, list[ProbeResult]] = defaultdict(list)
    for result in ranked:
        recent[result.health_check_id].append(result)
    return recent


def health_for_checks(checks: Sequence[HealthCheck], *, now: datetime | None = None) -> dict[int, Health]:
    """Status and uptime of each check, in three queries whatever the number of checks."""
    now = now or timezone.now()
    if not checks:
        return {}
    recent = _recent_results(checks)
    uptime = _uptime(checks, now)
    health = {}
    for check in checks:
        results = recent.get(check.pk, [])
        status, reason = _status(check, results, now)
        latest = results[0] if results else None
        health[check.pk] = Health(
            status=status,
            reason=reason,
            last_checked_at=latest.checked_at if latest else None,
            last_error=latest.error if latest else "",
            last_latency_ms=latest.latency_ms if latest else None,
            uptime=uptime.get(check.pk, dict.fromkeys(WINDOWS)),
        )
    return health


def service_checks(service: Service, *, page_parts: object = None) -> list[HealthCheck]:
    """The service's checks with their environments, in promotion order: one query, then kept on the instance, as
    the service page's health, metrics and SLO sections each need them (read three times, they were three queries).
    None when the service page's `page_parts` (catalog.selectors.service_page_parts) says it has none."""
    checks: list[HealthCheck] | None = getattr(service, "_monitoring_checks", None)
    if checks is None and _known_without(page_parts, "health_checks"):
        checks = service._monitoring_checks = []  # type: ignore[attr-defined]
    if checks is None:
        checks = list(
            HealthCheck.objects.filter(service=service)
            .select_related("environment")
            .order_by("environment__order", "environment__slug")
        )
        service._monitoring_checks = checks  # type: ignore[attr-defined]
    return checks


def _known_without(page_parts: object, part: str) -> bool:
    """Whether the service page's parts (a set; anything else means not known) say the service has no `part`."""
    return isinstance(page_parts, frozenset | set) and part not in page_parts


def service_health(service: Service, *, page_parts: object = None) -> list[tuple[HealthCheck, Health]]:
    """The service's checks in promotion order, each with its health: four queries (none for a service the page's
    `page_parts` say has no check)."""
    checks = service_checks(service, page_parts=page_parts)
    health = health_for_checks(checks)
    return [(check, health[check.pk]) for check in checks]


# Worst first. Unknown ranks below the known troubles but above healthy, so that it is never hidden behind green.
SEVERITY = [HealthStatus.DOWN, HealthStatus.DEGRADED, HealthStatus.UNKNOWN, HealthStatus.HEALTHY]


@dataclass(frozen=True)
class ServiceHealth:
    status: str
    environment: str  # the environment whose check is the worst, named on the badge
    checks: int
    simulated: bool  # some of its checks are simulated (made-up results): the badge says so


def health_for_services(service_ids: Sequence[int], *, now: datetime | None = None) -> dict[int, ServiceHealth]:
    """The worst status across each service's checks, for a list of services: two queries whatever their number.

    Services without checks are absent from the answer. Uptime is not computed: a list shows status only.
    """
    now = now or timezone.now()
    if not service_ids:
        return {}
    checks = list(
        HealthCheck.objects.filter(service_id__in=service_ids)
        .select_related("environment")
        .order_by("service_id", "environment__order", "environment__slug")
    )
    if not checks:
        return {}
    recent = _recent_results(checks)
    worst: dict[int, tuple[int, str]] = {}
    counts: dict[int, int] = defaultdict(int)
    simulated: set[int] = set()
    for check in checks:
        if check.source == ProbeSource.SIMULATED:
            simulated.add(check.service_id)
        status, _ = _status(check, recent.get(check.pk, []), now)
        rank = SEVERITY.index(HealthStatus(status))
        counts[check.service_id] += 1
        if check.service_id not in worst or rank < worst[check.service_id][0]:
            worst[check.service_id] = (rank, check.environment.name)
    return {
        service_id: ServiceHealth(
            status=SEVERITY[rank],
            environment=environment,
            checks=counts[service_id],
            simulated=service_id in simulated,
        )
        for service_id, (rank, environment) in worst.items()
    }


def environments_with_followed_replicas(service: Service) -> set[int]:
    """Ids of the environments where `service` deploys with a runtime that says where its replicas run, so that a
    health check there can follow them."""
    return set(
        DeployTarget.objects.filter(service=service, runtime__in=replicas.listing_runtimes()).values_list(
            "environment_id", flat=True
        )
    )


def checks_due(*, now: datetime, limit: int) -> QuerySet[HealthCheck]:
    """Enabled checks whose next run has come, oldest first; lock them (skipping rows another worker holds)."""
    return (
        HealthCheck.objects.filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at")
        .select_for_update(skip_locked=True)[:limit]
    )


# --- SLOs ---------------------------------------------------------------------------------------------------------

SLI_STALE_AFTER = timedelta(minutes=5)


@dataclass
class SloStatus:
    """What the pages, the API and the fact document say about one SLO now."""

    slo: SLO
    budget: burn.Budget
    status: str  # burn.OK, BURNING, EXHAUSTED or UNKNOWN
    reason: str


def slo_statuses(slos: Sequence[SLO], *, now: datetime | None = None) -> list[SloStatus]:
    """Budget, burn rates and alert of each SLO, from one aggregate query over their samples."""
    now = now or timezone.now()
    slos = list(slos)
    if not slos:
        return []
    longest = max(slo.window_days for slo in slos)
    aggregates: dict[str, Any] = {}
    for name, span in burn.WINDOWS.items():
        aggregates[f"good_{name}"] = Sum("good", filter=Q(at__gt=now - span))
        aggregates[f"total_{name}"] = Sum("total", filter=Q(at__gt=now - span))
    for days in {slo.window_days for slo in slos}:
        aggregates[f"good_w{days}"] = Sum("good", filter=Q(at__gt=now - timedelta(days=days)))
        aggregates[f"total_w{days}"] = Sum("total", filter=Q(at__gt=now - timedelta(days=days)))
    rows: dict[int, dict[str, Any]] = {
        row["slo_id"]: row  # type: ignore[misc]  # the stubs type values() rows without the annotations
        for row in SliSample.objects.filter(slo__in=slos, at__gt=now - timedelta(days=longest), at__lte=now)
        .values("slo_id")
        .annotate(**aggregates)
    }
    statuses = []
    for slo in slos:
        row: dict[str, Any] = rows.get(slo.pk, {})

        def pair(key: str, row: dict[str, Any] = row) -> tuple[float, float]:
            return float(row.get(f"good_{key}") or 0.0), float(row.get(f"total_{key}") or 0.0)

        budget = burn.budget_from(
            target=slo.target,
            window=pair(f"w{slo.window_days}"),
            windows={name: pair(name) for name in burn.WINDOWS},
        )
        statuses.append(_slo_status(slo, budget, now))
    return statuses


def _slo_status(slo: SLO, budget: burn.Budget, now: datetime) -> SloStatus:
    if slo.sli_state == SliState.UNKNOWN:
        reason = slo.sli_error or "not evaluated yet"
        return SloStatus(slo, budget, burn.UNKNOWN, f"The SLI cannot be read: {reason}.")
    if slo.evaluated_at is None or now - slo.evaluated_at > SLI_STALE_AFTER:
        return SloStatus(slo, budget, burn.UNKNOWN, "Not evaluated in the last 5 minutes (are the workers running?).")
    remaining = budget.remaining
    if remaining is None:
        return SloStatus(slo, budget, burn.UNKNOWN, "No events in the window yet.")
    if remaining <= 0:
        return SloStatus(slo, budget, burn.EXHAUSTED, "The error budget of the window is spent.")
    if budget.alert == "page":
        return SloStatus(slo, budget, burn.BURNING, "Burning fast: page (14.4× over 1 h and 5 min, or 6× over 6 h).")
    if budget.alert == "ticket":
        return SloStatus(slo, budget, burn.BURNING, "Burning: ticket (1× over 3 days and 6 h).")
    return SloStatus(slo, budget, burn.OK, "Within budget.")


def service_slos(service: Service, *, now: datetime | None = None, page_parts: object = None) -> list[SloStatus]:
    """The service's SLOs with their status (two queries; none for a service the page's `page_parts` say has no
    SLO)."""
    slos = [] if _known_without(page_parts, "slos") else list(SLO.objects.filter(service=service))
    return slo_statuses(slos, now=now)


def slo_budget_history(slo: SLO, *, now: datetime | None = None, points: int = 28) -> list[tuple[datetime, float]]:
    """Error budget remaining at the end of each day (or 1/points of the window) of the SLO's window, oldest first.

    At each point the budget counts the events from the window's start to that point, so the line shows how the
    window's budget was spent (one query, grouped by bucket).
    """
    now = now or timezone.now()
    start = now - timedelta(days=slo.window_days)
    step = (now - start) / points
    rows = (
        SliSample.objects.filter(slo=slo, at__gt=start, at__lte=now)
        .annotate(bucket=Trunc("at", "hour"))
        .values("bucket")
        .annotate(good=Sum("good"), total=Sum("total"))
        .order_by("bucket")
    )
    by_index: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        index = min(int((row["bucket"] - start) / step), points - 1)
        by_index[index][0] += row["good"] or 0.0
        by_index[index][1] += row["total"] or 0.0
    history = []
    good = total = 0.0
    allowed = 1 - slo.target
    for index in range(points):
        good += by_index[index][0]
        total += by_index[index][1]
        if total > 0:
            history.append((start + step * (index + 1), 1 - ((total - good) / total) / allowed))
    return history


# --- SLI series, anomalies and the deployments before them ----------------------------------------------------------


def slo_error_series(slo: SLO, *, since: datetime, now: datetime, bucket: timedelta) -> list[tuple[datetime, float]]:
    """The SLO's error ratio per `bucket` (aligned to the epoch), oldest first; buckets without events are left out."""
    seconds = int(bucket.total_seconds())
    totals: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for at, good, total in SliSample.objects.filter(slo=slo, at__gt=since, at__lte=now).values_list(
        "at", "good", "total"
    ):
        start = datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, tz=at.tzinfo)
        totals[start][0] += good
        totals[start][1] += total
    return [(at, (total - good) / total) for at, (good, total) in sorted(totals.items()) if total > 0]


def deployment_preceding(
    *, service: Service, at: datetime, within: timedelta, environment_id: int | None = None
) -> Any:
    """The latest deployment of `service` or of a service it depends on that started in `within` before `at` (in
    `environment_id` only, when given: a metric of production follows production's deployments)."""
    from catalog.models import Dependency
    from deployments.models import Deployment

    services = [service.pk, *Dependency.objects.filter(source=service).values_list("target_id", flat=True)]
    deployments = Deployment.objects.filter(service__in=services, started_at__gt=at - within, started_at__lte=at)
    if environment_id is not None:
        deployments = deployments.filter(environment_id=environment_id)
    return deployments.select_related("service").order_by("-started_at").first()


def service_anomalies(service: Service, *, limit: int = 10, kind: str = "") -> list[Anomaly]:
    """The service's latest anomalies, in its SLOs ("slo"), its scraped metrics ("metric") or both (""), with their
    preceding deployment (one query)."""
    where = {"slo": Q(slo__service=service), "metric": Q(health_check__service=service)}
    return list(
        Anomaly.objects.filter(where.get(kind, where["slo"] | where["metric"]))
        .select_related("slo", "health_check__environment", "deployment", "deployment__service")
        .order_by("-started_at")[:limit]
    )


def deployments_between(*, service: Service, since: datetime, until: datetime) -> list[Any]:
    """Deployments of `service` and of the services it depends on that started in the span, oldest first."""
    from catalog.models import Dependency
    from deployments.models import Deployment

    services = [service.pk, *Dependency.objects.filter(source=service).values_list("target_id", flat=True)]
    return list(
        Deployment.objects.filter(service__in=services, started_at__gt=since, started_at__lte=until)
        .select_related("service", "environment", "release")
        .order_by("started_at")
    )


# --- correlation: one signal for dependent services in trouble together -------------------------------------------

SIGNAL_WINDOW = timedelta(hours=2)


@dataclass
class Signal:
    """Services linked by dependencies that are unhealthy at the same time, grouped, with the likeliest origin."""

    members: list[Service]
    origin: Service
    why: str


def correlated_signal(
    service: Service,
    *,
    now: datetime | None = None,
    statuses: list[SloStatus] | None = None,
    checks: list[HealthCheck] | None = None,
) -> Signal | None:
    """The signal `service` is part of, if it and at least one service linked to it by dependencies (either way,
    transitively) have an anomaly started in the last two hours or a burning or exhausted SLO; None otherwise.

    The origin is the deepest unhealthy dependency: a member that depends on no other member (trouble flows up from
    what a service depends on). Among several, the one whose anomaly followed a deployment, else the one most
    members depend on. Four queries whatever the graph's size.

    A service that is itself healthy is in no signal, and most are: that is settled first from its own SLOs and
    scraped metrics' anomalies (two queries without SLOs, at most three with them; one when the caller passes the
    SLOs' `statuses`, as the service page does; none when it also passes the service's `checks` and there are neither
    SLOs nor checks), before reading the dependency graph, which is read whole (300,000 edges at 100,000 services).
    """
    from catalog.models import Dependency

    now = now or timezone.now()
    own_slos = (
        [status.slo for status in statuses] if statuses is not None else list(SLO.objects.filter(service=service))
    )
    since = now - SIGNAL_WINDOW
    # An anomaly belongs to an SLO or a check: a service with neither (the caller passes its `checks`) has none.
    could_have_one = bool(own_slos) or checks is None or bool(checks)
    own_recent = (
        could_have_one
        and Anomaly.objects.filter(
            Q(slo__in=own_slos) | Q(health_check__service=service), started_at__gt=since
        ).exists()
    )
    if statuses is None and not own_recent:
        statuses = slo_statuses(own_slos, now=now)
    if not own_recent and not any(s.status in (burn.BURNING, burn.EXHAUSTED) for s in statuses or []):
        return None
    edges = list(Dependency.objects.values_list("source_id", "target_id"))
    linked: dict[int, set[int]] = defaultdict(set)
    for source, target in edges:
        linked[source].add(target)
        linked[target].add(source)
    component, frontier = {service.pk}, [service.pk]
    while frontier:
        current = frontier.pop()
        for other in linked[current] - component:
            component.add(other)
            frontier.append(other)
    if len(component) < 2:
        return None
    recent = Anomaly.objects.filter(
        Q(slo__service__in=component) | Q(health_check__service__in=component), started_at__gt=now - SIGNAL_WINDOW
    ).annotate(service_id=Coalesce("slo__service_id", "health_check__service_id"))
    deployed_after = set(recent.filter(deployment__isnull=False).values_list("service_id", flat=True))
    unhealthy = set(recent.values_list("service_id", flat=True)) | deployed_after
    statuses = slo_statuses(list(SLO.objects.filter(service__in=component)), now=now)
    unhealthy |= {s.slo.service_id for s in statuses if s.status in (burn.BURNING, burn.EXHAUSTED)}
    if service.pk not in unhealthy or len(unhealthy) < 2:
        return None
    outgoing: dict[int, set[int]] = defaultdict(set)
    for source, target in edges:
        outgoing[source].add(target)

    def below(pk: int) -> set[int]:  # unhealthy services `pk` depends on, directly or through healthy ones
        seen: set[int] = set()
        stack = [pk]
        while stack:
            for target in outgoing[stack.pop()] - seen:
                seen.add(target)
                stack.append(target)
        return (seen & unhealthy) - {pk}

    depends_on = {pk: below(pk) for pk in unhealthy}
    deepest = [pk for pk in unhealthy if not depends_on[pk]] or sorted(unhealthy)
    dependents = {pk: sum(pk in targets for targets in depends_on.values()) for pk in unhealthy}
    origin_pk = sorted(deepest, key=lambda pk: (pk not in deployed_after, -dependents[pk], pk))[0]
    members = {s.pk: s for s in Service.objects.filter(pk__in=unhealthy).order_by("name")}
    origin = members[origin_pk]
    why = "the deepest unhealthy dependency" if depends_on[origin_pk] == set() else "the first of a dependency cycle"
    if origin_pk in deployed_after:
        why += ", and its anomaly followed a deployment"
    return Signal(members=list(members.values()), origin=origin, why=why)


# --- scraped metrics, per hour ---------------------------------------------------------------------------------------


@dataclass
class HourOfMetrics:
    """One clock hour of a check's scraped metrics."""

    hour: datetime
    seconds: float
    requests: float
    errors: float
    buckets: list[list[Any]]

    @property
    def request_rate(self) -> float | None:
        return self.requests / self.seconds if self.seconds > 0 else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    def latency_ms(self, q: float) -> float | None:
        from monitoring.scrape import quantile

        value = quantile(q, self.buckets)
        return None if value is None else value * 1000


def metrics_by_hour(checks: Sequence[HealthCheck], *, since: datetime, now: datetime) -> dict[int, list[HourOfMetrics]]:
    """Each check's scraped metrics per clock hour since `since`, oldest first: hourly rollups where they exist and
    the raw samples after each check's latest rollup (the hours not rolled up yet). Two queries."""
    from monitoring.scrape import buckets_add

    ids = [check.pk for check in checks]
    hours: dict[int, dict[datetime, HourOfMetrics]] = defaultdict(dict)
    start = since.replace(minute=0, second=0, microsecond=0)
    for row in MetricRollup.objects.filter(health_check_id__in=ids, hour__gte=start, hour__lte=now).order_by("hour"):
        hours[row.health_check_id][row.hour] = HourOfMetrics(
            row.hour, row.seconds, row.requests, row.errors, row.buckets
        )
    covered = {check_id: max(by_hour) + timedelta(hours=1) for check_id, by_hour in hours.items()}
    raw_since = min([start, *covered.values()]) if len(covered) < len(ids) else min(covered.values())
    raw = MetricSample.objects.filter(health_check_id__in=ids, at__gte=max(raw_since, start), at__lte=now)
    for check_id, at, seconds, requests, errors, buckets in raw.values_list(
        "health_check_id", "at", "seconds", "requests", "errors", "buckets"
    ).order_by("at"):
        if at < covered.get(check_id, start):
            continue
        hour = at.replace(minute=0, second=0, microsecond=0)
        found = hours[check_id].get(hour)
        if found is None:
            hours[check_id][hour] = HourOfMetrics(hour, seconds, requests, errors, list(buckets))
        else:
            found.seconds += seconds
            found.requests += requests
            found.errors += errors
            found.buckets = buckets_add(found.buckets, buckets)
    return {check_id: [by_hour[hour] for hour in sorted(by_hour)] for check_id, by_hour in hours.items()}
