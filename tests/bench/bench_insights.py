"""Insights benchmark: the DORA pages and API on two years of history at the issue's scale, timed in this process.

A history of INSIGHTS_BENCH_SERVICES services (default 10,000) in 500 teams and 200 systems over two years, written
with PostgreSQL's COPY: about 1,000,000 deployments (a production deployment every ~9 days per service, a
staging one for every fourth: ~5 % rolled back, ~2 % reported failed, ~3 % redeploys of an older release), a release
every ~36 days per service with its change set (its first commit hours before the release), and 20,000 incidents,
half of them naming a deployment as their cause and a quarter a fix. Then the daily rollups are built (timed), each
page is requested ROUNDS times through Django's test client as a signed-in user (rendering included, no network),
from the rollups and, for comparison, computed directly; and a late deploy event is recorded and its service's days
rewritten as a worker would (timed). Targets (issue 12): organisation ≤ 200 ms, team and service ≤ 100 ms, the API
the same, one day recomputed after a late event ≤ 1 s.

Runs on a fresh PostgreSQL database `runway_bench_insights` (INSIGHTS_BENCH_DB to rename it) on DATABASE_URL's
server (the rollups are PostgreSQL's). Writes var/bench/insights.json; exit status 0 when every target is met, 1 when
one is missed.
"""

import io
import json
import os
import random
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
TARGETS_MS = {"organisation": 200.0, "team": 100.0, "service": 100.0, "api (team)": 100.0}
LATE_TARGET_MS = 1000.0


def _copy(cursor: Any, table: str, columns: list[str], rows: Any) -> int:
    """Write rows with COPY (tab-separated text; \\N is NULL), in one stream."""
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
        count += 1
    buffer.seek(0)
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)
    return count


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_insights", redis_db=REDIS_DB
    )
    print(f"Database: {database_text}\nBroker: {broker_text}")
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client, override_settings
    from django.utils import timezone

    from catalog.models import Service, System
    from deployments.models import Deployment, Environment, Release, State
    from incidents.models import Incident, IncidentDeployment
    from insights import rollups
    from teams.models import Team

    if connection.vendor != "postgresql":
        print("The Insights bench needs PostgreSQL (DATABASE_URL): the rollups and COPY are PostgreSQL's.")
        return 1
    rng = random.Random(12)
    started = time.perf_counter()
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
    now = timezone.now()
    begin = now - timedelta(days=DAYS)
    releases_per_service = int(DAYS / RELEASE_DAYS) + 2
    with connection.cursor() as cursor:
        raw = cursor.cursor
        release_rows = (
            (service.pk, f"1.{k}.0", f"{service.pk:020x}{k:020x}", begin + timedelta(days=RELEASE_DAYS * (k - 1)), now)
            for service in services
            for k in range(releases_per_service)
        )
        _copy(
            raw,
            "deployments_release",
            ["service_id", "version", "commit_sha", "committed_at", "created_at"],
            release_rows,
        )
        cursor.execute("SELECT service_id, version, id FROM deployments_release")
        release_ids = {(service_id, version): pk for service_id, version, pk in cursor.fetchall()}
        change_rows = (
            (
                pk,
                "reported",
                "recorded",
                "",
                3,
                True,
                begin + timedelta(days=RELEASE_DAYS * (int(v.split(".")[1]) - 1), hours=-rng.uniform(2, 72)),
                now,
            )
            for (_, v), pk in release_ids.items()
        )
        _copy(
            raw,
            "insights_changeset",
            ["release_id", "source", "status", "note", "commit_count", "complete", "first_commit_at", "recorded_at"],
            change_rows,
        )

        def deployments() -> Any:
            count = 0
            for service in services:
                moment = begin + timedelta(hours=rng.uniform(0, 48))
                while moment < now:
                    draw = rng.random()
                    state, reported, previous = State.SUCCEEDED, "", None
                    k = int((moment - begin).days / RELEASE_DAYS) + 1
                    release = release_ids[(service.pk, f"1.{k}.0")]
                    if draw < 0.05:
                        state = State.ROLLED_BACK
                    elif draw < 0.07:
                        state, reported = State.EXTERNAL, "failed"
                    elif draw < 0.10:
                        previous, release = release, release_ids[(service.pk, f"1.{k - 1}.0")]
                    finished = moment + timedelta(minutes=rng.uniform(2, 90))
                    runtime_state = json.dumps({"reported_status": reported} if reported else {})
                    for environment in (production, staging) if count % 4 == 0 else (production,):
                        yield (
                            release,
                            service.pk,
                            environment.pk,
                            "canary",
                            "simulated",
                            state,
                            "[]",
                            "{}",
                            0,
                            100,
                            0,
                            0,
                            0,
                            0,
                            False,
                            False,
                            "",
                            runtime_state,
                            moment,
                            moment,
                            finished,
                            finished,
                            previous,
                        )
                    count += 1
                    moment += timedelta(days=rng.expovariate(1 / EVERY_DAYS))

        columns = [
            "release_id", "service_id", "environment_id", "strategy", "runtime", "state", "plan", "config",
            "current_step", "traffic_share", "version", "attempts", "rollback_attempts", "metric_errors", "paused",
            "needs_attention", "failure_reason", "runtime_state", "created_at", "started_at", "finished_at",
            "updated_at", "previous_release_id",
        ]  # fmt: skip
        _copy(raw, "deployments_deployment", columns, deployments())
        # Incidents: each hurts one service for a while; half name a production deployment of it as their cause,
        # a quarter a later one as their fix.
        cursor.execute(
            "SELECT id, service_id, finished_at FROM deployments_deployment WHERE environment_id = %s "
            "AND state = 'succeeded' ORDER BY random() LIMIT %s",
            [production.pk, INCIDENTS],
        )
        picked = cursor.fetchall()
    incidents = Incident.objects.bulk_create(
        [
            Incident(
                title=f"Incident {n}",
                severity=f"SEV{1 + n % 4}",
                status="resolved",
                started_at=finished + timedelta(minutes=10),
                identified_at=finished + timedelta(minutes=20),
                mitigated_at=finished + timedelta(minutes=10 + rng.uniform(5, 600)),
                resolved_at=finished + timedelta(hours=12),
            )
            for n, (_, _, finished) in enumerate(picked)
        ],
        batch_size=5000,
    )
    links = []
    for n, (incident, (deployment_id, _, _)) in enumerate(zip(incidents, picked, strict=True)):
        if n % 2 == 0:
            links.append(IncidentDeployment(incident=incident, deployment_id=deployment_id, relation="cause"))
        elif n % 4 == 1:
            links.append(IncidentDeployment(incident=incident, deployment_id=deployment_id, relation="fix"))
    IncidentDeployment.objects.bulk_create(links, batch_size=5000)
    Incident.services.through.objects.bulk_create(
        [
            Incident.services.through(incident_id=incident.pk, service_id=service_id)
            for incident, (_, service_id, _) in zip(incidents, picked, strict=True)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    total = Deployment.objects.count()
    loaded = time.perf_counter() - started
    print(
        f"History: {SERVICES} services, {TEAMS} teams, {total} deployments, {Release.objects.count()} releases with "
        f"change sets, {len(incidents)} incidents over {DAYS} days, written in {loaded:.1f} s"
    )
    tick = time.perf_counter()
    rows_written = rollups.rollups_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE insights_dailyrollup")
    build_s = time.perf_counter() - tick
    print(f"Rollups: {rows_written} rows (service, environment, day) built in {build_s:.1f} s")

    user = User.objects.create_user("bench-reader", password="unused-Runway-2024!")
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
        "incidents": len(incidents),
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
