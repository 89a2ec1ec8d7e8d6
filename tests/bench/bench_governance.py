"""Governance benchmark: deploy policies in CEL, the fact document, the policy step, and the dry-run API.

Targets (issue 11, "Speed"):
1. Evaluating 50 enabled policies against one fact document: ≤ 2 ms median, ≤ 5 ms p95 (compiled and cached).
2. Building the fact document: ≤ 10 ms median (its query count is asserted in tests/governance/test_facts.py).
3. The policy step (facts, 50 policies, the decision and its audit event written) adds ≤ 20 ms median to a
   deployment's start: `deployments.policies.deploy_check` timed on fresh deployments.
4. `POST /api/v1/policy-checks/`: ≥ 300 requests/s on gunicorn (2 sync workers, production-like settings, token
   authentication), 50 policies enabled.

Runs on a fresh `runway_bench_governance` database on DATABASE_URL's PostgreSQL server (or a SQLite file), Redis
database 13 of REDIS_URL's server when set; everything else under var/bench/governance/. Prints a table, writes
var/bench/governance.json; exit status 0 when every target is met, 1 when one is missed.
"""

import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import load  # tests/bench/, this script's folder, is first on sys.path
import stack

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
WORK = OUT / "governance"
POLICIES = 50
SAMPLES = 500
STEP_SAMPLES = 100
TARGETS = {"evaluate_median_ms": 2.0, "evaluate_p95_ms": 5.0, "facts_median_ms": 10.0, "step_median_ms": 20.0}
TARGET_RPS = 300.0
DB_NAME = os.environ.get("GOVERNANCE_BENCH_DB", "runway_bench_governance")
REDIS_DB = int(os.environ.get("GOVERNANCE_BENCH_REDIS_DB", "13"))
CONCURRENCY, SECONDS = 8, 10.0


def _policies_make(admin: Any) -> None:
    """50 policies of the shapes the starter set uses: matches on environment and tier, lists, maps, messages."""
    from governance import services

    shapes = [
        ("change.environment.protected", "'staging' in change.succeeded_in", "deny"),
        ("change.environment.protected && service.tier == 1", "change.strategy in ['canary', 'blue_green']", "deny"),
        ("service.golden_path.name != null", "!service.golden_path.behind", "warn"),
        ("change.environment.protected", "now.weekday <= 5 && now.hour >= 8 && now.hour < 18", "audit"),
        ("true", "service.tags.all(t, t != 'forbidden') && history.failures_7d < 100", "warn"),
    ]
    for index in range(POLICIES):
        match, rule, action = shapes[index % len(shapes)]
        services.policy_save(
            user=admin,
            name=f"bench-{index}",
            match=match,
            rule=rule,
            action=action,
            message_expression="service.slug + ' in ' + change.environment.slug + ': ' + change.version",
        )


def _timed(function: Any, samples: int) -> list[float]:
    figures = []
    for _ in range(samples):
        started = time.perf_counter()
        function()
        figures.append((time.perf_counter() - started) * 1000)
    return figures


def _post_throughput(port: int, token: str, body: bytes) -> tuple[float, int, int]:
    """`CONCURRENCY` threads POST back to back for SECONDS (after a one-second warm-up); (req/s, ok, errors)."""
    head = (
        f"POST /api/v1/policy-checks/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Proto: https\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    payload = head + body
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    begin = time.monotonic() + 1.0
    end = begin + SECONDS

    def one() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(payload)
            first = sock.recv(65536)
            while sock.recv(65536):
                pass
        return first.startswith(b"HTTP/1.1 200")

    if not one():
        raise RuntimeError("POST /api/v1/policy-checks/ did not answer 200")

    def worker() -> None:
        while (now := time.monotonic()) < end:
            ok = one()
            if now >= begin:
                with lock:
                    counts["ok" if ok else "errors"] += 1

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["ok"] / SECONDS, counts["ok"], counts["errors"]


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_governance", redis_db=REDIS_DB,
        API_TOKEN_RATE_LIMIT="1000000",
    )  # fmt: skip
    import cel
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import services as account_services
    from catalog import services as catalog_services
    from deployments import policies
    from deployments import services as deployment_services
    from deployments.models import DeployTarget, Release
    from governance import expressions, facts, selectors

    user, team = stack.bench_team()
    admin = User.objects.create_user("bench-admin", is_staff=True)
    service = catalog_services.service_create(created_by=None, owner=team, slug="bench-api", name="Bench API", tier=1)
    staging = deployment_services.environment_create(created_by=None, name="Staging", slug="staging", order=1)
    production = deployment_services.environment_create(
        created_by=None, name="Production", slug="production", order=2, protected=True
    )
    for environment in (staging, production):
        DeployTarget.objects.create(service=service, environment=environment, runtime="simulated", strategy="canary")
    _policies_make(admin)

    release = Release.objects.create(service=service, version="v1.0.0", commit_sha="a" * 40)
    change = facts.Change(service=service, environment=production, strategy="canary", version="v1.0.0",
                          commit="a" * 40, requester=user)  # fmt: skip
    document = facts.facts_build(change=change)
    versions = selectors.policy_versions_enabled()
    assert len(versions) == POLICIES

    def evaluate() -> None:
        context = cel.Context(document)
        for version in versions:
            expressions.policy_evaluate(version, context)

    evaluate()  # compile once
    evaluation = _timed(evaluate, SAMPLES)
    fact_times = _timed(lambda: facts.facts_build(change=change), SAMPLES)
    with CaptureQueriesContext(connection) as queries:
        facts.facts_build(change=change)

    step_times = []
    for index in range(STEP_SAMPLES):
        deployment = deployment_services.deployment_request(
            service=service, environment=staging, user=user, release=release if index == 0 else
            Release.objects.create(service=service, version=f"v1.0.{index}", commit_sha=f"{index:040x}"),
        )  # fmt: skip
        started = time.perf_counter()
        policies.deploy_check(deployment)
        step_times.append((time.perf_counter() - started) * 1000)
        deployment.state = "cancelled"
        deployment.save(update_fields=["state"])

    _token, plain = account_services.token_create(user=user, name="bench", lifetime_days=1)
    server = load.Server(root=ROOT, env=env, workers=2, log_path=WORK / "gunicorn.log")
    body = json.dumps({"service": "bench-api", "environment": "production", "version": "v1.0.0"}).encode()
    try:
        server.start()
        rps, ok, errors = _post_throughput(server.port, plain, body)
    finally:
        server.stop()

    figures = {
        "evaluate_median_ms": statistics.median(evaluation),
        "evaluate_p95_ms": stack.quantile(evaluation, 0.95),
        "facts_median_ms": statistics.median(fact_times),
        "facts_queries": len(queries),
        "step_median_ms": statistics.median(step_times),
        "policy_checks_rps": rps,
        "policy_checks_ok": ok,
        "policy_checks_errors": errors,
        "database": database_text,
        "broker": broker_text,
    }
    missed = [name for name, limit in TARGETS.items() if figures[name] > limit]
    if rps < TARGET_RPS or errors:
        missed.append("policy_checks_rps")
    print(f"Governance ({POLICIES} policies; {database_text})")
    print(f"  evaluate {POLICIES} policies   median {figures['evaluate_median_ms']:.2f} ms  "
          f"p95 {figures['evaluate_p95_ms']:.2f} ms   (targets 2 / 5 ms)")  # fmt: skip
    print(
        f"  build the fact document  median {figures['facts_median_ms']:.2f} ms, {len(queries)} queries (target 10 ms)"
    )
    print(f"  policy step              median {figures['step_median_ms']:.2f} ms (target 20 ms)")
    print(f"  POST /api/v1/policy-checks/  {rps:.0f} req/s, {errors} errors (target {TARGET_RPS:.0f} req/s)")
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "governance.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
