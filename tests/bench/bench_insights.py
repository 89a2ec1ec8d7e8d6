"""Insights benchmark: the DORA pages and API on two years of history at the issue's scale, timed in this process.

A history of INSIGHTS_BENCH_SERVICES services (default 10,000) in 500 teams and 200 systems over two years, written
by PostgreSQL itself (INSERT … SELECT over generate_series, from one template row per table that the ORM made, so new
columns keep their defaults): about 1,000,000 deployments (80 production deployments per service at random moments
in the two years, a staging one for every fourth: ~5 % rolled back, ~2 % reported failed, ~3 % redeploys of an older
release), a release every ~36 days per service with its change set (its first commit hours before the release), and
20,000 incidents, half of them naming a deployment as their cause and a quarter a fix. Then the daily rollups are
built (timed), each page is requested ROUNDS times through Django's test client as a signed-in user (rendering
included, no network), from the rollups and, for comparison, computed directly; and a late deploy event is recorded
and its service's days rewritten as a worker would (timed). Targets (issue 12): organisation ≤ 200 ms, team and
service ≤ 100 ms, the API the same, one day recomputed after a late event ≤ 1 s.

Runs on a fresh PostgreSQL database `runway_bench_insights` (INSIGHTS_BENCH_DB to rename it) on DATABASE_URL's
server (the rollups are PostgreSQL's); INSIGHTS_BENCH_REUSE=1 keeps an earlier run's history (and, with
INSIGHTS_BENCH_KEEP_ROLLUPS=1, its rollups). Writes var/bench/insights.json; exit status 0 when every target is met,
1 when one is missed.
"""

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import stack  # tests/bench/, this script's folder, is first on sys.path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
WORK = OUT / "insights"
DB_NAME = os.environ.get("INSIGHTS_BENCH_DB", "runway_bench_insights")
REDIS_DB = int(os.environ.get("INSIGHTS_BENCH_REDIS_DB", "14"))
SERVICES = int(os.environ.get("INSIGHTS_BENCH_SERVICES", "10000"))
TEAMS, SYSTEMS, DAYS = max(1, SERVICES // 20), max(1, SERVICES // 50), 730
EVERY_DAYS = 9.125  # 80 production deployments per service in two years, 100 with staging: 1,000,000 for 10,000
RELEASE_DAYS = 36.5  # a release about every five weeks per service
INCIDENTS = SERVICES * 2
ROUNDS = 15
# INSIGHTS_BENCH_REUSE=1 keeps the database of an earlier run with its history (for measuring a change to the pages).
REUSE = os.environ.get("INSIGHTS_BENCH_REUSE", "") == "1"
KEEP_ROLLUPS = os.environ.get("INSIGHTS_BENCH_KEEP_ROLLUPS", "") == "1"  # with REUSE: not rebuilt either
TARGETS_MS = {"organisation": 200.0, "team": 100.0, "service": 100.0, "api (team)": 100.0}
LATE_TARGET_MS = 1000.0


def insert_from(
    cursor: Any, model: Any, template_id: int, values: dict[str, str], source: str, params: dict[str, Any]
) -> int:
    """INSERT … SELECT: one row per row of `source`, each column from `values` (SQL over the source) or else the
    template row's. Only fixed SQL is written here; the values are bound as parameters."""
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    unknown = set(values) - set(columns)
    assert not unknown, f"{model.__name__} has no column {unknown}"
    table = model._meta.db_table
    select = ", ".join(values.get(c, f"t.{c}") for c in columns)
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {source} CROSS JOIN {table} t "
        "WHERE t.id = %(template)s",
        {**params, "template": template_id},
    )
    return int(cursor.rowcount)


def load(now: Any) -> int:
    """Write the history; returns the number of incidents."""
    from django.contrib.auth.models import Group
    from django.db import connection

    from catalog.models import Service, System
    from deployments.models import Deployment, Environment, Release
    from incidents.models import Incident
    from teams.models import Team

    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    groups = Group.objects.bulk_create([Group(name=f"team:team-{n:03d}") for n in range(TEAMS)])
    teams = Team.objects.bulk_create(
        [Team(name=f"Team {n:03d}", slug=f"team-{n:03d}", group=groups[n]) for n in range(TEAMS)]
    )
    systems = System.objects.bulk_create(
        [System(name=f"System {n:03d}", slug=f"system-{n:03d}", owner=teams[n % TEAMS]) for n in range(SYSTEMS)]
    )
    services = Service.objects.bulk_create(
        [
            Service(slug=f"svc-{n:05d}", name=f"Service {n:05d}", owner=teams[n % TEAMS], system=systems[n % SYSTEMS])
            for n in range(SERVICES)
        ],
        batch_size=5000,
    )
    begin = now - timedelta(days=DAYS)
    releases_per_service = int(DAYS / RELEASE_DAYS) + 2
    # One row of each table made by the ORM (every column at its model default) is the template of the rows SQL
    # makes from it with generate_series: a column added later is filled without touching this script.
    first = services[0]
    release = Release.objects.bulk_create([Release(service=first, version="template", commit_sha="0" * 40)])[0]
    template = Deployment.objects.bulk_create(
        [Deployment(release=release, service=first, environment=production, strategy="canary", runtime="simulated")]
    )[0]
    incident_template = Incident.objects.bulk_create([Incident(title="template", started_at=now)])[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.12)")
        insert_from(
            cursor,
            Release,
            release.pk,
            {
                "service_id": "s.id",
                "version": "'1.' || k || '.0'",
                "commit_sha": "lpad(to_hex(s.id), 20, '0') || lpad(to_hex(k), 20, '0')",
                "committed_at": "%(begin)s::timestamptz + (k - 1) * %(release_days)s * interval '1 day'",
                "created_at": "%(now)s",
            },
            "catalog_service s CROSS JOIN generate_series(0, %(releases)s - 1) k",
            {"begin": begin, "now": now, "release_days": RELEASE_DAYS, "releases": releases_per_service},
        )
        cursor.execute(
            "INSERT INTO insights_changeset (release_id, source, status, note, commit_count, complete, "
            "first_commit_at, recorded_at) SELECT id, 'reported', 'recorded', '', 3, true, "
            "committed_at - (2 + random() * 70) * interval '1 hour', %s FROM deployments_release "
            "WHERE version <> 'template'",
            [now],
        )
        # Each service's production deployments fall at uniformly random moments over the two years (a Poisson
        # process given its count); every fourth also goes to staging. ~5 % rolled back, ~2 % reported failed, ~3 %
        # redeploys of the release before.
        cursor.execute(
            "CREATE TEMPORARY TABLE planned AS SELECT s.id AS service_id, n, "
            "%(begin)s::timestamptz + random() * %(days)s * interval '1 day' AS moment, random() AS draw, "
            "2 + random() * 88 AS minutes FROM catalog_service s CROSS JOIN generate_series(1, %(per)s) n",
            {"begin": begin, "days": DAYS, "per": round(DAYS / EVERY_DAYS)},
        )
        cursor.execute(
            "CREATE TEMPORARY TABLE placed AS SELECT p.*, e.id AS environment_id, "
            "1 + floor(extract(epoch FROM p.moment - %(begin)s::timestamptz) / 86400 / %(release_days)s)::int AS k "
            "FROM planned p JOIN deployments_environment e ON e.id = %(production)s OR (e.id = %(staging)s "
            "AND p.n %% 4 = 0)",
            {"begin": begin, "release_days": RELEASE_DAYS, "production": production.pk, "staging": staging.pk},
        )
        insert_from(
            cursor,
            Deployment,
            template.pk,
            {
                "release_id": "CASE WHEN p.draw >= 0.07 AND p.draw < 0.10 THEN older.id ELSE r.id END",
                "previous_release_id": "CASE WHEN p.draw >= 0.07 AND p.draw < 0.10 THEN r.id END",
                "service_id": "p.service_id",
                "environment_id": "p.environment_id",
                "state": "CASE WHEN p.draw < 0.05 THEN 'rolled_back' WHEN p.draw < 0.07 THEN 'external' "
                "ELSE 'succeeded' END",
                "runtime_state": 'CASE WHEN p.draw >= 0.05 AND p.draw < 0.07 THEN \'{"reported_status": '
                "\"failed\"}'::jsonb ELSE '{}'::jsonb END",
                "created_at": "p.moment",
                "started_at": "p.moment",
                "finished_at": "p.moment + p.minutes * interval '1 minute'",
                "updated_at": "p.moment + p.minutes * interval '1 minute'",
            },
            "placed p JOIN deployments_release r ON r.service_id = p.service_id AND r.version = '1.' || p.k || '.0' "
            "JOIN deployments_release older ON older.service_id = p.service_id AND older.version = '1.' || (p.k - 1) "
            "|| '.0'",
            {},
        )
        cursor.execute("DELETE FROM deployments_deployment WHERE id = %s", [template.pk])
        cursor.execute("DELETE FROM deployments_release WHERE id = %s", [release.pk])
        # Incidents: each hurts one service for a while, starting ten minutes after a production success; half name
        # it as their cause, a quarter as their fix.
        cursor.execute(
            "CREATE TEMPORARY TABLE picked AS SELECT row_number() OVER () - 1 AS n, id AS deployment_id, service_id, "
            "finished_at, random() AS draw FROM (SELECT id, service_id, finished_at FROM deployments_deployment "
            "WHERE environment_id = %s AND state = 'succeeded' ORDER BY random() LIMIT %s) d",
            [production.pk, INCIDENTS],
        )
        insert_from(
            cursor,
            Incident,
            incident_template.pk,
            {
                "title": "'Incident ' || p.n",
                "severity": "'SEV' || (1 + p.n %% 4)",
                "status": "'resolved'",
                "started_at": "p.finished_at + interval '10 minutes'",
                "identified_at": "p.finished_at + interval '20 minutes'",
                "mitigated_at": "p.finished_at + (10 + 5 + p.draw * 595) * interval '1 minute'",
                "resolved_at": "p.finished_at + interval '12 hours'",
                "created_at": "%(now)s",
                "updated_at": "%(now)s",
            },
            "picked p",
            {"now": now},
        )
        cursor.execute("DELETE FROM incidents_incident WHERE id = %s", [incident_template.pk])
        cursor.execute(
            "CREATE TEMPORARY TABLE made AS SELECT p.*, i.id AS incident_id FROM picked p "
            "JOIN incidents_incident i ON i.title = 'Incident ' || p.n"
        )
        cursor.execute(
            "INSERT INTO incidents_incidentdeployment (incident_id, deployment_id, relation, created_at) "
            "SELECT incident_id, deployment_id, CASE WHEN n %% 2 = 0 THEN 'cause' ELSE 'fix' END, %s FROM made "
            "WHERE n %% 2 = 0 OR n %% 4 = 1",
            [now],
        )
        cursor.execute(
            f"INSERT INTO {Incident.services.through._meta.db_table} (incident_id, service_id) "
            "SELECT incident_id, service_id FROM made"
        )
        cursor.execute("SELECT count(*) FROM made")
        incident_count = cursor.fetchone()[0]
    return int(incident_count)


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_insights", redis_db=REDIS_DB, keep_database=REUSE
    )
    print(f"Database: {database_text}\nBroker: {broker_text}")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client, override_settings
    from django.utils import timezone

    from catalog.models import Service
    from deployments.models import Deployment, Environment, Release, State
    from incidents.models import Incident
    from insights import rollups
    from insights.models import DailyRollup, GroupRollup
    from teams.models import Team

    if connection.vendor != "postgresql":
        print("The Insights bench needs PostgreSQL (DATABASE_URL): the rollups and COPY are PostgreSQL's.")
        return 1
    started = time.perf_counter()
    now = timezone.now()
    reused = REUSE and Deployment.objects.exists()
    if reused:  # the history of an earlier run, kept: only the rollups are rebuilt and the pages timed
        now = Deployment.objects.order_by("-finished_at").values_list("finished_at", flat=True).first() or now
        incident_count = Incident.objects.count()
    else:
        incident_count = load(now)
    production = Environment.objects.get(slug="production")
    teams = list(Team.objects.order_by("slug"))
    services = list(Service.objects.order_by("slug"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    total = Deployment.objects.count()
    loaded = time.perf_counter() - started
    print(
        f"History: {SERVICES} services, {TEAMS} teams, {total} deployments, {Release.objects.count()} releases with "
        f"change sets, {incident_count} incidents over {DAYS} days, "
        + ("kept from an earlier run" if reused else f"written in {loaded:.1f} s")
    )
    tick = time.perf_counter()
    if reused and KEEP_ROLLUPS and rollups.zone_of_rollups() is not None:
        rows_written = DailyRollup.objects.count()
        print(f"Rollups: {rows_written} rows (service, environment, day) kept from an earlier run")
    else:
        rows_written = rollups.rollups_rebuild()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE insights_dailyrollup")
            cursor.execute("ANALYZE insights_grouprollup")
        print(
            f"Rollups: {rows_written} rows (service, environment, day) and {GroupRollup.objects.count()} for teams, "
            f"systems and the organisation built in {time.perf_counter() - tick:.1f} s"
        )
    build_s = time.perf_counter() - tick

    user = User.objects.filter(username="bench-reader").first() or User.objects.create_user("bench-reader")
    client = Client(HTTP_HOST="localhost")  # DEBUG is off: the host must be an allowed one
    client.force_login(user)
    team, service = teams[7].slug, services[123].slug
    cases = {
        "organisation": "/insights/",
        "organisation, 365 days": "/insights/?window=365d",
        "team": f"/insights/teams/{team}/",
        "team, 365 days": f"/insights/teams/{team}/?window=365d",
        "service": f"/insights/services/{service}/",
        "api (team)": f"/api/v1/insights/dora/?scope=team:{team}&window=30d",
        "api (org)": "/api/v1/insights/dora/?scope=org&window=30d",
        "api (org, 365 days)": "/api/v1/insights/dora/?scope=org&window=365d",
    }
    direct = ["organisation", "team", "service", "api (org, 365 days)"]  # the same computed without the rollups
    results: dict[str, Any] = {
        "deployments": total,
        "services": SERVICES,
        "incidents": incident_count,
        "database": database_text,
        "load_s": round(loaded, 1),
        "rollup_rows": rows_written,
        "rollup_build_s": round(build_s, 1),
        "pages": {},
        "direct": {},
    }
    print(f"\n{'page':<34}{'median ms':>10}{'p95 ms':>10}{'queries':>9}{'target':>10}  verdict")
    print("-" * 84)
    missed = False

    def measure(name: str, url: str) -> dict[str, Any] | None:
        queries: list[str] = []

        def counted(execute: Any, sql: str, *args: Any, seen: list[str] = queries) -> Any:
            seen.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(counted):
            first = client.get(url)
        if first.status_code != 200:
            print(f"{name}: {url} answered {first.status_code}")
            return None
        timings = []
        for _ in range(ROUNDS):
            tick = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - tick) * 1000)
        return {
            "url": url,
            "median_ms": round(statistics.median(timings), 1),
            "p95_ms": round(stack.quantile(timings, 0.95), 1),
            "queries": len(queries),
        }

    for name, url in cases.items():
        found = measure(name, url)
        if found is None:
            return 1
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("met" if found["median_ms"] <= target else "MISSED")
        missed = missed or verdict == "MISSED"
        target_text = f"≤ {target:.0f}" if target else "—"
        print(
            f"{name:<34}{found['median_ms']:>10.1f}{found['p95_ms']:>10.1f}{found['queries']:>9}"
            f"{target_text:>10}  {verdict}"
        )
        results["pages"][name] = {**found, "target_ms": target}
    with override_settings(INSIGHTS_ROLLUPS=False):
        for name in direct:
            found = measure(name, cases[name])
            if found is None:
                return 1
            print(
                f"{name + ' (direct, no rollups)':<34}{found['median_ms']:>10.1f}{found['p95_ms']:>10.1f}"
                f"{found['queries']:>9}"
            )
            results["direct"][name] = found

    # A late deploy event: a success reported now for a deployment 200 days ago, then its days rewritten as the
    # worker does when the report commits (from the previous success of that service and environment on).
    late_service = services[4321 % SERVICES]
    late_at = now - timedelta(days=200)
    release = Release.objects.filter(service=late_service).order_by("id").first()
    late = Deployment.objects.create(
        release=release,
        service=late_service,
        environment=production,
        strategy="canary",
        runtime="webhook",
        state=State.EXTERNAL,
        runtime_state={"reported_status": "succeeded"},
        started_at=late_at - timedelta(minutes=5),
        finished_at=late_at,
    )
    timings = []
    for _ in range(ROUNDS):
        tick = time.perf_counter()
        rollups.rollups_refresh(deployment_id=late.pk)
        timings.append((time.perf_counter() - tick) * 1000)
    since = rollups.refresh_since(late)
    refresh_ms = statistics.median(timings)
    # The whole organisation's day (every service and environment) rewritten at once, as the sweep does.
    day = late_at.astimezone(rollups._zone()).date()
    day_timings = []
    for _ in range(5):
        tick = time.perf_counter()
        rollups.rollups_write(since=day, until=day)
        day_timings.append((time.perf_counter() - tick) * 1000)
    day_ms = statistics.median(day_timings)
    verdict = "met" if refresh_ms <= LATE_TARGET_MS else "MISSED"
    missed = missed or verdict == "MISSED"
    print(
        f"\nLate event: {late_service.slug}'s days from {since} rewritten in {refresh_ms:.1f} ms median "
        f"(p95 {stack.quantile(timings, 0.95):.1f}; target ≤ {LATE_TARGET_MS:.0f}: {verdict}); "
        f"one whole day of the organisation rewritten in {day_ms:.1f} ms median"
    )
    results["late_event"] = {
        "refresh_median_ms": round(refresh_ms, 1),
        "refresh_p95_ms": round(stack.quantile(timings, 0.95), 1),
        "days_rewritten_from": since.isoformat(),
        "organisation_day_median_ms": round(day_ms, 1),
        "target_ms": LATE_TARGET_MS,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "insights.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
