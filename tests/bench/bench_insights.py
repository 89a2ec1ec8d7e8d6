"""Insights benchmark: the DORA pages and API on a generated history, timed in this process.

A history of INSIGHTS_BENCH_SERVICES services (default 400) in 50 teams and 20 systems, each with a deployment
every ~3.5 days for two years in production (about 83,000, written with bulk inserts: ~5 % rolled back, ~2 %
reported failed, ~3 % redeploys of an older release), and a staging deployment for every fourth one. Then each
page is requested ROUNDS times through Django's test client as a signed-in user (rendering included, no network),
and the median and p95 are printed against the issue's targets (organisation ≤ 200 ms, team and service ≤ 100 ms,
the API the same). The issue's targets are for 1,000,000 deployments; this size keeps the bench near a minute.

Runs on a fresh PostgreSQL database `runway_bench_insights` (INSIGHTS_BENCH_DB to rename it) on DATABASE_URL's
server, or a new SQLite file when DATABASE_URL is unset. Writes var/bench/insights.json; exit status 0 when every
target is met, 1 when one is missed.
"""

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
SERVICES = int(os.environ.get("INSIGHTS_BENCH_SERVICES", "400"))
TEAMS, SYSTEMS, DAYS, EVERY_DAYS = 50, 20, 730, 3.5
ROUNDS = 15
TARGETS_MS = {"organisation": 200.0, "team": 100.0, "service": 100.0, "api (team)": 100.0}


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_insights", redis_db=REDIS_DB
    )
    print(f"Database: {database_text}\nBroker: {broker_text}")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from catalog.models import Service, System
    from deployments.models import Deployment, Environment, Release, RuntimeKind, State, Strategy
    from teams import services as team_services

    rng = random.Random(12)
    started = time.perf_counter()
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    teams = [
        team_services.team_create(name=f"Team {n:02d}", slug=f"team-{n:02d}", created_by=None) for n in range(TEAMS)
    ]
    systems = System.objects.bulk_create(
        [System(name=f"System {n:02d}", slug=f"system-{n:02d}", owner=teams[n % TEAMS]) for n in range(SYSTEMS)]
    )
    services = Service.objects.bulk_create(
        [
            Service(slug=f"svc-{n:05d}", name=f"Service {n:05d}", owner=teams[n % TEAMS], system=systems[n % SYSTEMS])
            for n in range(SERVICES)
        ]
    )
    releases = Release.objects.bulk_create(
        [
            Release(service=service, version=f"1.{k}.0", commit_sha=f"{service.pk * 10 + k:040x}")
            for service in services
            for k in range(2)
        ]
    )
    by_service = {service.pk: (releases[2 * i], releases[2 * i + 1]) for i, service in enumerate(services)}
    now = timezone.now()
    rows: list[Deployment] = []
    count = 0
    for service in services:
        old, new = by_service[service.pk]
        moment = now - timedelta(days=DAYS) + timedelta(hours=rng.uniform(0, 48))
        while moment < now:
            draw = rng.random()
            state, reported, release, previous = State.SUCCEEDED, "", new, None
            if draw < 0.05:
                state = State.ROLLED_BACK
            elif draw < 0.07:
                state, reported = State.EXTERNAL, "failed"
            elif draw < 0.10:
                release, previous = old, new
            for environment in (production, staging) if count % 4 == 0 else (production,):
                rows.append(
                    Deployment(
                        release=release,
                        service=service,
                        environment=environment,
                        strategy=Strategy.CANARY,
                        runtime=RuntimeKind.SIMULATED,
                        state=state,
                        runtime_state={"reported_status": reported} if reported else {},
                        previous_release=previous,
                        started_at=moment,
                        finished_at=moment + timedelta(minutes=rng.uniform(2, 90)),
                    )
                )
            count += 1
            moment += timedelta(days=rng.expovariate(1 / EVERY_DAYS))
        if len(rows) >= 20_000:
            Deployment.objects.bulk_create(rows, batch_size=5000)
            rows = []
    Deployment.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    total = Deployment.objects.count()
    print(
        f"History: {SERVICES} services, {TEAMS} teams, {total} deployments over {DAYS} days, "
        f"written in {time.perf_counter() - started:.1f} s"
    )

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
        "api (org, 365 days)": "/api/v1/insights/dora/?scope=org&window=365d",
    }
    results: dict[str, Any] = {"deployments": total, "services": SERVICES, "database": database_text, "pages": {}}
    print(f"\n{'page':<28}{'median ms':>10}{'p95 ms':>10}{'queries':>9}{'target':>10}  verdict")
    print("-" * 78)
    missed = False
    for name, url in cases.items():
        queries: list[str] = []

        def counted(execute: Any, sql: str, *args: Any, seen: list[str] = queries) -> Any:
            seen.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(counted):
            first = client.get(url)
        if first.status_code != 200:
            print(f"{name}: {url} answered {first.status_code}")
            return 1
        timings = []
        for _ in range(ROUNDS):
            tick = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - tick) * 1000)
        median, p95 = statistics.median(timings), stack.quantile(timings, 0.95)
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("met" if median <= target else "MISSED")
        missed = missed or verdict == "MISSED"
        target_text = f"≤ {target:.0f}" if target else "—"
        print(f"{name:<28}{median:>10.1f}{p95:>10.1f}{len(queries):>9}{target_text:>10}  {verdict}")
        results["pages"][name] = {
            "url": url,
            "median_ms": round(median, 1),
            "p95_ms": round(p95, 1),
            "queries": len(queries),
            "target_ms": target,
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "insights.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
