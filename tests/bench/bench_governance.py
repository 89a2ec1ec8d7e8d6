"""Governance benchmark: deploy policies in CEL, the fact document, the policy step, and the dry-run API.

Targets (issue 11, "Speed"):
1. Evaluating 50 enabled policies against one fact document: ≤ 2 ms median, ≤ 5 ms p95 (compiled and cached).
2. Building the fact document: ≤ 10 ms median (its query count is asserted in tests/governance/test_facts.py).
3. The policy step (facts, 50 policies, the decision and its audit event written) adds ≤ 20 ms median to a
   deployment's start: `deployments.policies.deploy_check` timed on fresh deployments.
4. `POST /api/v1/policy-checks/`: ≥ 300 requests/s on gunicorn (2 sync workers, production-like settings, token
   authentication), 50 policies enabled. Measured in alternating rounds with the trivial view (/healthz) on the same
   gunicorn, so that its share of the trivial view's rate is printed too: on a shared, loaded machine that ratio, the
   CPU each request costs (gunicorn and PostgreSQL, from /proc) and the load average say more than the rate alone.

Runs on a fresh `runway_bench_governance` database on DATABASE_URL's PostgreSQL server (or a SQLite file), Redis
database 13 of REDIS_URL's server when set; everything else under var/bench/governance/. Prints a table, writes
var/bench/governance.json; exit status 0 when every target is met, 1 when one is missed.
"""

import json
import os
import statistics
import sys
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
CONCURRENCY, SECONDS, ROUNDS = 8, 12.0, 3
URL = "/api/v1/policy-checks/"


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


def _cpu_timed(function: Any, samples: int) -> tuple[list[float], float]:
    """Wall milliseconds of each call, and this process's CPU milliseconds per call (the database's not included)."""
    started = time.process_time()
    figures = _timed(function, samples)
    return figures, (time.process_time() - started) * 1000 / samples


def _thread_cpu_ms(function: Any) -> float:
    started = time.thread_time()
    function()
    return (time.thread_time() - started) * 1000


def _throughputs(server: Any, *, token: str, body: bytes, database_url: str) -> dict[str, Any]:
    """POST /api/v1/policy-checks/ and the trivial view (/healthz) on the same gunicorn, in alternating rounds, so
    that the ratio of the two says what the endpoint costs whatever else the machine is doing."""
    runs = {name: load.Throughput(name=name, path=path) for name, path in (("trivial", "/healthz"), ("check", URL))}
    database_pids = stack.database_backend_pids(database_url)
    for round_index in range(ROUNDS):
        for name, run in runs.items():
            load.measure_throughput(
                server,
                name=name,
                path=run.path,
                headers={"Authorization": f"Bearer {token}"} if name == "check" else {},
                method="POST" if name == "check" else "GET",
                body=body if name == "check" else b"",
                concurrency=CONCURRENCY,
                seconds=SECONDS / ROUNDS,
                warmup=1.0 if round_index == 0 else 0.2,
                into=run,
                database_pids=database_pids,
            )
    return runs


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
    from deployments import engine, policies
    from deployments import services as deployment_services
    from deployments.models import Deployment, DeployTarget, Release
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

    load_before = os.getloadavg()
    evaluate()  # compile once
    evaluation, evaluate_cpu = _cpu_timed(evaluate, SAMPLES)
    # Each evaluation's own CPU time: where the wall-clock p95 is the machine's preemption, this one is not.
    evaluation_cpu = [_thread_cpu_ms(evaluate) for _ in range(SAMPLES)]
    fact_times, facts_cpu = _cpu_timed(lambda: facts.facts_build(change=change), SAMPLES)
    with CaptureQueriesContext(connection) as queries:
        facts.facts_build(change=change)

    step_times, step_cpu = [], 0.0
    for index in range(STEP_SAMPLES):
        deployment = deployment_services.deployment_request(
            service=service, environment=staging, user=user, release=release if index == 0 else
            Release.objects.create(service=service, version=f"v1.0.{index}", commit_sha=f"{index:040x}"),
        )  # fmt: skip
        deployment = Deployment.objects.select_related(*engine.CLAIM_RELATED).get(pk=deployment.pk)  # as a step has it
        started, cpu = time.perf_counter(), time.process_time()
        policies.deploy_check(deployment)
        step_times.append((time.perf_counter() - started) * 1000)
        step_cpu += (time.process_time() - cpu) * 1000 / STEP_SAMPLES
        deployment.state = "cancelled"
        deployment.save(update_fields=["state"])

    _token, plain = account_services.token_create(user=user, name="bench", lifetime_days=1)
    server = load.Server(root=ROOT, env=env, workers=2, log_path=WORK / "gunicorn.log")
    body = json.dumps({"service": "bench-api", "environment": "production", "version": "v1.0.0"}).encode()
    busy = load.machine_busy_fraction(2.0)
    try:
        server.start()
        runs = _throughputs(server, token=plain, body=body, database_url=env["DATABASE_URL"])
    finally:
        server.stop()
    check, trivial = runs["check"], runs["trivial"]
    rps, errors = check.rps, check.errors + trivial.errors

    figures = {
        "evaluate_median_ms": statistics.median(evaluation),
        "evaluate_p95_ms": stack.quantile(evaluation, 0.95),
        "evaluate_cpu_ms": evaluate_cpu,
        "evaluate_cpu_p95_ms": stack.quantile(evaluation_cpu, 0.95),
        "facts_median_ms": statistics.median(fact_times),
        "facts_cpu_ms": facts_cpu,
        "facts_queries": len(queries),
        "step_median_ms": statistics.median(step_times),
        "step_cpu_ms": step_cpu,
        "policy_checks_rps": rps,
        "policy_checks_errors": errors,
        "policy_checks_cpu_ms": check.cpu_ms_per_request,
        "policy_checks_database_cpu_ms": check.database_cpu_seconds * 1000 / check.requests if check.requests else None,
        "policy_checks_p50_ms": statistics.median(check.latencies_ms) if check.latencies_ms else None,
        "trivial_rps": trivial.rps,
        "trivial_cpu_ms": trivial.cpu_ms_per_request,
        "ratio_to_trivial": rps / trivial.rps if trivial.rps else 0.0,
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "machine_busy_before_http": busy,
        "cpu_count": os.cpu_count(),
        "database": database_text,
        "broker": broker_text,
    }
    missed = [name for name, limit in TARGETS.items() if figures[name] > limit]
    if rps < TARGET_RPS or errors:
        missed.append("policy_checks_rps")
    print(f"Governance ({POLICIES} policies; {database_text})")
    print(f"  evaluate {POLICIES} policies   median {figures['evaluate_median_ms']:.2f} ms  "
          f"p95 {figures['evaluate_p95_ms']:.2f} ms; CPU {evaluate_cpu:.2f} ms, "
          f"p95 {figures['evaluate_cpu_p95_ms']:.2f} ms (targets 2 / 5 ms)")  # fmt: skip
    print(f"  build the fact document  median {figures['facts_median_ms']:.2f} ms, CPU {facts_cpu:.2f} ms, "
          f"{len(queries)} queries (target 10 ms)")  # fmt: skip
    print(f"  policy step              median {figures['step_median_ms']:.2f} ms, CPU {step_cpu:.2f} ms (target 20 ms)")
    print(f"  POST {URL}  {rps:.0f} req/s, {errors} errors, {check.cpu_ms_per_request:.2f} ms CPU a request "
          f"(of which PostgreSQL {figures['policy_checks_database_cpu_ms'] or 0:.2f} ms) "
          f"(target {TARGET_RPS:.0f} req/s)")  # fmt: skip
    print(f"  trivial view (/healthz)      {trivial.rps:.0f} req/s, {trivial.cpu_ms_per_request:.2f} ms CPU a request; "
          f"policy checks at {figures['ratio_to_trivial']:.0%} of it, same gunicorn, alternating rounds")  # fmt: skip
    print(f"  load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores; "
          f"machine {busy or 0:.0%} busy before the HTTP rounds")  # fmt: skip
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "governance.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
