"""`make bench`: the catalog at 10,000 services, measured through a real gunicorn on loopback.

1. A fresh database: `runway_bench` on PostgreSQL (DATABASE_URL's server if set, else 127.0.0.1:5432 if it
   answers), else a new SQLite file under var/bench/. RUNWAY_VAR_DIR is var/bench/var: the dev data is untouched.
2. `manage.py migrate`, then 300 teams, ~30 systems, 10,000 services and 30,000 dependencies in bulk (data.py).
3. gunicorn, 2 sync workers, production settings, on a free 127.0.0.1 port.
4. Latency (sequential, signed in): the catalog's first page, filtered by owner, a text search, and service pages.
   Throughput (concurrent): /healthz (a trivial JSON view) against /api/v1/services/ (token auth).
5. A table on stdout and var/bench/catalog.json. Exit status 0 when every target is met, 1 when one is missed.

Options: --samples N (per page, default 200), --duration S (per throughput run, default 10), --concurrency C.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]  # platform/ is the source root; ROOT for `tests.bench`

from tests.bench import data, load, stack  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench"
DB_NAME = "runway_bench"
DEFAULT_POSTGRES = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"

LATENCY_TARGET_MEDIAN_MS = 50.0
LATENCY_TARGET_P95_MS = 100.0
THROUGHPUT_TARGET_RATIO = 0.5
THROUGHPUT_ROUNDS = 4  # per endpoint, alternating

SETTINGS_NOTE = (
    "Settings: portal.settings.prod, unchanged (DEBUG off, JSON logs at WARNING, CONN_MAX_AGE=60). "
    "Every request carries X-Forwarded-Proto: https, as the TLS proxy in front of production does, so the "
    "Secure session/CSRF cookies and the CSRF origin check work as deployed over plain loopback http; "
    "the client keeps the Secure cookies by hand. (portal.settings.dev with DEBUG=false would differ from "
    "production only in these security settings; prod is measured so that nothing is special-cased.)"
)


POSTGRES_SCHEMES = ("postgres://", "postgresql://", "pgsql://")


def _with_db_name(url: str, name: str) -> str:
    """The same server and credentials, another database; in the URL form psycopg accepts."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


def _postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_with_db_name(url, "postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def database_prepare() -> tuple[str, str]:
    """A fresh, empty bench database; returns (DATABASE_URL, a description)."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured and not configured.startswith(POSTGRES_SCHEMES):
        if not configured.startswith("sqlite"):
            raise SystemExit(f"make bench supports PostgreSQL or SQLite, not {urlsplit(configured).scheme}")
        configured = ""  # SQLite: a file of our own below, never the configured one
    candidate = _with_db_name(configured, DB_NAME) if configured else DEFAULT_POSTGRES
    if (configured or not os.environ.get("DATABASE_URL")) and _postgres_reachable(candidate):
        import psycopg
        from psycopg import sql

        with psycopg.connect(_with_db_name(candidate, "postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
        host = urlsplit(candidate).hostname
        return candidate, f"PostgreSQL database {DB_NAME} on {host}"
    if configured:
        raise SystemExit(f"DATABASE_URL's PostgreSQL server does not answer: {urlsplit(configured).hostname}")
    path = BENCH_DIR / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    why = "DATABASE_URL is SQLite" if os.environ.get("DATABASE_URL") else "PostgreSQL at 127.0.0.1:5432 did not answer"
    return f"sqlite:///{quote(str(path))}", f"SQLite file {path} ({why})"


REDIS_DB = 13


def bench_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment shared by migrate, the data generator (this process) and gunicorn."""
    return {
        **({"REDIS_URL": redis_url} if redis_url else {}),
        "PYTHONPATH": str(ROOT / "platform"),
        "DJANGO_SETTINGS_MODULE": "portal.settings.prod",
        "DATABASE_URL": database_url,
        "RUNWAY_VAR_DIR": str(BENCH_DIR / "var"),
        "SECRET_KEY": "bench-" + "k" * 50,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        # Allow the throughput run's many token requests per minute.
        "API_TOKEN_RATE_LIMIT": "10000000",
    }


def database_backend_pids(database_url: str) -> Callable[[], list[int]]:
    """A function listing the PostgreSQL backends serving the bench database (the workers' connections), so
    that their CPU time counts in the cost per request; SQLite runs inside the workers and needs nothing."""
    if not database_url.startswith(POSTGRES_SCHEMES):
        return list

    def pids() -> list[int]:
        import psycopg

        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return [row[0] for row in conn.execute(query)]

    return pids


def query_profile(pages: dict[str, list[str]], api_path: str) -> dict[str, dict[str, float]]:
    """Queries per request and time spent in SQL for each measured page, in this process (diagnostics only)."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    client.force_login(User.objects.get(username=data.BENCH_USERNAME))
    profile = {}
    uncached = [f"{api_path}?bench=profile-{index}" for index in range(10)]  # a URL no cache has seen
    for name, paths in {**pages, "API /api/v1/services/": [api_path], f"API {api_path}, uncached": uncached}.items():
        runs = []
        for path in paths[:5] * 2 if len(paths) < 10 else paths:
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(path)
                total = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (path, response.status_code)
            sql_ms = sum(float(query["time"]) for query in captured.captured_queries) * 1000
            runs.append((len(captured), sql_ms, total))
        runs = runs[len(runs) // 2 :]  # the second round: warm caches
        profile[name] = {
            "queries": max(run[0] for run in runs),
            "sql_ms": round(sum(run[1] for run in runs) / len(runs), 2),
            "in_process_ms": round(sum(run[2] for run in runs) / len(runs), 2),
        }
    return profile


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="measured GETs per page (default 200)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads for throughput (default 4)")
    args = parser.parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "var" / "staticfiles").mkdir(parents=True, exist_ok=True)
    overall = time.perf_counter()

    database_url, database_text = database_prepare()
    redis_url, redis_text = stack.redis_url(work=BENCH_DIR, redis_db=REDIS_DB, local_default=True)
    env = bench_environment(database_url, redis_url)
    if not redis_url:
        os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    print(f"Database: {database_text}")
    print(f"Cache and broker: {redis_text}")

    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env={**os.environ}, check=True
    )
    migrate_seconds = time.perf_counter() - started
    print(f"Migrated in {migrate_seconds:.1f} s")

    import django

    django.setup()
    from django.db import connection, connections

    dataset = data.generate()
    token = data.api_token_create()
    data.catalog_cache_invalidate()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would soon after a bulk load
    db_version = connection.Database.__name__
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            db_version = f"PostgreSQL {cursor.fetchone()[0]}"
    elif connection.vendor == "sqlite":
        db_version = f"SQLite {connection.Database.sqlite_version}"
    print(
        f"Generated {dataset.teams} teams, {dataset.systems} systems, {dataset.services} services, "
        f"{dataset.dependencies} dependencies, {dataset.grants} ownership grants and {dataset.audit_events} "
        f"audit events in {dataset.seconds:.1f} s"
    )

    rng = random.Random(7)
    slugs = rng.sample(dataset.service_slugs_with_dependencies, min(250, len(dataset.service_slugs_with_dependencies)))
    pages = {
        "Catalog, first page": ["/catalog/"],
        f"Catalog, owner={dataset.busiest_team_slug} ({dataset.busiest_team_services})": [
            f"/catalog/?owner={dataset.busiest_team_slug}"
        ],
        f"Catalog, q={dataset.search_word} ({dataset.search_matches})": [f"/catalog/?q={dataset.search_word}"],
        "Service page (random, with deps)": [f"/catalog/services/{slug}/" for slug in slugs],
    }
    api_path = "/api/v1/services/"
    connections.close_all()

    busy_before = load.machine_busy_fraction()
    server = load.Server(root=ROOT, env={**os.environ}, workers=2, log_path=BENCH_DIR / "gunicorn.log")
    latencies: list[load.Latency] = []
    throughputs = [
        load.Throughput(name="Trivial JSON view", path="/healthz"),
        load.Throughput(name="Services API list", path=api_path),
        # Not a target: every request misses any response cache, as a client paging through a changing catalog.
        load.Throughput(name="Services API list, uncached", path=api_path),
    ]
    print(f"Starting gunicorn (2 sync workers) on {server.base_url}; its log: {server.log_path}")
    try:
        server.start()
        browser = load.Browser(server.base_url)
        browser.sign_in(username=data.BENCH_USERNAME, password=data.BENCH_PASSWORD)
        for name, paths in pages.items():
            result = load.measure_latency(
                browser, name=name, paths=paths, samples=args.samples, warmup=20, max_seconds=45
            )
            latencies.append(result)
            print(f"  {name}: median {result.median:.1f} ms, p95 {result.p95:.1f} ms ({len(result.samples_ms)} GETs)")
        browser.close()
        # Alternating rounds, so that both endpoints see the same background load on a shared machine.
        bearer = {"Authorization": f"Bearer {token}"}
        variants = [({}, False), (bearer, False), (bearer, True)]
        for round_index in range(THROUGHPUT_ROUNDS):
            for run, (extra, unique) in zip(throughputs, variants, strict=True):
                load.measure_throughput(
                    server,
                    name=run.name,
                    path=run.path,
                    headers=extra,
                    concurrency=args.concurrency,
                    seconds=args.duration / THROUGHPUT_ROUNDS,
                    warmup=1.0 if round_index == 0 else 0.25,
                    into=run,
                    database_pids=database_backend_pids(database_url),
                    unique=unique,
                )
        for run in throughputs:
            print(f"  {run.name}: {run.rps:.0f} req/s ({run.requests} requests, {run.errors} errors)")
    finally:
        server.stop()
    busy_after = load.machine_busy_fraction()

    profile = query_profile(pages, api_path)
    connections.close_all()

    # The report.
    trivial, api, api_uncached = throughputs
    ratio = api.rps / trivial.rps if trivial.rps else 0.0
    rows = []
    all_pass = True
    print()
    print(SETTINGS_NOTE)
    print()
    print(f"{'Page':<44} {'median':>8} {'p95':>8}  {'target':<16} {'result':<6} {'queries':>7} {'SQL ms':>7}")
    print("-" * 104)
    for result in latencies:
        ok = result.median <= LATENCY_TARGET_MEDIAN_MS and result.p95 <= LATENCY_TARGET_P95_MS and not result.errors
        all_pass &= ok
        stats = profile[result.name]
        print(
            f"{result.name:<44} {result.median:>6.1f}ms {result.p95:>6.1f}ms  "
            f"{'≤50 / ≤100 ms':<16} {verdict(ok):<6} {stats['queries']:>7.0f} {stats['sql_ms']:>7.1f}"
        )
        rows.append(
            {
                "name": result.name,
                "path": result.path,
                "samples": len(result.samples_ms),
                "errors": result.errors,
                "median_ms": round(result.median, 2),
                "p95_ms": round(result.p95, 2),
                "min_ms": round(min(result.samples_ms), 2) if result.samples_ms else None,
                "max_ms": round(max(result.samples_ms), 2) if result.samples_ms else None,
                "response_bytes": result.bytes,
                "target_median_ms": LATENCY_TARGET_MEDIAN_MS,
                "target_p95_ms": LATENCY_TARGET_P95_MS,
                "pass": ok,
                "profile": stats,
            }
        )
    print()
    print(f"{'Throughput':<44} {'req/s':>8} {'errors':>7} {'gunicorn CPU':>13} {'client CPU':>11} {'CPU/request':>12}")
    print("-" * 101)
    for run in throughputs:
        print(
            f"{run.name + ' ' + run.path:<44} {run.rps:>8.1f} {run.errors:>7} "
            f"{run.server_cpu_cores:>11.2f} c {run.client_cpu_cores:>9.2f} c {run.cpu_ms_per_request:>9.2f} ms"
        )
    cpu_ratio = trivial.cpu_ms_per_request / api.cpu_ms_per_request if api.cpu_ms_per_request else 0.0
    ratio_ok = ratio >= THROUGHPUT_TARGET_RATIO and not api.errors
    all_pass &= ratio_ok
    api_stats = profile["API /api/v1/services/"]
    print(
        f"Ratio API / trivial: {ratio:.3f} (target ≥ {THROUGHPUT_TARGET_RATIO}) {verdict(ratio_ok)}"
        f"   [API list in process: {api_stats['queries']:.0f} queries, {api_stats['sql_ms']:.1f} ms SQL, "
        f"{api_stats['in_process_ms']:.1f} ms total]"
    )
    print(
        f"CPU cost ratio trivial / API (gunicorn + database CPU per request): {cpu_ratio:.3f}; on a quiet machine "
        "where the server is CPU-bound, the req/s ratio tends to this figure."
    )
    uncached_ratio = api_uncached.rps / trivial.rps if trivial.rps else 0.0
    cold = profile["API /api/v1/services/, uncached"]
    print(
        f"Not a target: uncached API list / trivial: {uncached_ratio:.3f} [in process: {cold['queries']:.0f} "
        f"queries, {cold['sql_ms']:.1f} ms SQL, {cold['in_process_ms']:.1f} ms total]"
    )

    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "uname": " ".join(os.uname()),
            "python": sys.version.split()[0],
            "db_vendor": connection.vendor,
            "db_version": db_version,
            "database": database_text,
            "cache": redis_text,
        },
        "server": {
            "command": "gunicorn portal.wsgi --chdir platform --workers 2 --worker-class sync --bind 127.0.0.1:<port>",
            "settings": "portal.settings.prod",
            "note": SETTINGS_NOTE,
        },
        "data": {
            "teams": dataset.teams,
            "systems": dataset.systems,
            "services": dataset.services,
            "dependencies": dataset.dependencies,
            "ownership_grants": dataset.grants,
            "audit_events": dataset.audit_events,
            "migrate_seconds": round(migrate_seconds, 2),
            "generation_seconds": round(dataset.seconds, 2),
            "owner_filter": {"team": dataset.busiest_team_slug, "services": dataset.busiest_team_services},
            "search": {"q": dataset.search_word, "matches": dataset.search_matches},
        },
        "latency": rows,
        "throughput": {
            "concurrency": args.concurrency,
            "rounds_alternating": THROUGHPUT_ROUNDS,
            "runs": [
                {
                    "name": run.name,
                    "path": run.path,
                    "seconds": round(run.seconds, 2),
                    "requests": run.requests,
                    "errors": run.errors,
                    "requests_per_second": round(run.rps, 1),
                    "gunicorn_cpu_cores": round(run.server_cpu_cores, 2),
                    "client_cpu_cores": round(run.client_cpu_cores, 2),
                    "cpu_ms_per_request_gunicorn_and_database": round(run.cpu_ms_per_request, 3),
                }
                for run in throughputs
            ],
            "ratio_api_to_trivial": round(ratio, 4),
            "ratio_uncached_api_to_trivial_not_a_target": round(uncached_ratio, 4),
            "cpu_cost_ratio_trivial_to_api": round(cpu_ratio, 4),
            "target_ratio": THROUGHPUT_TARGET_RATIO,
            "pass": ratio_ok,
            "api_profile": api_stats,
            "api_uncached_profile": cold,
        },
        "all_pass": all_pass,
        "total_seconds": round(time.perf_counter() - overall, 1),
    }
    busy = max(busy_before or 0.0, busy_after or 0.0) > 0.15
    if busy:
        print(
            f"\nWarning: other work kept the CPUs busy while the benchmark was idle ({busy_before or 0:.0%} before and "
            f"{busy_after or 0:.0%} after the measurements): latencies are inflated and req/s deflated (the ratio "
            "less so). Run again on a quiet machine for figures to hold against the targets."
        )
    report["machine"]["cpu_busy_with_other_work_before"] = busy_before
    report["machine"]["cpu_busy_with_other_work_after"] = busy_after
    report["machine"]["busy"] = busy
    out = BENCH_DIR / "catalog.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\n{'All targets met' if all_pass else 'Some targets missed'}; figures in {out.relative_to(ROOT)}")
    print(f"Total {report['total_seconds']:.0f} s")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
