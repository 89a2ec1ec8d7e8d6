"""Ownership reviews benchmark.

Targets (issue 13, "Speed"):
1. Opening a review campaign over 10,000 services: ≤ 10 s (items bulk-created, one audit event per campaign).
2. The team ownership review page for a team owning 500 services: ≤ 100 ms median (in-process requests through the
   whole middleware stack, signed in as the team's lead), with the same query count as for a team of 5.

Runs on a fresh `runway_bench_reviews` database on DATABASE_URL's PostgreSQL server (or a SQLite file), Redis
database 10 of REDIS_URL's server when set; everything else under var/bench/reviews/. Prints a table, writes
var/bench/reviews.json; exit status 0 when every target is met, 1 when one is missed.
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import stack  # tests/bench/, this script's folder, is first on sys.path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
WORK = OUT / "reviews"
SERVICES, TEAMS = 10_000, 100
REDIS_DB = int(os.environ.get("REVIEWS_BENCH_REDIS_DB", "10"))
TARGETS = {"campaign_open_s": 10.0, "team_page_median_ms": 100.0}
TEAM_SERVICES, PAGE_SAMPLES = 500, 40


def _catalog() -> tuple[object, list[object]]:
    """100 teams and 10,000 services, written in bulk (the per-object service functions would take minutes; what is
    measured is the campaign, not making the catalog)."""
    from django.contrib.auth.models import Group, User

    from catalog.models import Service
    from teams.models import Team

    groups = Group.objects.bulk_create([Group(name=f"team:bench-{n}") for n in range(TEAMS)])
    teams = Team.objects.bulk_create(
        [Team(name=f"Bench {n}", slug=f"bench-{n}", group=group) for n, group in enumerate(groups)]
    )
    Service.objects.bulk_create(
        [
            Service(slug=f"svc-{n:05d}", name=f"Service {n:05d}", owner=teams[n % TEAMS], tier=1 + n % 4)
            for n in range(SERVICES)
        ],
        batch_size=2000,
    )
    admin = User.objects.create_user("bench-admin", "admin@example.com", is_staff=True)
    return admin, teams


def _team_page(admin: object) -> dict[str, float | int]:
    """A team of 500 services (verified, some with stale runbooks, each with an open review item and a score) and
    one of 5; the lead's review page timed in-process, and both pages' queries counted."""
    import statistics

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from catalog.models import Service
    from reviews import services
    from reviews.models import Ownership
    from teams import services as team_services
    from techdocs.models import Runbook

    now = timezone.now()
    lead = User.objects.create_user("bench-lead", "lead@example.com")
    pages = {}
    for slug, size in (("big", TEAM_SERVICES), ("small", 5)):
        team = team_services.team_create(name=f"Team {slug}", slug=slug, created_by=None)
        team_services.membership_set(team=team, user=lead, role="lead", changed_by=None)
        made = Service.objects.bulk_create(
            [Service(slug=f"{slug}-{n:04d}", name=f"{slug} {n:04d}", owner=team, tier=1 + n % 4) for n in range(size)]
        )
        Ownership.objects.bulk_create(
            [Ownership(service=s, verified_at=now - timedelta(days=n % 400), verified_by_repr="bench-lead")
             for n, s in enumerate(made)]
        )  # fmt: skip
        Runbook.objects.bulk_create(
            [Runbook(service=s, slug="on-call", title="On call", review_due_at=now - timedelta(days=n % 3 - 1))
             for n, s in enumerate(made)]
        )  # fmt: skip
        services.campaign_open(
            opened_by=admin,  # type: ignore[arg-type]
            title=f"{slug} review",
            scope={"owner": slug},
            due_on=timezone.localdate() + timedelta(days=7),
        )
        pages[slug] = reverse("reviews:team-review", args=[slug])
    client = Client(HTTP_HOST="127.0.0.1")  # an allowed host, as a browser on the portal's machine sends
    client.force_login(lead)
    counts = {}
    for slug, url in pages.items():
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts[slug] = len(queries)
    times, small_times = [], []
    for _ in range(PAGE_SAMPLES):
        started = time.perf_counter()
        client.get(pages["big"])
        times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        client.get(pages["small"])  # the same page for 5 services: what the machine itself costs today
        small_times.append((time.perf_counter() - started) * 1000)
    return {
        "small_team_page_median_ms": statistics.median(small_times),
        "team_page_median_ms": statistics.median(times),
        "team_page_p95_ms": stack.quantile(times, 0.95),
        "team_page_queries": counts["big"],
        "small_team_page_queries": counts["small"],
    }


def main() -> int:
    _env, database_text, _broker_text = stack.prepare(
        work=WORK, db_name="runway_bench_reviews", bench="bench_reviews", redis_db=REDIS_DB
    )
    from django.db import connection
    from django.utils import timezone

    from audit.models import AuditEvent
    from reviews import services

    admin, _teams = _catalog()
    audit_before = AuditEvent.objects.count()
    queries: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started = time.perf_counter()
        campaign = services.campaign_open(
            opened_by=admin,  # type: ignore[arg-type]
            title="Everything",
            scope={},
            due_on=timezone.localdate() + timedelta(days=14),
        )
        open_seconds = time.perf_counter() - started
    items = campaign.items.count()
    figures = {
        "services": SERVICES,
        "items": items,
        "campaign_open_s": open_seconds,
        "campaign_open_queries": len(queries),
        "audit_events": AuditEvent.objects.count() - audit_before,
        "database": database_text,
    }
    page = _team_page(admin)  # after the figures above: the query log they read is a bounded deque
    figures.update(page)
    missed = [name for name, limit in TARGETS.items() if figures[name] > limit]  # type: ignore[operator]
    if items != SERVICES or figures["audit_events"] != 1:
        missed.append("campaign_items")
    if page["team_page_queries"] != page["small_team_page_queries"]:
        missed.append("team_page_queries")
    print(f"Ownership reviews ({SERVICES:,} services, {TEAMS} teams; {database_text})")
    print(
        f"  open a campaign over every service  {open_seconds:.2f} s, {len(queries)} queries, "
        f"{items:,} items, {figures['audit_events']} audit event (target 10 s)"
    )
    print(
        f"  team review page, {TEAM_SERVICES} services    median {page['team_page_median_ms']:.1f} ms, "
        f"p95 {page['team_page_p95_ms']:.1f} ms, {page['team_page_queries']} queries "
        f"(target 100 ms, constant queries); a team of 5: {page['small_team_page_median_ms']:.1f} ms, "
        f"{page['small_team_page_queries']} queries"
    )
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reviews.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
