"""Ownership reviews benchmark.

Targets (issue 13, "Speed"):
1. Opening a review campaign over 10,000 services: ≤ 10 s (items bulk-created, one audit event per campaign).

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
TARGETS = {"campaign_open_s": 10.0}


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


def main() -> int:
    _env, database_text, _broker_text = stack.prepare(
        work=WORK, db_name="runway_bench_reviews", bench="bench_reviews", redis_db=REDIS_DB
    )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from audit.models import AuditEvent
    from reviews import services

    admin, _teams = _catalog()
    audit_before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as queries:
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
    missed = [name for name, limit in TARGETS.items() if figures[name] > limit]  # type: ignore[operator]
    if items != SERVICES or figures["audit_events"] != 1:
        missed.append("campaign_items")
    print(f"Ownership reviews ({SERVICES:,} services, {TEAMS} teams; {database_text})")
    print(
        f"  open a campaign over every service  {open_seconds:.2f} s, {len(queries)} queries, "
        f"{items:,} items, {figures['audit_events']} audit event (target 10 s)"
    )
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reviews.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
