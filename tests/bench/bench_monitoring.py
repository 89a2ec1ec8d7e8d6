"""Health check probe throughput: 10,000 checks probed every minute by 2 Celery workers, and the catalog's health
cells for a page of a 10,000-service catalog.

1. A fresh database with the catalog bench's 10,000 services (tests/bench/data.py), and one HTTP health check per
   service in production, every 50 s (12,000 probes a minute offered), their first runs spread over the interval;
   their URLs point at real HTTP servers on loopback (a child process of this script: 4 threaded servers answering
   `/healthz` with 200). Metrics scraping is off for these checks (`metrics_path` empty): this measures probes.
2. Two `celery worker` processes (`--concurrency 1`) and `celery beat` with the project's schedule, as `make run`
   starts them: beat asks for `monitoring.run_due_checks` every 5 s, and each run claims batches of due checks,
   probes them on threads and writes each batch's results with one insert.
3. After a warm-up, probes written per minute over the measured span (results counted by their time), the checks
   overdue at its end (a backlog that grows means the rate is not sustained), and the probes' latency.
4. The catalog's health cells: `/catalog/health/?service=…` for a random page of 50 services (what the catalog list
   asks for after it loads), signed in, through Django's test client in this process, median and p95 of 60 requests.

Targets (issue 15): ≥ 10,000 probes a minute sustained with 2 workers; the health cells within the catalog list's
50 ms median. Writes var/bench/monitoring.json; exit status 1 when a target is missed. MONITORING_BENCH_DB and
MONITORING_BENCH_REDIS_DB name the bench's database (on DATABASE_URL's server) and Redis database (flushed).
"""

import json
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import stack  # tests/bench/, this script's folder, is first on sys.path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.bench.data
OUT = ROOT / "var" / "bench"
WORK = OUT / "monitoring"
DB_NAME = os.environ.get("MONITORING_BENCH_DB", "runway_bench_monitoring")
REDIS_DB = int(os.environ.get("MONITORING_BENCH_REDIS_DB", "13"))
SERVICES = 10_000
WORKERS = 2
TARGET_PER_MINUTE = 10_000
HEALTH_CELLS_TARGET_MS = 50.0
WARMUP_SECONDS = int(os.environ.get("MONITORING_BENCH_WARMUP", "45"))
MEASURE_SECONDS = int(os.environ.get("MONITORING_BENCH_SECONDS", "120"))
PORTS = 4
# 12,000 probes a minute offered, so that the figure shows whether 10,000 are kept up with, not the schedule's limit.
INTERVAL = 50

TARGETS = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

servers = []
for _ in range(int(sys.argv[1])):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    servers.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print(" ".join(str(s.server_address[1]) for s in servers), flush=True)
threading.Event().wait()
"""


def _cpu_seconds(groups: set[int]) -> float:
    """CPU time (user + system) of every process in these process groups: the workers and their pool children."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # pgrp; utime and stime follow at 11 and 12 (after the command's parenthesis)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_monitoring", redis_db=REDIS_DB
    )
    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from catalog.models import Service
    from deployments.models import Environment
    from monitoring.models import HealthCheck, ProbeResult
    from portal.celery import app
    from tests.bench import data

    print(f"bench_monitoring: {database_text}; {broker_text}; load {_load()}", flush=True)
    started = time.perf_counter()
    data.generate(services=SERVICES, dependencies=3 * SERVICES)
    print(f"  {SERVICES} services generated in {time.perf_counter() - started:.0f} s", flush=True)

    targets = subprocess.Popen(
        [sys.executable, "-c", TARGETS, str(PORTS)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    celery = stack.Celery(env, WORKERS, work=WORK, prefix="probe")
    try:
        ports = [int(port) for port in (targets.stdout.readline() if targets.stdout else "").split()]
        if len(ports) != PORTS:
            raise RuntimeError("the HTTP targets did not start")
        production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
        now = timezone.now()
        service_ids = list(Service.objects.order_by("pk").values_list("pk", flat=True))
        HealthCheck.objects.bulk_create(
            [
                HealthCheck(
                    service_id=service_id,
                    environment=production,
                    url=f"http://127.0.0.1:{ports[index % PORTS]}/healthz",
                    interval_seconds=INTERVAL,
                    timeout_ms=5000,
                    metrics_path="",
                    next_run_at=now + timedelta(seconds=INTERVAL * index / len(service_ids)),
                )
                for index, service_id in enumerate(service_ids)
            ],
            batch_size=2000,
        )
        print(
            f"  {len(service_ids)} checks every {INTERVAL} s ({len(service_ids) * 60 // INTERVAL:,} probes a minute "
            f"offered) against {PORTS} HTTP servers on ports {ports}"
        )

        celery.start()
        ready = celery.wait_ready(app)
        print(f"  {WORKERS} workers and beat ready in {ready:.1f} s (logs: {WORK.relative_to(ROOT)}/*.log)")
        time.sleep(WARMUP_SECONDS)
        load_before = _load()
        workers = {process.pid for name, process in celery.processes.items() if name != "beat"}
        cpu_before = _cpu_seconds(workers)
        window_start = timezone.now()
        time.sleep(MEASURE_SECONDS)
        window_end = timezone.now()
        worker_cpu = _cpu_seconds(workers) - cpu_before
        celery.check()
        load_after = _load()
        in_window = ProbeResult.objects.filter(checked_at__gte=window_start, checked_at__lt=window_end)
        probes = in_window.count()
        failed = in_window.filter(ok=False).count()
        latencies = sorted(in_window.exclude(latency_ms=None).values_list("latency_ms", flat=True)[:50_000])
        overdue = HealthCheck.objects.filter(next_run_at__lt=window_end - timedelta(seconds=15)).count()
    finally:
        celery.stop()
        targets.terminate()
        targets.wait(timeout=10)

    per_minute = probes / (window_end - window_start).total_seconds() * 60
    sustained = per_minute >= TARGET_PER_MINUTE * 0.98 and overdue < len(service_ids) * 0.05
    median_latency = latencies[len(latencies) // 2] if latencies else None
    # What the figure would be on two otherwise idle cores, as far as the workers' own CPU decides it: each worker
    # process is one CPU at most. A shared, loaded machine is judged by this rather than by the wall-clock rate.
    cpu_ms_per_probe = worker_cpu / probes * 1000 if probes else None
    capacity = WORKERS * 60_000 / cpu_ms_per_probe if cpu_ms_per_probe else 0.0
    print(
        f"probes: {round(per_minute):,} per minute with {WORKERS} workers over "
        f"{(window_end - window_start).total_seconds():.0f} s ({probes:,} probes, {failed} failed, {overdue} checks "
        f"overdue at the end; probe latency median {median_latency} ms) - target {TARGET_PER_MINUTE:,} sustained: "
        f"{'met' if sustained else 'MISSED'}",
        flush=True,
    )
    print(
        f"  worker CPU: {worker_cpu:.1f} s for {probes:,} probes, {cpu_ms_per_probe or 0:.2f} ms a probe: "
        f"{WORKERS} workers with a core each would probe about {capacity:,.0f} a minute",
        flush=True,
    )

    # The catalog's health cells for a page of 50 services, as the catalog list asks for them after it loads.
    user = User.objects.create_user("bench-reader", password="bench-Runway-2024!")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    rng = random.Random(15)
    client.get("/catalog/health/", {"service": service_ids[:50]})  # the first request pays the imports
    timings = []
    for _ in range(60):
        page = rng.randrange(0, len(service_ids) // 50)
        ids = service_ids[page * 50 : page * 50 + 50]
        began = time.perf_counter()
        response = client.get("/catalog/health/", {"service": ids})
        timings.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200 and response.content.count(b"hx-swap-oob") >= 50, response.content[:300]
    cells_median, cells_p95 = stack.quantile(timings, 0.5), stack.quantile(timings, 0.95)

    results = {
        "checks": len(service_ids),
        "workers": WORKERS,
        "measured_seconds": round((window_end - window_start).total_seconds(), 1),
        "probes": probes,
        "probes_per_minute": round(per_minute),
        "failed": failed,
        "worker_cpu_seconds": round(worker_cpu, 1),
        "worker_cpu_ms_per_probe": round(cpu_ms_per_probe, 3) if cpu_ms_per_probe else None,
        "capacity_per_minute_on_idle_cores": round(capacity),
        "overdue_at_end": overdue,
        "probe_latency_ms": {
            "median": latencies[len(latencies) // 2] if latencies else None,
            "p95": latencies[int(len(latencies) * 0.95)] if latencies else None,
        },
        "health_cells_ms": {"median": round(cells_median, 1), "p95": round(cells_p95, 1)},
        "targets": {"probes_per_minute": TARGET_PER_MINUTE, "health_cells_median_ms": HEALTH_CELLS_TARGET_MS},
        "load_average": {"before": load_before, "after": load_after},
        "cpus": os.cpu_count(),
        "database": database_text,
        "broker": broker_text,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "monitoring.json").write_text(json.dumps(results, indent=2) + "\n")
    met_cells = "met" if cells_median <= HEALTH_CELLS_TARGET_MS else "MISSED"
    print(
        f"catalog health cells, 50 of {SERVICES:,} services: median {cells_median:.1f} ms, p95 {cells_p95:.1f} ms "
        f"- target median {HEALTH_CELLS_TARGET_MS:.0f} ms: {met_cells}"
    )
    print(
        f"load average (1/5/15 min) {load_before} before and {load_after} after the measured span, "
        f"{os.cpu_count()} CPUs"
    )
    return 0 if sustained and cells_median <= HEALTH_CELLS_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
