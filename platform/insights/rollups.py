"""Daily rollups of the DORA counts (PostgreSQL): written from the same query as a direct computation, read by pages.

One row per service, environment and calendar day (in RollupState.zone, the portal's TIME_ZONE when built) holds the
day's successes, failures, rework, recoveries and measured lead times, with the raw recovery and lead seconds (a
percentile cannot be summed, so the values stay). Rows are per service, not per team: a team's figures are those of
the services it owns today, so a transfer moves history without rewriting a row.

Writing: `rollups_write` deletes a service's rows from a day on and inserts them again with one INSERT ... SELECT over
`selectors._deployments`, the query the direct computation uses: the two cannot disagree on a definition. A change
to one deployment (or to an incident naming it, or to its release's change set) rewrites its service and environment
from the day of the previous success on, because a success ends the recovery of every failure since that success.
Workers do it on commit (insights.tasks.rollups_refresh); `rollups_rebuild` writes all history and marks the rollups
complete; a periodic sweep rewrites the last two days.

Reading: `rows` answers what `selectors._direct_rows` answers (totals, weeks, breakdown) from the rollups, in one
query, when the window's time zone is the rollups' (else the page computes directly).
"""

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from deployments.models import Deployment, Environment
from insights import selectors
from insights.models import DailyRollup, RollupState

EARLIEST, LATEST = date(1970, 1, 2), date(9000, 1, 1)


def enabled() -> bool:
    return connection.vendor == "postgresql" and bool(getattr(settings, "INSIGHTS_ROLLUPS", True))


ZONE_CACHE_KEY = "insights:rollup-zone"


def zone_of_rollups() -> ZoneInfo | None:
    """The time zone of the rollups' days when they are complete; None while they are not (or not used). Cached a
    minute in the shared cache, so a page spends no query on it."""
    if not enabled():
        return None
    state = cache.get(ZONE_CACHE_KEY)
    if state is None:
        state = RollupState.objects.order_by("-pk").values_list("zone", flat=True).first() or ""
        cache.set(ZONE_CACHE_KEY, state, 60)
    return ZoneInfo(state) if state else None


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def rollups_write(
    *, service_id: int | None = None, environment_id: int | None = None, since: date = EARLIEST, until: date = LATEST
) -> int:
    """Rewrite the rollup rows of one service (and environment), or of every service, from `since` to `until`
    (inclusive); returns the rows written. Serialised per service and environment by an advisory lock, so two workers
    never interleave."""
    zone = _zone()
    window = selectors.Window(since, until, zone)
    scope = selectors.Scope("service", service_id) if service_id else selectors.Scope("org")
    environments = list(Environment.objects.filter(**({"pk": environment_id} if environment_id else {})))
    if not environments:
        return 0
    inner = (
        selectors._deployments(scope=scope, window=window, environments=environments)
        .annotate(
            is_success=Case(When(selectors.SUCCESS, then=Value(1)), default=Value(0)),
            is_failure=Case(When(selectors.FAILURE, then=Value(1)), default=Value(0)),
            is_rework=Case(When(selectors.REWORK, then=Value(1)), default=Value(0)),
            local_day=TruncDate("moment", tzinfo=zone),
            env=F("environment_id"),
        )
        .order_by()
        .values("service_id", "env", "local_day", "is_success", "is_failure", "is_rework", "recovery_s", "lead_s")
    )
    sql, params = inner.query.sql_with_params()
    table = DailyRollup._meta.db_table
    insert = (
        f"INSERT INTO {table} (service_id, environment_id, day, successes, failures, rework, recovered, leads, "
        "recovery_seconds, lead_seconds) "
        "SELECT service_id, env, local_day, SUM(is_success), SUM(is_failure), SUM(is_rework), COUNT(recovery_s), "
        "COUNT(lead_s), "
        "COALESCE(jsonb_agg(recovery_s ORDER BY recovery_s) FILTER (WHERE recovery_s IS NOT NULL), '[]'::jsonb), "
        "COALESCE(jsonb_agg(lead_s ORDER BY lead_s) FILTER (WHERE lead_s IS NOT NULL), '[]'::jsonb) "
        f"FROM ({sql}) d GROUP BY service_id, env, local_day"
    )
    stale = DailyRollup.objects.filter(day__gte=since, day__lte=until)
    if service_id:
        stale = stale.filter(service_id=service_id)
    if environment_id:
        stale = stale.filter(environment_id=environment_id)
    with transaction.atomic(), connection.cursor() as cursor:
        if service_id:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [service_id, environment_id or 0])
        stale.delete()
        cursor.execute(insert, params)
        return int(cursor.rowcount)


def rollups_rebuild() -> int:
    """Write every rollup row from all history and mark the rollups complete in the portal's time zone."""
    if connection.vendor != "postgresql":
        return 0
    with transaction.atomic():
        written = rollups_write()
        RollupState.objects.all().delete()
        RollupState.objects.create(zone=settings.TIME_ZONE, built_at=timezone.now())
        # Set, not deleted: a page in the same minute must not read the zone of rollups rolled back with this.
        transaction.on_commit(lambda: cache.set(ZONE_CACHE_KEY, settings.TIME_ZONE, 60))
    cache.delete(ZONE_CACHE_KEY)
    return written


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(_zone()).date() if moment else None


def refresh_since(deployment: Deployment) -> date:
    """The first day whose rows a change to `deployment` can alter: its own earliest day, or the day of the previous
    success of its service and environment (every failure since that success may now recover at this deployment)."""
    previous = (
        Deployment.objects.filter(
            selectors.SUCCESS,
            service_id=deployment.service_id,
            environment_id=deployment.environment_id,
            finished_at__lt=deployment.finished_at or timezone.now(),
        )
        .exclude(pk=deployment.pk)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    days = [_day(previous) if previous else EARLIEST, _day(deployment.created_at), _day(deployment.started_at)]
    return min(d for d in days if d)


def rollups_refresh(*, deployment_id: int) -> int:
    """Rewrite the rows a change to one deployment can alter; nothing while the rollups are not in use."""
    if zone_of_rollups() is None:
        return 0
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        return 0
    return rollups_write(
        service_id=deployment.service_id,
        environment_id=deployment.environment_id,
        since=refresh_since(deployment),
    )


def rollups_sweep(*, days: int = 2) -> int:
    """Periodic safety net: rewrite every service's last `days` days, or build all of it the first time."""
    if not enabled():
        return 0
    if zone_of_rollups() is None or RollupState.objects.exclude(zone=settings.TIME_ZONE).exists():
        return rollups_rebuild()
    return rollups_write(since=timezone.now().astimezone(_zone()).date() - timedelta(days=days - 1))


# Reading


def rows(
    *, scope: selectors.Scope, window: selectors.Window, environments: list[Environment], group: str | None
) -> tuple[dict[str, Any], dict[date, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """The window's totals, weeks and breakdown (teams or services) from the rollups, in one query: counts with
    GROUPING SETS over the days' rows, percentiles over their recovery and lead seconds."""
    table = DailyRollup._meta.db_table
    where = ["r.environment_id = ANY(%s)", "r.day >= %s", "r.day <= %s"]
    params: list[Any] = [[e.pk for e in environments], window.first_day, window.last_day]
    if scope.kind == "team":
        where.append("s.owner_id = %s")
        params.append(scope.pk)
    elif scope.kind == "system":
        where.append("s.system_id = %s")
        params.append(scope.pk)
    elif scope.kind == "service":
        where.append("r.service_id = %s")
        params.append(scope.pk)
    grp = {"service__owner_id": "s.owner_id", "service_id": "r.service_id"}.get(group or "", "0")
    service_table = "catalog_service"
    query = (
        "WITH d AS MATERIALIZED ("
        f"SELECT r.day, date_trunc('week', r.day)::date AS week, {grp} AS grp, r.successes, r.failures, r.rework, "
        "r.recovered, r.leads, r.recovery_seconds, r.lead_seconds "
        f"FROM {table} r JOIN {service_table} s ON s.id = r.service_id WHERE {' AND '.join(where)}), "
        "c AS (SELECT GROUPING(week) AS gw, GROUPING(grp) AS gg, week, grp, COALESCE(SUM(successes), 0) AS successes, "
        "COALESCE(SUM(failures), 0) AS failures, COALESCE(SUM(rework), 0) AS rework, "
        "COUNT(DISTINCT day) FILTER (WHERE successes > 0) AS days, COALESCE(SUM(recovered), 0) AS recovered, "
        "COALESCE(SUM(leads), 0) AS leads FROM d GROUP BY GROUPING SETS ((), (week), (grp))), "
        "v AS (SELECT week, grp, x::float8 AS rec, NULL::float8 AS lead "
        "FROM d CROSS JOIN LATERAL jsonb_array_elements_text(d.recovery_seconds) x "
        "UNION ALL SELECT week, grp, NULL, x::float8 "
        "FROM d CROSS JOIN LATERAL jsonb_array_elements_text(d.lead_seconds) x), "
        "p AS (SELECT GROUPING(week) AS gw, GROUPING(grp) AS gg, week, grp, "
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY rec) AS rm, "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY rec) AS r9, "
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY lead) AS lm, "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY lead) AS l9 "
        "FROM v GROUP BY GROUPING SETS ((), (week), (grp))) "
        "SELECT c.gw, c.gg, c.week, c.grp, c.successes, c.failures, c.rework, c.days, c.recovered, p.rm, p.r9, "
        "c.leads, p.lm, p.l9 FROM c LEFT JOIN p ON p.gw = c.gw AND p.gg = c.gg "
        "AND p.week IS NOT DISTINCT FROM c.week AND p.grp IS NOT DISTINCT FROM c.grp"
    )
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
    total: dict[str, Any] = dict.fromkeys(names, 0) | dict.fromkeys(
        ["recovery_median", "recovery_p90", "lead_median", "lead_p90"]
    )
    weeks: dict[date, dict[str, Any]] = {}
    groups: dict[Any, dict[str, Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for not_week, not_group, week, key, *values in cursor.fetchall():
            row = dict(zip(names, [int(v) if isinstance(v, int) else v for v in values], strict=True))
            if not_week and not_group:
                total = row
            elif not not_week:
                weeks[week] = row
            else:
                groups[key] = row
    return total, weeks, groups
