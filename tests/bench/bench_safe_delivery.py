"""Safe delivery, measured: bad and good releases of a fault-injecting service through the real engine, real Celery
workers and the local runtime, and a count of what the judge got right (issue 17).

Each run deploys one release of the stdlib golden path with the fault layer of tests/deployments/faulty.py, whose
`app/fault.json` picks its misbehaviour: crash on start or after a delay, 5xx on 0.5/1/2/5/20 % of requests,
latency ×1.5/×3/×10 at the median or only at p99, a failing health check (requests fine) and the reverse, memory
growth until killed, or good (the baseline's behaviour with the same noise). Every kind runs N times
(SAFE_DELIVERY_N, default 5; good ones SAFE_DELIVERY_GOOD, default 20), in random order (SAFE_DELIVERY_SEED),
alternating canary and blue-green at the targets' default settings except for the bake, shortened to
BAKE_SECONDS; the analysis window keeps its production size (the local runtime's 400 canary requests, sent 8 at a
time), so the requests per window stay what an operator gets. Runs go through LANES services in parallel, each
with its own repository and a good release running as the baseline; after a bad release is promoted, its lane is
reset (replicas stopped, a good release deployed) before the next run, which is not counted.

Reported: a confusion table per kind (rolled back / promoted, per strategy), the false-rollback rate on good
releases, the detection delay in bake intervals (analysis windows judged up to and including the failing one; 0
when the release failed before its first analysis, at start or at its health check), the wall time and the
thresholds in force. Targets: every release with ≥ 1 % errors, ≥ ×1.5 median latency, a crash, a failing health
check or a memory leak rolled back; no good release rolled back; median detection ≤ 2 bake intervals; all within
10 minutes. 0.5 % errors and p99-only latency are reported, not targets: they are the hard cases.

Knobs for a quicker or different run (the defaults are the benchmark): SAFE_DELIVERY_N, SAFE_DELIVERY_GOOD,
SAFE_DELIVERY_LANES (4), SAFE_DELIVERY_WORKERS (3), SAFE_DELIVERY_KINDS (a comma-separated list of parts of kind
names, to run some kinds only), SAFE_DELIVERY_WINDOW_REQUESTS (canary requests per analysis window instead of the
local runtime's 400, to see what another window detects) and SAFE_DELIVERY_BACKGROUND_ERRORS (a share of requests every
release fails, good ones included). A run with any of the last three set is reported as partial.

Runs on a fresh `runway_bench_safe_delivery` PostgreSQL database and Redis database 13 when DATABASE_URL / REDIS_URL
are set, else SQLite and the filesystem broker; everything else under var/bench/safe_delivery/, wiped first. Writes
var/bench/safe_delivery.json; exit status 1 when a target is missed.
"""

import json
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import stack  # tests/bench/, this script's folder, is first on sys.path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.deployments.faulty
OUT = ROOT / "var" / "bench"
WORK = OUT / "safe_delivery"
DB_NAME = "runway_bench_safe_delivery"
REDIS_DB = int(os.environ.get("SAFE_DELIVERY_REDIS_DB", "13"))
WORKERS = int(os.environ.get("SAFE_DELIVERY_WORKERS", "3"))
LANES = int(os.environ.get("SAFE_DELIVERY_LANES", "4"))
N = int(os.environ.get("SAFE_DELIVERY_N", "5"))
N_GOOD = int(os.environ.get("SAFE_DELIVERY_GOOD", "20"))
SEED = int(os.environ.get("SAFE_DELIVERY_SEED", str(int(time.time()))))
BAKE_SECONDS = 1
# Background errors in every release, the baseline and good ones included (0 by default: no release errs unless
# its fault says so). An experiment: what a small steady error rate costs in false rollbacks.
BACKGROUND = float(os.environ.get("SAFE_DELIVERY_BACKGROUND_ERRORS", "0"))
# A quick experiment on some kinds only: SAFE_DELIVERY_KINDS="errors 1 %,good" (each a part of a kind's name).
ONLY = [word.strip() for word in os.environ.get("SAFE_DELIVERY_KINDS", "").split(",") if word.strip()]
# The local runtime's analysis window sends the canary 400 requests; an experiment may ask for another size.
WINDOW_REQUESTS = int(os.environ.get("SAFE_DELIVERY_WINDOW_REQUESTS", "0"))
RUN_TIMEOUT_SECONDS = 120
RESET_TRIES = 5
TARGET_WALL_SECONDS = 600
TARGET_MEDIAN_DELAY = 2
STRATEGIES = ("canary", "blue_green")

# kind -> (fault, must it be rolled back?) ; None: a hard case, reported but not a target
KINDS: dict[str, tuple[dict[str, Any], bool | None]] = {
    "crash on start": ({"mode": "crash_on_start"}, True),
    "crash after 3 s": ({"mode": "crash_after", "seconds": 3}, True),
    **{
        f"errors {rate * 100:g} %": ({"mode": "errors", "rate": rate}, True if rate >= 0.01 else None)
        for rate in (0.005, 0.01, 0.02, 0.05, 0.2)
    },
    **{
        f"latency ×{factor:g} {where}": (
            {"mode": "latency", "factor": factor, "where": where},
            True if where == "median" else None,
        )
        for where in ("median", "p99")
        for factor in (1.5, 3, 10)
    },
    "health failing, requests fine": ({"mode": "health_fails", "onset": 1}, True),
    "requests failing, health fine": ({"mode": "requests_fail"}, True),
    "memory growth until killed": ({"mode": "memory", "mb_per_second": 32, "limit_mb": 128}, True),
    "good": ({"mode": "good"}, False),
}


def main() -> int:
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    stack.supervisord_stale_stop(WORK)
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_safe_delivery", redis_db=REDIS_DB, DEPLOY_ROOT=str(WORK / "deploy")
    )
    print(f"Database: {database_text}\nBroker: {broker_text}\nWork folder: {WORK.relative_to(ROOT)}")
    from django.db import connections, transaction

    from catalog import services as catalog_services
    from deployments import analysis
    from deployments import services as deploy_services
    from deployments.models import TERMINAL_STATES, Deployment, State
    from deployments.runtimes.local import LocalRuntime, supervisord_shutdown
    from portal.celery import app
    from tests.deployments.faulty import faulty_repo_make

    user, team = stack.bench_team()
    staging = deploy_services.environment_create(created_by=user, name="Staging", slug="staging", order=1)
    lanes = []
    for n in range(LANES):
        slug = f"faulty-{n}"
        service = catalog_services.service_create(created_by=user, owner=team, slug=slug, name=f"Faulty {n}")
        target = deploy_services.target_save(
            service=service, environment=staging, user=user, runtime="local", strategy="canary",
            bake_seconds=BAKE_SECONDS,
        )  # fmt: skip
        lanes.append({"service": service, "repo": faulty_repo_make(name=slug, root=WORK), "releases": 0})
    defaults = {
        "canary_steps": target.canary_steps,
        "replicas": target.replicas,
        "bake_seconds": BAKE_SECONDS,
        "analysis_requests": WINDOW_REQUESTS or 400,  # deployments.runtimes.local.ANALYSIS_REQUESTS
        "background_error_rate": BACKGROUND,
        "thresholds": vars(analysis.Thresholds.from_config({})),
    }
    runs: list[dict[str, Any]] = []
    chosen = [kind for kind in KINDS if not ONLY or any(word in kind for word in ONLY)]
    for number, kind in enumerate(chosen):
        count = N_GOOD if kind == "good" else N
        # Alternating, starting with a different strategy from one kind to the next, so even N=1 runs both.
        runs += [{"kind": kind, "strategy": STRATEGIES[(number + i) % 2]} for i in range(count)]
    random.Random(SEED).shuffle(runs)
    queue = list(enumerate(runs))
    lock = threading.Lock()
    failures: list[str] = []

    def wait(deployment: Deployment) -> Deployment:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            current = Deployment.objects.get(pk=deployment.pk)
            if current.state in TERMINAL_STATES:
                return current
            time.sleep(0.1)
        raise RuntimeError(f"deployment #{deployment.pk} did not finish within {RUN_TIMEOUT_SECONDS} s")

    def deploy(lane: dict[str, Any], fault: dict[str, Any], strategy: str) -> Deployment:
        lane["releases"] += 1
        version = f"1.{lane['releases']}.0"
        lane["repo"].release(version, {**fault, "seed": random.randrange(2**32), "background_rate": BACKGROUND})
        release = deploy_services.release_for_ref(service=lane["service"], ref=version, user=user)
        with transaction.atomic():  # the first step is enqueued on commit: it must see the window's size
            deployment = deploy_services.deployment_request(
                service=lane["service"], environment=staging, user=user, release=release, strategy=strategy
            )
            if WINDOW_REQUESTS:
                config = deployment.config | {"analysis_requests": WINDOW_REQUESTS}
                Deployment.objects.filter(pk=deployment.pk).update(config=config)
        return wait(deployment)

    def reset(lane: dict[str, Any]) -> None:
        """Stop whatever runs (a promoted bad release may be dead or dying) and start a good release afresh."""
        for _ in range(RESET_TRIES):  # with background errors even a good release may be judged bad: try again
            LocalRuntime().stop_all(service=lane["service"].slug, environment="staging")
            done = deploy(lane, {"mode": "good"}, "rolling")
            if done.state == State.SUCCEEDED:
                return
        raise RuntimeError(f"lane {lane['service'].slug} could not be reset: {done.failure_reason}")

    def lane_loop(lane: dict[str, Any]) -> None:
        try:
            reset(lane)  # the baseline every run of this lane is judged beside
            while True:
                with lock:
                    if not queue or failures:
                        return
                    index, run = queue.pop(0)
                fault, _ = KINDS[run["kind"]]
                started = time.monotonic()
                done = deploy(lane, fault, run["strategy"])
                analyses = list(
                    done.events.filter(message="Analysis figures").order_by("id").values_list("data", flat=True)
                )
                verdicts = [data["verdict"] for data in analyses]
                rolled_back = done.state in (State.ROLLED_BACK, State.ROLLBACK_FAILED)
                run.update(
                    order=index,
                    lane=lane["service"].slug,
                    deployment=done.pk,
                    state=done.state,
                    outcome="rolled back" if rolled_back else "promoted",
                    verdicts=verdicts,
                    delay_intervals=len(verdicts) if rolled_back else None,
                    reason=done.failure_reason[:300],
                    seconds=round(time.monotonic() - started, 2),
                )
                print(
                    f"  {index + 1:>3}/{len(runs)} {run['kind']:<32} {run['strategy']:<10} {run['outcome']:<11} "
                    f"{verdicts} {run['seconds']} s",
                    flush=True,
                )
                if done.state != State.ROLLED_BACK and (run["kind"] != "good" or done.state != State.SUCCEEDED):
                    reset(lane)
        except Exception as error:  # a lane that breaks stops the bench: its figures would be wrong
            with lock:
                failures.append(f"{lane['service'].slug}: {type(error).__name__}: {error}")
        finally:
            connections.close_all()

    connections.close_all()
    celery = stack.Celery(env, WORKERS, work=WORK, prefix="safe")
    started = time.perf_counter()
    try:
        celery.start()
        celery.wait_ready(app)
        threads = [threading.Thread(target=lane_loop, args=(lane,), name=f"lane{n}") for n, lane in enumerate(lanes)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            try:
                celery.check()
            except RuntimeError as error:
                with lock:
                    failures.append(str(error))
            time.sleep(1)
        for thread in threads:
            thread.join()
    finally:
        wall = time.perf_counter() - started
        celery.stop()
        supervisord_shutdown()
        connections.close_all()

    done_runs = [run for run in runs if "outcome" in run]
    table: dict[str, Any] = {}
    for kind in chosen:
        must_roll_back = KINDS[kind][1]
        mine = [run for run in done_runs if run["kind"] == kind]
        counts = Counter(run["outcome"] for run in mine)
        by_strategy = {
            strategy: dict(Counter(run["outcome"] for run in mine if run["strategy"] == strategy))
            for strategy in STRATEGIES
        }
        delays = [run["delay_intervals"] for run in mine if run["delay_intervals"] is not None]
        expected = {True: "rolled back", False: "promoted", None: "either (hard case)"}[must_roll_back]
        right = counts["rolled back"] if must_roll_back else counts["promoted"]
        table[kind] = {
            "runs": len(mine),
            "rolled_back": counts["rolled back"],
            "promoted": counts["promoted"],
            "by_strategy": by_strategy,
            "expected": expected,
            "pass": None if must_roll_back is None else right == len(mine) and bool(mine),
            "detection_delay_intervals": delays,
        }
    good = table.get("good", {"runs": 0, "rolled_back": 0})
    detected = [
        run["delay_intervals"] for run in done_runs if KINDS[run["kind"]][1] and run["delay_intervals"] is not None
    ]
    median_delay = statistics.median(detected) if detected else None
    targets = {
        "every must-detect kind rolled back": all(row["pass"] for row in table.values() if row["pass"] is not None),
        "no good release rolled back (≥ 20 runs)": good["rolled_back"] == 0 and good["runs"] >= 20,
        "the full matrix ran (N ≥ 5, ≥ 20 good, every kind, shipped window)": N >= 5
        and N_GOOD >= 20
        and not ONLY
        and not WINDOW_REQUESTS
        and not BACKGROUND,
        f"median detection ≤ {TARGET_MEDIAN_DELAY} bake intervals": median_delay is not None
        and median_delay <= TARGET_MEDIAN_DELAY,
        "wall time ≤ 10 min": wall <= TARGET_WALL_SECONDS,
        "every run finished": not failures and len(done_runs) == len(runs),
    }
    results = {
        "runs_per_kind": N,
        "good_runs": N_GOOD,
        "seed": SEED,
        "lanes": LANES,
        "workers": WORKERS,
        "settings": defaults,
        "table": table,
        "false_rollback_rate": round(good["rolled_back"] / good["runs"], 4) if good["runs"] else None,
        "detection_delay_intervals": {
            "median": median_delay,
            "p95": stack.quantile([float(d) for d in detected], 0.95) if detected else None,
            "of": "rolled-back releases of the must-detect kinds",
        },
        "wall_seconds": round(wall, 1),
        "targets": targets,
        "failures": failures,
        "runs": done_runs,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "database": database_text,
            "broker": broker_text,
        },
        "all_pass": all(targets.values()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "safe_delivery.json").write_text(json.dumps(results, indent=2, default=str) + "\n")

    print(f"\n{'kind':<32}{'runs':>5}{'rolled back':>13}{'promoted':>10}  {'expected':<20}{'delays':<14} verdict")
    print("-" * 104)
    for kind, row in table.items():
        verdict = {True: "PASS", False: "MISS", None: "-"}[row["pass"]]
        delays = ",".join(str(d) for d in sorted(row["detection_delay_intervals"]))
        print(
            f"{kind:<32}{row['runs']:>5}{row['rolled_back']:>13}{row['promoted']:>10}  {row['expected']:<20}"
            f"{delays:<14} {verdict}"
        )
    print(f"\nfalse rollbacks on good releases: {good['rolled_back']}/{good['runs']}")
    delay = results["detection_delay_intervals"]
    print(f"detection delay (bake intervals): median {delay['median']}, p95 {delay['p95']}")
    print(f"wall time {wall:.0f} s for {len(done_runs)} runs ({LANES} lanes, {WORKERS} workers, seed {SEED})")
    print(f"thresholds in force: {defaults['thresholds']}")
    print(
        f"bake {BAKE_SECONDS} s, canary steps {defaults['canary_steps']}, {defaults['replicas']} replicas, "
        f"{defaults['analysis_requests']} requests per analysis window"
    )
    for name, ok in targets.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    for failure in failures:
        print(f"  failure: {failure}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; written to var/bench/safe_delivery.json")
    return 0 if results["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
