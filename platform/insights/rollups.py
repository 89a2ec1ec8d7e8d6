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
from insights.models import DailyRollup, GroupRollup, RollupState

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
    where = ["day >= %s", "day <= %s"]
    stale_params: list[Any] = [since, until]
    if service_id:
        where.append("service_id = %s")
        stale_params.append(service_id)
    if environment_id:
        where.append("environment_id = %s")
        stale_params.append(environment_id)
    environment_ids = [e.pk for e in environments]
    with transaction.atomic(), connection.cursor() as cursor:
        if service_id:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [service_id, environment_id or 0])
        cursor.execute(f"DELETE FROM {table} WHERE {' AND '.join(where)} RETURNING day", stale_params)
        days = {row[0] for row in cursor.fetchall()}
        cursor.execute(insert + " RETURNING day", params)
        written = cursor.rowcount
        days.update(row[0] for row in cursor.fetchall())
        if service_id:
            # Only the days this service had rows on, before or after, can change its team's, system's and the
            # organisation's.
            groups_write(cursor, environment_ids=environment_ids, days=sorted(days), service_id=service_id)
        else:
            groups_write(cursor, environment_ids=environment_ids, since=since, until=until)
        return int(written)


# The group levels: each sums the service rows of its members. The key is the team or system of the service as
# the service is now (read when the rows are written, under the lock below).
LEVELS = {GroupRollup.Level.TEAM: "owner_id", GroupRollup.Level.SYSTEM: "system_id", GroupRollup.Level.ORG: ""}
GROUPS_LOCK = 0x1A5_16  # the advisory lock's first key (the environment's id is the second): one writer at a time


def groups_write(
    cursor: Any,
    *,
    environment_ids: list[int],
    days: list[date] | None = None,
    since: date = EARLIEST,
    until: date = LATEST,
    service_id: int | None = None,
    teams: list[int] | None = None,
    systems: list[int] | None = None,
    organisation: bool = True,
) -> None:
    """Rewrite the team, system and organisation rows of `days` (or from `since` to `until`) in these environments
    from the service rows, inside the caller's transaction: with `service_id`, the rows of that service's team and
    system and the organisation's; with `teams` or `systems`, those groups' only (and the organisation's if
    `organisation`); with neither, every group's.

    One writer at a time per environment (a transaction-scoped advisory lock, taken after the caller wrote its service
    rows, so the order is always service then groups): the last writer to get the lock reads every service row the
    others committed, so two workers refreshing two services of one team never lose each other's change. The service's
    team and system are read after the lock too, so a transfer committed meanwhile is seen."""
    if not environment_ids or days == []:
        return
    for environment_id in sorted(environment_ids):
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [GROUPS_LOCK, environment_id])
    table, service_table = GroupRollup._meta.db_table, "catalog_service"
    day_params: list[Any]
    if days is not None:
        day_sql, day_params = "day = ANY(%s)", [days]
    else:
        day_sql, day_params = "day >= %s AND day <= %s", [since, until]
    for level, column in LEVELS.items():
        # Which groups of the level: a condition on the service's column, and the same on the group rows' id.
        condition, condition_params = "", list[Any]()
        if not column:
            if not organisation:
                continue
        elif service_id:
            condition, condition_params = f"IN (SELECT {column} FROM {service_table} WHERE id = %s)", [service_id]
        elif teams is not None or systems is not None:
            chosen = teams if level == GroupRollup.Level.TEAM else systems
            if chosen is None:
                continue  # only the other level's groups were asked for
            condition, condition_params = "= ANY(%s)", [chosen]
        else:
            condition = "IS NOT NULL"
        key = f"s.{column}" if column else "0"
        member_sql = f" AND s.{column} {condition}" if condition else ""
        stale_sql = f" AND group_id {condition}" if condition else ""
        cursor.execute(
            f"DELETE FROM {table} WHERE level = %s AND environment_id = ANY(%s) AND {day_sql}{stale_sql}",
            [level, environment_ids, *day_params, *condition_params],
        )
        merged = (
            "(SELECT COALESCE(jsonb_agg(x ORDER BY x), '[]'::jsonb) FROM unnest(array_agg(r.{0})) a(v) "
            "CROSS JOIN LATERAL jsonb_array_elements(a.v) x)"
        )
        cursor.execute(
            f"INSERT INTO {table} (level, group_id, environment_id, day, successes, failures, rework, recovered, "
            "leads, recovery_seconds, lead_seconds) "
            f"SELECT %s, {key}, r.environment_id, r.day, SUM(r.successes), SUM(r.failures), SUM(r.rework), "
            f"SUM(r.recovered), SUM(r.leads), {merged.format('recovery_seconds')}, {merged.format('lead_seconds')} "
            f"FROM {DailyRollup._meta.db_table} r JOIN {service_table} s ON s.id = r.service_id "
            f"WHERE r.environment_id = ANY(%s) AND r.{day_sql}{member_sql} "
            f"GROUP BY {key + ', ' if column else ''}r.environment_id, r.day",
            [level, environment_ids, *day_params, *condition_params],
        )


def groups_regroup(*, teams: list[int] | None = None, systems: list[int] | None = None) -> None:
    """Rewrite every day of these teams' or systems' rows (a service moved between them); nothing while the rollups
    are not in use. The organisation's rows do not change: the service is still in it."""
    if zone_of_rollups() is None:
        return
    environment_ids = list(Environment.objects.values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        groups_write(cursor, environment_ids=environment_ids, teams=teams, systems=systems, organisation=False)


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


def _rows_of(scope: selectors.Scope) -> tuple[str, list[Any]]:
    """The rows that hold a scope's own figures: its group's (one per day and environment), or a service's."""
    if scope.kind == "service":
        return f"{DailyRollup._meta.db_table} r WHERE r.service_id = %s", [scope.pk]
    return f"{GroupRollup._meta.db_table} r WHERE r.level = %s AND r.group_id = %s", [scope.kind, scope.pk or 0]


def _members_of(scope: selectors.Scope) -> tuple[str, str, list[Any]]:
    """The rows of a scope's members, and their key: the organisation's teams, a team's or a system's services."""
    if scope.kind == "org":
        return f"{GroupRollup._meta.db_table} r WHERE r.level = 'team'", "r.group_id", []
    column = "owner_id" if scope.kind == "team" else "system_id"
    return (
        f"{DailyRollup._meta.db_table} r WHERE r.service_id IN (SELECT id FROM catalog_service WHERE {column} = %s)",
        "r.service_id",
        [scope.pk],
    )


def rows(
    *, scope: selectors.Scope, window: selectors.Window, environments: list[Environment], group: str | None
) -> tuple[dict[str, Any], dict[date, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """The window's totals, weeks and breakdown (teams or services) from the rollups, in one query.

    The totals and weeks come from the scope's own rows (the organisation's, a team's or a system's group rows, about
    one a day; a service's rows), the breakdown from its members' (the teams' group rows; the services' rows): counts
    are sums, days with a success are distinct days, percentiles are taken over the rows' values unnested."""
    span = "AND r.environment_id = ANY(%s) AND r.day >= %s AND r.day <= %s"
    span_params: list[Any] = [[e.pk for e in environments], window.first_day, window.last_day]
    own, own_params = _rows_of(scope)
    if group and scope.kind != "service":
        members, key, member_params = _members_of(scope)
    else:  # no breakdown asked: an empty member set costs nothing
        members, key, member_params = f"{DailyRollup._meta.db_table} r WHERE false", "r.service_id", []
    columns = "r.day, r.successes, r.failures, r.rework, r.recovered, r.leads, r.recovery_seconds, r.lead_seconds"
    sums = (
        "COALESCE(SUM(successes), 0) AS successes, COALESCE(SUM(failures), 0) AS failures, "
        "COALESCE(SUM(rework), 0) AS rework, COUNT(DISTINCT day) FILTER (WHERE successes > 0) AS days, "
        "COALESCE(SUM(recovered), 0) AS recovered, COALESCE(SUM(leads), 0) AS leads"
    )
    percentiles = (
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY rec) AS rm, "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY rec) AS r9, "
        "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY lead) AS lm, "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY lead) AS l9"
    )

    def unnested(source: str, keys: str) -> str:
        # Only rows with values are unnested: most team days recovered nothing, and each call costs.
        return (
            f"SELECT {keys}, x::float8 AS rec, NULL::float8 AS lead FROM {source} "
            "CROSS JOIN LATERAL jsonb_array_elements_text(recovery_seconds) x WHERE recovered > 0 "
            f"UNION ALL SELECT {keys}, NULL, x::float8 FROM {source} "
            "CROSS JOIN LATERAL jsonb_array_elements_text(lead_seconds) x WHERE leads > 0"
        )

    # Counts (kind 0) and percentiles (kind 1) come back as rows of their own, matched here by their grouping: a
    # join in SQL compared every count row with every percentile row (500 teams: 250,000 comparisons).
    query = (
        f"WITH t AS MATERIALIZED (SELECT date_trunc('week', r.day)::date AS week, {columns} FROM {own} {span}), "
        f"m AS MATERIALIZED (SELECT {key} AS grp, {columns} FROM {members} {span}) "
        f"SELECT 0, GROUPING(week), 1, week, NULL::bigint, {sums}, NULL::float8, NULL::float8, NULL::float8, "
        "NULL::float8 FROM t GROUP BY GROUPING SETS ((), (week)) "
        f"UNION ALL SELECT 0, 1, 0, NULL, grp, {sums}, NULL, NULL, NULL, NULL FROM m GROUP BY grp "
        "UNION ALL SELECT 1, GROUPING(week), 1, week, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        f"{percentiles} FROM ({unnested('t', 'week')}) v GROUP BY GROUPING SETS ((), (week)) "
        "UNION ALL SELECT 1, 1, 0, NULL, grp, NULL, NULL, NULL, NULL, NULL, NULL, "
        f"{percentiles} FROM ({unnested('m', 'grp')}) v GROUP BY grp"
    )
    params = [*own_params, *span_params, *member_params, *span_params]
    counted = ["successes", "failures", "rework", "days_with_success", "recovered", "leads"]
    measured = ["recovery_median", "recovery_p90", "lead_median", "lead_p90"]
    total: dict[str, Any] = dict.fromkeys(counted, 0) | dict.fromkeys(measured)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    percentiles_found: dict[tuple[Any, ...], list[Any]] = {}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for kind, not_week, not_group, week, key, *values in cursor.fetchall():
            if kind == 0:
                found[(not_week, not_group, week, key)] = dict(
                    zip(counted, [int(v) for v in values[:6]], strict=True)
                ) | dict.fromkeys(measured)
            else:
                percentiles_found[(not_week, not_group, week, key)] = values[6:]
    weeks: dict[date, dict[str, Any]] = {}
    groups: dict[Any, dict[str, Any]] = {}
    for (not_week, not_group, week, key), row in found.items():
        if (values := percentiles_found.get((not_week, not_group, week, key))) is not None:
            row |= dict(zip(measured, values, strict=True))
        if not_week and not_group:
            total = row
        elif not not_week:
            weeks[week] = row
        else:
            groups[key] = row
    return total, weeks, groups
