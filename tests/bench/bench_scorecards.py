"""Scorecards benchmark: scoring a whole catalog, and rescoring one service after a change.

Targets (issue 13, "Speed"):
1. Scoring 10,000 services against a 15-rule scorecard: ≤ 30 s on one worker (`scorecards.rescore_scorecard`, the
   task a worker runs when a scorecard changes, called in this process: one worker's work, facts built in batches).
2. Rescoring one service after a change: ≤ 50 ms median (`scorecards.rescore_service`, the task a change enqueues).

Runs on a fresh `runway_bench_scorecards` database on DATABASE_URL's PostgreSQL server (or a SQLite file), Redis
database 15 of REDIS_URL's server when set (SCORECARDS_BENCH_REDIS_DB); everything else under var/bench/scorecards/.
Prints the figures, writes var/bench/scorecards.json; exit status 0 when every target is met, 1 when one is missed.
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
WORK = OUT / "scorecards"
DB_NAME = "runway_bench_scorecards"
REDIS_DB = int(os.environ.get("SCORECARDS_BENCH_REDIS_DB", "15"))
SERVICES = 10_000
RESCORE_SAMPLES = 100
TARGET_FULL_S, TARGET_ONE_MS = 30.0, 50.0

RULES = [
    ("on-call", "service.on_call_url != ''"),
    ("runbook", "service.runbooks >= 1"),
    ("adr", "service.adrs >= 1"),
    ("chat", "service.chat_channel != ''"),
    ("owner", "service.owner != ''"),
    (
        "runbook-reviewed",
        "service.runbook_last_reviewed != null && timestamp(now.timestamp) - "
        "timestamp(service.runbook_last_reviewed) <= duration('2160h')",
    ),  # fmt: skip
    ("no-stale", "service.stale_runbooks == 0"),
    ("tier-known", "service.tier >= 1 && service.tier <= 4"),
    ("language", "service.language != ''"),
    ("not-legacy", "service.tags.all(t, t != 'legacy')"),
    ("progressive", "service.tier != 1 || delivery.protected_strategies.all(s, s in ['canary', 'blue_green'])"),
    ("golden-path", "!service.golden_path.behind"),
    ("failures", "history.failures_30d * 5 <= history.deployments_30d"),
    ("rollbacks", "history.rollbacks_7d == 0"),
    ("system", "service.system != null"),
]


def _scorecard() -> dict[str, Any]:
    levels = [("Bronze", RULES[:5]), ("Silver", RULES[5:10]), ("Gold", RULES[10:])]
    return {
        "name": "bench-readiness",
        "title": "Bench readiness",
        "filter": "service.lifecycle != 'decommissioned'",
        "levels": [
            {"name": name, "rules": [{"key": k, "name": k, "rule": r, "why": "why", "fix": "fix"} for k, r in rules]}
            for name, rules in levels
        ],
    }


def _docs_make(rng: random.Random) -> None:
    """Runbooks for two services in three (some reviewed), ADRs for half: the facts the rules read vary."""
    from django.utils import timezone

    from catalog.models import Service
    from techdocs.models import ADR, Runbook

    now = timezone.now()
    runbooks, adrs = [], []
    for pk in Service.objects.values_list("pk", flat=True):
        if rng.random() < 0.66:
            reviewed = now - timedelta(days=rng.randrange(0, 200)) if rng.random() < 0.7 else None
            runbook = Runbook(service_id=pk, slug="on-call", title="On call", last_reviewed_at=reviewed)
            runbook.review_due_at = reviewed + timedelta(days=90) if reviewed else None
            runbooks.append(runbook)
        if rng.random() < 0.5:
            adrs.append(ADR(service_id=pk, number=1, title="Use PostgreSQL"))
    Runbook.objects.bulk_create(runbooks, batch_size=2000)
    ADR.objects.bulk_create(adrs, batch_size=2000)


def main() -> int:
    _env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_scorecards", redis_db=REDIS_DB
    )
    import data  # tests/bench/data.py
    from django.contrib.auth.models import User

    from catalog.models import Service
    from scorecards import services, tasks
    from scorecards.models import Score

    rng = random.Random(13)
    data.generate(services=SERVICES, dependencies=0)
    _docs_make(rng)
    admin = User.objects.create_user("bench-admin", is_staff=True)
    scorecard = services.scorecard_save(user=admin, raw=_scorecard())
    rules = sum(len(level["rules"]) for level in scorecard.levels)

    started = time.perf_counter()
    tasks.rescore_scorecard(scorecard.pk)
    full_seconds = time.perf_counter() - started
    scored = Score.objects.filter(scorecard=scorecard).count()

    ids = list(Service.objects.values_list("pk", flat=True))
    tasks.rescore_service(ids[0])  # warm
    samples = []
    for pk in rng.sample(ids, RESCORE_SAMPLES):
        Service.objects.filter(pk=pk).update(chat_channel="" if rng.random() < 0.5 else "#changed")
        started = time.perf_counter()
        tasks.rescore_service(pk)
        samples.append((time.perf_counter() - started) * 1000)

    levels = {
        name or "none": Score.objects.filter(scorecard=scorecard, level=name).count()
        for name in ["", "Bronze", "Silver", "Gold"]
    }
    figures = {
        "services": SERVICES,
        "rules": rules,
        "scored": scored,
        "full_seconds": full_seconds,
        "rescore_one_median_ms": statistics.median(samples),
        "rescore_one_p95_ms": stack.quantile(samples, 0.95),
        "levels": levels,
        "database": database_text,
        "broker": broker_text,
    }
    missed = []
    if full_seconds > TARGET_FULL_S:
        missed.append("full_seconds")
    if figures["rescore_one_median_ms"] > TARGET_ONE_MS:
        missed.append("rescore_one_median_ms")
    print(f"Scorecards ({SERVICES} services, a {rules}-rule scorecard; {database_text})")
    print(f"  score every service        {full_seconds:.1f} s for {scored} scores (target {TARGET_FULL_S:.0f} s)")
    print(f"  rescore one after a change median {figures['rescore_one_median_ms']:.1f} ms, "
          f"p95 {figures['rescore_one_p95_ms']:.1f} ms (target {TARGET_ONE_MS:.0f} ms median)")  # fmt: skip
    print(f"  levels: {levels}")
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scorecards.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
