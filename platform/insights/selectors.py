"""DORA figures read from Runway's own deployment records, with aggregate SQL.

Definitions (docs/insights.md explains them and their edges):
- A deployment counts once it has an outcome: *succeeded* (Runway's, or reported as succeeded by a CD system) or
  *failed* (failed, rolling back, rolled back, rollback failed; or reported failed or rolled back). Pending, running
  and cancelled deployments never reached users with an outcome, so no figure counts them.
- A deployment happens at its `finished_at` (when it succeeded, or when its rollback ended), falling back to
  `started_at` for a failure still rolling back. Windows are whole calendar days in a time zone.
- Recovery runs from the failed deployment's start (when the bad change began to reach users) to its rollback's end,
  or, when it was not rolled back, to the next successful deployment of that service to that environment.
- Rework counts deployments rolled back (their rollback was an unplanned deployment), redeploys made to roll back
  (`rollback_of`), deployments of a release older than the one they replaced, and deployments an incident names as
  its fix; each deployment counts once.
- A deployment an incident names as its cause is a failure (a successful one stops counting as a success); its
  recovery runs from the incident's start (or the deployment's own, if it failed) to the incident's mitigation.
- Change lead time runs from the first (oldest) commit of the release's change set (insights.models.ChangeSet) to
  the deployment's success, for successes that shipped something new: not rework, not a redeploy of the release
  already there, and with a change set recorded. A commit dated after the success counts as zero.

On PostgreSQL one query gives a scope's whole-window figures, its weekly points and its breakdown (teams or
services), with GROUPING SETS: the database groups, counts and takes percentiles; Python only divides.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncDate, TruncWeek
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service, System
from deployments.models import Deployment, Environment, State
from incidents.models import IncidentDeployment
from insights import bands
from teams.models import Team

FAILURE_STATES = [State.FAILED, State.ROLLING_BACK, State.ROLLED_BACK, State.ROLLBACK_FAILED]
ROLLBACK_STATES = [State.ROLLING_BACK, State.ROLLED_BACK, State.ROLLBACK_FAILED]


def _reported(*statuses: str) -> Q:
    """A deploy reported by a CD system (deployments.services.deploy_event_record) with one of these outcomes."""
    return Q(state=State.EXTERNAL, runtime_state__reported_status__in=statuses)


RAW_SUCCESS = Q(state=State.SUCCEEDED) | _reported("succeeded")
RAW_FAILURE = Q(state__in=FAILURE_STATES) | _reported("failed", "rolled_back")


def _incident_links(relation: str) -> QuerySet[IncidentDeployment]:
    """The incidents that name the outer deployment as their cause or their fix, earliest incident first."""
    return IncidentDeployment.objects.filter(deployment_id=OuterRef("pk"), relation=relation).order_by(
        "incident__started_at", "incident_id"
    )


# A deployment that succeeded but was followed by an incident naming it as the cause is a failed change, not a
# successful deployment: it counts in the change fail rate, and not in the deployment frequency.
CAUSED_INCIDENT = Q(Exists(_incident_links(IncidentDeployment.Relation.CAUSE)))
SUCCESS = RAW_SUCCESS & ~CAUSED_INCIDENT
FAILURE = RAW_FAILURE | (RAW_SUCCESS & CAUSED_INCIDENT)
ROLLED_BACK = Q(state=State.ROLLED_BACK) | _reported("rolled_back")
REWORK = (
    Q(rollback_of__isnull=False)
    | Q(state__in=ROLLBACK_STATES)
    | _reported("rolled_back")
    # Release ids grow as Runway records releases: a smaller id than the one replaced is an older release.
    | Q(previous_release__isnull=False, release_id__lt=F("previous_release_id"))
    # Deployed to fix an incident: unplanned work.
    | Q(Exists(_incident_links(IncidentDeployment.Relation.FIX)))
)
MOMENT = Coalesce("finished_at", "started_at", "created_at")
# A success that shipped new commits: not rework, not the release already there, with a recorded change set.
LEAD = (
    SUCCESS & ~REWORK & ~Q(previous_release_id=F("release_id")) & Q(release__change_set__first_commit_at__isnull=False)
)


class Epoch(Func):
    """Seconds in an interval (PostgreSQL)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's PERCENTILE_CONT in Python, for databases without it: linear interpolation between the nearest
    values, so the figures agree whichever database computed them."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Scopes and windows


@dataclass(frozen=True)
class Scope:
    """What the figures are about: the whole organisation, one team's services, one system's, or one service."""

    kind: str  # org, team, system, service
    pk: int | None = None
    slug: str = ""
    name: str = "Organisation"

    @property
    def key(self) -> str:
        return "org" if self.kind == "org" else f"{self.kind}:{self.slug}"

    @property
    def filter(self) -> Q:
        return {
            "org": Q(),
            "team": Q(service__owner_id=self.pk),
            "system": Q(service__system_id=self.pk),
            "service": Q(service_id=self.pk),
        }[self.kind]

    @property
    def url(self) -> str:
        if self.kind == "org":
            return reverse("portal:insights")
        return reverse(f"portal:insights-{self.kind}", args=[self.slug])

    @property
    def board_filters(self) -> dict[str, str]:
        """The deployments board's filters for this scope (the board filters by team and service, not system)."""
        return {"team": {"team": self.slug}, "service": {"service": self.slug}}.get(self.kind, {})


def scope_find(text: str) -> Scope:
    """Read `org`, `team:<slug>`, `system:<slug>` or `service:<slug>`; ValueError says what is wrong."""
    text = (text or "org").strip()
    if text == "org":
        return Scope("org")
    kind, _, slug = text.partition(":")
    models: dict[str, Any] = {"team": Team, "system": System, "service": Service}
    if kind not in models or not slug:
        raise ValueError("Give the scope as org, team:<slug>, system:<slug> or service:<slug>.")
    found = models[kind].objects.filter(slug=slug).values_list("pk", "name").first()
    if found is None:
        raise ValueError(f"There is no {kind} {slug!r}.")
    return Scope(kind, found[0], slug, found[1])


@dataclass(frozen=True)
class Window:
    """Whole calendar days, first to last inclusive, in one time zone."""

    first_day: date
    last_day: date
    zone: ZoneInfo
    label: str = ""

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=self.zone)

    def weeks(self) -> list[date]:
        """The Monday of every week the window touches, in order."""
        monday = self.first_day - timedelta(days=self.first_day.weekday())
        return [monday + timedelta(weeks=n) for n in range((self.last_day - monday).days // 7 + 1)]


def window_last(days: int, *, zone: ZoneInfo, today: date) -> Window:
    return Window(today - timedelta(days=days - 1), today, zone, f"{days}d")


def environments_default() -> list[Environment]:
    """Production by default: every protected (production-like) environment."""
    return list(Environment.objects.filter(protected=True).order_by("order", "name"))


# Figures


@dataclass
class Figures:
    """The DORA figures of one scope (or one week, team or service of it) over some days."""

    days: int
    successes: int = 0
    failures: int = 0
    rework: int = 0
    days_with_success: int = 0
    recovered: int = 0
    recovery_median: float | None = None  # seconds
    recovery_p90: float | None = None
    leads: int = 0  # successes with a lead time
    lead_median: float | None = None  # seconds
    lead_p90: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def deployments(self) -> int:
        return self.successes + self.failures

    @property
    def unrecovered(self) -> int:
        return self.failures - self.recovered

    @property
    def per_day(self) -> float | None:
        return self.successes / self.days if self.deployments and self.days else None

    @property
    def per_week(self) -> float | None:
        return None if self.per_day is None else self.per_day * 7

    @property
    def share_of_days(self) -> float | None:
        return self.days_with_success / self.days if self.deployments and self.days else None

    @property
    def change_fail_rate(self) -> float | None:
        return self.failures / self.deployments if self.deployments else None

    @property
    def rework_rate(self) -> float | None:
        return self.rework / self.deployments if self.deployments else None

    @property
    def lead_time(self) -> float | None:
        return self.lead_median

    @property
    def bands(self) -> dict[str, bands.Band]:
        return {
            "deployment_frequency": bands.band_of("deployment_frequency", self.per_day),
            "lead_time": bands.band_of("lead_time", self.lead_median),
            "change_fail_rate": bands.band_of("change_fail_rate", self.change_fail_rate),
            "recovery_time": bands.band_of("recovery_time", self.recovery_median),
        }


def _deployments(*, scope: Scope, window: Window, environments: list[Environment]) -> QuerySet[Deployment]:
    """The deployments with an outcome in the scope, environments and window, with what the figures need."""
    next_success = Deployment.objects.filter(
        RAW_SUCCESS,
        service_id=OuterRef("service_id"),
        environment_id=OuterRef("environment_id"),
        finished_at__gt=OuterRef("failed_at"),
    ).order_by("finished_at", "pk")
    cause = _incident_links(IncidentDeployment.Relation.CAUSE)
    queryset = (
        Deployment.objects.filter(scope.filter, environment__in=[e.pk for e in environments])
        .filter(RAW_SUCCESS | RAW_FAILURE)
        .annotate(moment=MOMENT)
        .filter(moment__gte=window.start, moment__lt=window.end)
        .annotate(
            # A failure is recovered when its rollback ends or a later success ships; a change that caused an
            # incident (linked by the incident) runs from the incident's start, unless the deployment itself failed
            # earlier, to the incident's mitigation.
            failed_at=Case(
                When(RAW_FAILURE, then=Coalesce("started_at", "created_at")),
                default=Coalesce(Subquery(cause.values("incident__started_at")[:1]), "started_at", "created_at"),
                output_field=DateTimeField(),
            ),
            recovered_at=Case(
                When(CAUSED_INCIDENT, then=Subquery(cause.values("incident__mitigated_at")[:1])),
                When(ROLLED_BACK, then=F("finished_at")),
                When(FAILURE, then=Subquery(next_success.values("finished_at")[:1])),
                output_field=DateTimeField(),
            ),
        )
    )
    queryset = queryset.annotate(
        lead_from=Case(When(LEAD, then=F("release__change_set__first_commit_at")), output_field=DateTimeField())
    )
    if connection.vendor == "postgresql":
        queryset = queryset.annotate(
            recovery_s=Epoch(F("recovered_at") - F("failed_at")),
            # PostgreSQL's GREATEST skips NULLs: without the Case a success with no lead time would count as 0 s.
            lead_s=Case(
                When(lead_from__isnull=False, then=Greatest(Epoch(F("finished_at") - F("lead_from")), Value(0.0))),
                output_field=FloatField(),
            ),
        )
    return queryset


def _aggregates(zone: ZoneInfo) -> dict[str, Any]:
    """The counts, for databases without PERCENTILE_CONT or GROUPING SETS (SQLite); percentiles are taken apart."""
    counts: dict[str, Any] = {
        "successes": Count("pk", filter=SUCCESS),
        "failures": Count("pk", filter=FAILURE),
        "rework": Count("pk", filter=REWORK),
        "days_with_success": Count(TruncDate("moment", tzinfo=zone), filter=SUCCESS, distinct=True),
        "recovered": Count("pk", filter=Q(FAILURE, recovered_at__isnull=False)),
        "leads": Count("pk", filter=Q(lead_from__isnull=False)),
    }
    return counts


def _percentiles_in_python(queryset: QuerySet[Deployment], group: str | None) -> dict[Any, tuple[Any, ...]]:
    """Median and p90 of recovery and of lead time per group, for databases without PERCENTILE_CONT (SQLite): one
    query reads the recovered failures and the measured successes, Python interpolates as PostgreSQL would."""
    recoveries: dict[Any, list[float]] = defaultdict(list)
    leads: dict[Any, list[float]] = defaultdict(list)
    rows = queryset.filter(Q(FAILURE, recovered_at__isnull=False) | Q(lead_from__isnull=False))
    fields = (group or "pk", "failed_at", "recovered_at", "lead_from", "finished_at")
    for key, failed_at, recovered_at, lead_from, finished_at in rows.values_list(*fields):
        key = key if group else None
        if lead_from is not None:
            leads[key].append(max((finished_at - lead_from).total_seconds(), 0.0))
        elif recovered_at is not None:  # a success has no recovery; a failure no lead time
            recoveries[key].append((recovered_at - failed_at).total_seconds())

    def pair(values: list[float]) -> tuple[float | None, float | None]:
        return (percentile(values, 0.5), percentile(values, 0.9)) if values else (None, None)

    return {key: pair(recoveries[key]) + pair(leads[key]) for key in recoveries.keys() | leads.keys()}


def _figures(row: dict[str, Any], days: int) -> Figures:
    return Figures(
        days=days,
        successes=row["successes"],
        failures=row["failures"],
        rework=row["rework"],
        days_with_success=row["days_with_success"],
        recovered=row["recovered"],
        recovery_median=row.get("recovery_median"),
        recovery_p90=row.get("recovery_p90"),
        leads=row.get("leads", 0),
        lead_median=row.get("lead_median"),
        lead_p90=row.get("lead_p90"),
    )


@dataclass
class Report:
    """A scope's figures over the window, week by week, and by team (organisation) or service (team, system)."""

    figures: Figures
    weekly: list[tuple[date, Figures]]
    breakdown: list[tuple[Scope, Figures]]


def _breakdown_group(scope: Scope) -> str | None:
    return None if scope.kind == "service" else "service__owner_id" if scope.kind == "org" else "service_id"


def _direct_rows(
    *, scope: Scope, window: Window, environments: list[Environment]
) -> tuple[dict[str, Any], dict[date, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """PostgreSQL, straight from the deployments: the window's totals, its weeks and its breakdown in one query, with
    GROUPING SETS (insights.rollups answers the same from the daily rollups).

    The deployments are read once, into a materialised CTE, so each failure's recovery (a correlated subquery) is
    looked up once however many aggregates use it. The inner query is Django's (parameters bound by the driver);
    only fixed SQL is written around it.
    """
    group = _breakdown_group(scope)
    inner = (
        _deployments(scope=scope, window=window, environments=environments)
        .annotate(
            is_success=Case(When(SUCCESS, then=Value(1)), default=Value(0)),
            is_failure=Case(When(FAILURE, then=Value(1)), default=Value(0)),
            is_rework=Case(When(REWORK, then=Value(1)), default=Value(0)),
            local_day=TruncDate("moment", tzinfo=window.zone),
            week=TruncWeek("moment", tzinfo=window.zone),
            grp=F(group) if group else Value(0),
        )
        .order_by()
        .values("is_success", "is_failure", "is_rework", "local_day", "week", "grp", "recovery_s", "lead_s")
    )
    sql, params = inner.query.sql_with_params()
    query = (
        f"WITH d AS MATERIALIZED ({sql}) "
        "SELECT GROUPING(week), GROUPING(grp), week, grp, "
        "COALESCE(SUM(is_success), 0), COALESCE(SUM(is_failure), 0), COALESCE(SUM(is_rework), 0), "
        "COUNT(DISTINCT local_day) FILTER (WHERE is_success = 1), COUNT(recovery_s), "
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY recovery_s), "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY recovery_s), COUNT(lead_s), "
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY lead_s), PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY lead_s) "
        "FROM d GROUP BY GROUPING SETS ((), (week), (grp))"
    )
    total: dict[str, Any] = {}
    weeks: dict[date, dict[str, Any]] = {}
    groups: dict[Any, dict[str, Any]] = {}
    names = [
        "successes",
        "failures",
        "rework",
        "days_with_success",
        "recovered",
        "recovery_median",
        "recovery_p90",
        "leads",
        "lead_median",
        "lead_p90",
    ]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for not_week, not_group, week, key, *values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            if not_week and not_group:
                total = row
            elif not not_week:
                weeks[week.date() if isinstance(week, datetime) else week] = row
            else:
                groups[key] = row
    return total, weeks, groups


def _weekly_points(
    window: Window, rows: dict[date, dict[str, Any]], python: dict[date, Any]
) -> list[tuple[date, Figures]]:
    """A week cut by the window's edge counts only its days inside the window, so its rate per day stays comparable."""
    points = []
    for monday in window.weeks():
        days = (min(monday + timedelta(days=6), window.last_day) - max(monday, window.first_day)).days + 1
        row = rows.get(monday)
        figures = _figures(row, days) if row else Figures(days=days)
        if monday in python:
            figures.recovery_median, figures.recovery_p90, figures.lead_median, figures.lead_p90 = python[monday]
        points.append((monday, figures))
    return points


def _breakdown_rows(
    scope: Scope, window: Window, rows: dict[Any, dict[str, Any]], python: dict[Any, Any]
) -> list[tuple[Scope, Figures]]:
    """Every team (or service) of the scope, those without deployments too: "no data" shows who does not deploy
    through Runway yet."""
    if scope.kind == "service":
        return []
    members: Any
    if scope.kind == "org":
        members = Team.objects.order_by("name").values_list("pk", "slug", "name")
        kind = "team"
    else:
        members = (
            Service.objects.filter(**({"owner_id": scope.pk} if scope.kind == "team" else {"system_id": scope.pk}))
            .order_by("name")
            .values_list("pk", "slug", "name")
        )
        kind = "service"
    result = []
    for pk, slug, name in members:
        figures = _figures(rows[pk], window.days) if pk in rows else Figures(days=window.days)
        if pk in python:
            figures.recovery_median, figures.recovery_p90, figures.lead_median, figures.lead_p90 = python[pk]
        result.append((Scope(kind, pk, slug, name), figures))
    return result


def dora_report(
    *, scope: Scope, window: Window, environments: list[Environment], breakdown: bool = True, weekly: bool = True
) -> Report:
    """Everything a page shows: one query on PostgreSQL (plus one for the breakdown's names); up to six elsewhere."""
    if not environments:
        # Nothing to count (no protected environment yet): no query, and every figure is "no data".
        return Report(
            Figures(days=window.days),
            _weekly_points(window, {}, {}) if weekly else [],
            _breakdown_rows(scope, window, {}, {}) if breakdown else [],
        )
    if connection.vendor == "postgresql":
        from insights import rollups  # it builds on this module's query

        zone = rollups.zone_of_rollups()
        if zone is not None and zone.key == window.zone.key:
            group = _breakdown_group(scope) if breakdown else None
            total, weeks, groups = rollups.rows(scope=scope, window=window, environments=environments, group=group)
        else:  # no rollups yet, or days asked in another time zone than theirs
            total, weeks, groups = _direct_rows(scope=scope, window=window, environments=environments)
        return Report(
            _figures(total, window.days),
            _weekly_points(window, weeks, {}),
            _breakdown_rows(scope, window, groups, {}) if breakdown else [],
        )
    # Elsewhere (SQLite) Django's aggregates do the counting and Python takes the percentiles.
    queryset = _deployments(scope=scope, window=window, environments=environments)
    aggregates = _aggregates(window.zone)
    figures = _figures(queryset.aggregate(**aggregates), window.days)
    (figures.recovery_median, figures.recovery_p90, figures.lead_median, figures.lead_p90) = _percentiles_in_python(
        queryset, None
    ).get(None, (None, None, None, None))
    points: list[tuple[date, Figures]] = []
    if weekly:
        by_week = queryset.annotate(week=TruncWeek("moment", tzinfo=window.zone))
        weeks = {row["week"].date(): dict(row) for row in by_week.values("week").annotate(**aggregates).order_by()}
        in_python = {key.date(): value for key, value in _percentiles_in_python(by_week, "week").items()}
        points = _weekly_points(window, weeks, in_python)
    members: list[tuple[Scope, Figures]] = []
    if breakdown and (group := _breakdown_group(scope)):
        groups = {row[group]: row for row in queryset.values(group).annotate(**aggregates).order_by()}
        members = _breakdown_rows(scope, window, groups, _percentiles_in_python(queryset, group))
    return Report(figures, points, members)


def dora_figures(*, scope: Scope, window: Window, environments: list[Environment]) -> Figures:
    """The scope's figures over the whole window."""
    return dora_report(scope=scope, window=window, environments=environments, breakdown=False, weekly=False).figures


def dora_recent(*, scope: Scope, days: int = 30) -> Figures:
    """A scope's figures over its last `days` days in production, in the portal's time zone: what a service page, a
    team page or a team's review shows beside the scope's own facts."""
    zone = ZoneInfo(settings.TIME_ZONE)
    window = window_last(days, zone=zone, today=timezone.now().astimezone(zone).date())
    return dora_figures(scope=scope, window=window, environments=environments_default())


def dora_team_figures(*, team: Team, days: int = 30) -> Figures:
    """The team's DORA figures (the services it owns today) over its last `days` days in production."""
    return dora_recent(scope=Scope("team", team.pk, team.slug, team.name), days=days)


def dora_weekly(*, scope: Scope, window: Window, environments: list[Environment]) -> list[tuple[date, Figures]]:
    """One point per week (Monday to Sunday in the window's time zone) the window touches."""
    return dora_report(scope=scope, window=window, environments=environments, breakdown=False).weekly


def dora_breakdown(*, scope: Scope, window: Window, environments: list[Environment]) -> list[tuple[Scope, Figures]]:
    """The organisation by team, or a team or system by service."""
    return dora_report(scope=scope, window=window, environments=environments).breakdown
