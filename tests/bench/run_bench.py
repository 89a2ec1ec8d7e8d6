"""`make bench`: the catalog's reads at 10,000 and 100,000 services, each as a cache hit and as a cache miss.

For each size:
1. A fresh database (`runway_bench_10k`, `runway_bench_100k` on PostgreSQL: DATABASE_URL's server if set, else
   127.0.0.1:5432 if it answers; else SQLite files under var/bench/), migrated, and filled in bulk by data.py: 300
   teams, 30 systems, N services with their stored documents, 3N dependencies, grants and audit history.
2. Two gunicorns (2 sync workers each, production settings) on the same database and Redis: one with the catalog
   caches on (hits: the same URL again and again), one with CATALOG_API_CACHE=false and CATALOG_PAGE_CACHE=false
   whose every request also carries a query parameter of its own (misses: nothing can be answered from a cache).
3. API throughput (token auth), in alternating rounds, each read as a ratio to the trivial JSON view (/healthz)
   measured on the same gunicorn in the same rounds: one service by name (random), the first page of 50, an owner
   filter, a lifecycle + tier filter, a text search of about 50 hits. Then page latency (signed in, sequential): the
   catalog page with each filter and service pages.
4. A table on stdout and var/bench/catalog.json. Targets apply to misses (issue 14), and each miss figure at
   100,000 must be within 1.25x of its figure at 10,000. Exit status 1 when a target is missed.

Options: --sizes (default 10000,100000), --seconds S (per read per server, default 3), --samples N (per page, 60),
--reuse (measure the databases an earlier run filled, when they hold the same sizes: loading 100,000 services with
their history takes minutes on a busy machine).
Environment: RUNWAY_BENCH_DB (database name prefix), RUNWAY_BENCH_REDIS_DB (default 13).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]  # platform/ is the source root; ROOT for `tests.bench`

from tests.bench import load, stack  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench"
DB_PREFIX = os.environ.get("RUNWAY_BENCH_DB", "runway_bench")
REDIS_DB = int(os.environ.get("RUNWAY_BENCH_REDIS_DB", "13"))
POSTGRES_SCHEMES = ("postgres://", "postgresql://", "pgsql://")

# Targets on cache misses (issue 14).
RATIO_TARGETS = {"by_name": 0.60, "first_page": 0.40, "owner": 0.40, "lifecycle_tier": 0.40, "search": 0.30}
LATENCY_TARGETS = {"catalog": (25.0, 50.0), "service": (30.0, 60.0)}  # median, p95 ms
GROWTH_LIMIT = 1.25
ROUNDS = 2

SETTINGS_NOTE = (
    "Settings: portal.settings.prod (DEBUG off, JSON logs at WARNING, CONN_MAX_AGE=60). Requests carry "
    "X-Forwarded-Proto: https, as from the TLS proxy in front of production."
)


def _with_db_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


def _postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_with_db_name(url, "postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def database_prepare(db_name: str) -> tuple[str, str]:
    """A fresh, empty bench database; returns (DATABASE_URL, a description)."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured and not configured.startswith(POSTGRES_SCHEMES):
        if not configured.startswith("sqlite"):
            raise SystemExit(f"make bench supports PostgreSQL or SQLite, not {urlsplit(configured).scheme}")
        configured = ""
    candidate = _with_db_name(configured or "postgresql://postgres@127.0.0.1:5432/postgres", db_name)
    if (configured or not os.environ.get("DATABASE_URL")) and _postgres_reachable(candidate):
        import psycopg
        from psycopg import sql

        with psycopg.connect(_with_db_name(candidate, "postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
        return candidate, f"PostgreSQL database {db_name} on {urlsplit(candidate).hostname}"
    if configured:
        raise SystemExit(f"DATABASE_URL's PostgreSQL server does not answer: {urlsplit(configured).hostname}")
    path = BENCH_DIR / f"{db_name}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{quote(str(path))}", f"SQLite file {path}"


def bench_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment shared by migrate, the data generator and gunicorn."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    return {
        **env,
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
        "API_TOKEN_RATE_LIMIT": "10000000",
    }


def generate(services: int) -> None:
    """In a child process (one database per size): fill the migrated database, then print its facts()."""
    import django

    django.setup()
    from django.db import connection

    from tests.bench import data

    dataset = data.generate(services=services, dependencies=3 * services)
    data.catalog_cache_invalidate()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would soon after a bulk load
    facts(seconds=dataset.seconds)


def facts(*, seconds: float | None = None) -> None:
    """In a child process: print (JSON) what the reads need from a filled database, and a fresh API token."""
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Count, Exists, OuterRef, Q

    from catalog.models import Dependency, Service
    from teams.models import Team
    from tests.bench import data

    if seconds is None and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    owned = dict(Service.objects.values("owner").annotate(n=Count("id")).values_list("owner", "n"))
    busiest = Team.objects.get(pk=max(owned, key=owned.__getitem__))
    total = Service.objects.count()

    def matches(query: str) -> int:
        found = Service.objects.all()
        for word in query.split():
            found = found.filter(Q(name__icontains=word) | Q(slug__icontains=word) | Q(description__icontains=word))
        return found.count()

    near_50 = sorted(owned, key=lambda pk: abs(owned[pk] - 45))[:8]
    search = min(
        ((name, matches(name)) for name in Team.objects.filter(pk__in=near_50).values_list("name", flat=True)),
        key=lambda pair: abs(pair[1] - 50),
    )
    both_ways = Service.objects.filter(
        Exists(Dependency.objects.filter(source=OuterRef("pk"))),
        Exists(Dependency.objects.filter(target=OuterRef("pk"))),
    )
    slugs = list(both_ways.order_by("pk").values_list("slug", flat=True)[:2000])
    print(
        json.dumps(
            {
                "token": data.api_token_create(),
                "seconds": seconds,
                "services": total,
                "dependencies": Dependency.objects.count(),
                "owner": busiest.slug,
                "owner_services": owned[busiest.pk],
                "search": search[0],
                "search_matches": search[1],
                "lifecycle_tier_services": Service.objects.filter(lifecycle="production", tier=1).count(),
                "slugs": random.Random(7).sample(slugs, min(250, len(slugs))),
                "database": connection.vendor,
            }
        )
    )


def _reusable(database_url: str, size: int) -> bool:
    """Whether an earlier run's database for this size is there, migrated and filled (PostgreSQL only)."""
    if not database_url.startswith(POSTGRES_SCHEMES) or not _postgres_reachable(database_url):
        return False
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            services = conn.execute("SELECT count(*) FROM catalog_service").fetchone()[0]
            documents = conn.execute("SELECT count(*) FROM catalog_servicedocument").fetchone()[0]
            user = conn.execute("SELECT count(*) FROM auth_user WHERE username = 'bench'").fetchone()[0]
    except psycopg.Error:
        return False
    return services == size and documents == size and user == 1


def measure_size(size: int, args: argparse.Namespace, redis_url: str) -> dict:
    """Everything measured at one catalog size."""
    name = f"{DB_PREFIX}_{size // 1000}k"
    existing = _with_db_name(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres", name)
    if args.reuse and _reusable(existing, size):
        database_url, database_text = existing, f"PostgreSQL database {name} (kept from an earlier run)"
        env = bench_environment(database_url, redis_url)
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v0"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True)  # noqa: S603 - a fixed command line
        migrated, step = 0.0, "--facts"
    else:
        database_url, database_text = database_prepare(name)
        env = bench_environment(database_url, redis_url)
        started = time.perf_counter()
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v0"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True)  # noqa: S603 - a fixed command line
        migrated, step = time.perf_counter() - started, "--generate"
    out = subprocess.run(  # noqa: S603 - this file, with a number
        [sys.executable, __file__, step, str(size)], cwd=ROOT, env=env, check=True, capture_output=True
    ).stdout
    facts = json.loads(out.decode().strip().splitlines()[-1])
    generated = "reused" if facts["seconds"] is None else f"generated in {facts['seconds']:.0f} s"
    print(
        f"\n{size:,} services: {database_text}; migrated in {migrated:.0f} s, {generated} "
        f"({facts['dependencies']:,} dependencies; owner {facts['owner']} has {facts['owner_services']:,}; "
        f"production tier 1: {facts['lifecycle_tier_services']:,}; search '{facts['search']}': "
        f"{facts['search_matches']} hits)"
    )
    api = "/api/v1/services/"
    reads = {
        "trivial": ["/healthz"],
        "by_name": [f"{api}{slug}/" for slug in facts["slugs"]],
        "first_page": [api],
        "owner": [f"{api}?owner={facts['owner']}"],
        "lifecycle_tier": [f"{api}?lifecycle=production&tier=1"],
        "search": [f"{api}?q={quote(facts['search'])}"],
    }
    pages = {
        "catalog": ["/catalog/"],
        "catalog_owner": [f"/catalog/?owner={facts['owner']}"],
        "catalog_lifecycle_tier": ["/catalog/?lifecycle=production&tier=1"],
        "catalog_search": [f"/catalog/?q={quote(facts['search'])}"],
        "service": [f"/catalog/services/{slug}/" for slug in facts["slugs"]],
    }
    modes = {
        "hit": {"CATALOG_API_CACHE": "true", "CATALOG_PAGE_CACHE": "true"},
        "miss": {"CATALOG_API_CACHE": "false", "CATALOG_PAGE_CACHE": "false"},
    }
    servers = {
        mode: load.Server(root=ROOT, env={**env, **extra}, workers=2, log_path=BENCH_DIR / f"gunicorn-{mode}.log")
        for mode, extra in modes.items()
    }
    runs = {mode: {read: load.Throughput(name=read, path=paths[0]) for read, paths in reads.items()} for mode in modes}
    latencies: dict[str, dict[str, load.Latency]] = {mode: {} for mode in modes}
    bearer = {"Authorization": f"Bearer {facts['token']}"}
    busy_before = load.machine_busy_fraction(1.0)
    try:
        for server in servers.values():
            server.start()
        for round_index in range(ROUNDS):
            for mode, server in servers.items():
                for read, paths in reads.items():
                    load.measure_throughput(
                        server,
                        name=read,
                        path=paths[0],
                        paths=paths if len(paths) > 1 else None,
                        headers={} if read == "trivial" else bearer,
                        concurrency=args.concurrency,
                        seconds=args.seconds / ROUNDS,
                        warmup=0.5 if round_index == 0 else 0.2,
                        into=runs[mode][read],
                        database_pids=stack.database_backend_pids(database_url),
                        unique=mode == "miss" and read != "trivial",
                    )
        for round_index in range(ROUNDS):
            for mode, server in servers.items():
                browser = load.Browser(server.base_url)
                browser.sign_in(username="bench", password="bench-Runway-2024!")  # data.BENCH_PASSWORD
                for page, paths in pages.items():
                    latencies[mode][page] = load.measure_latency(
                        browser,
                        name=page,
                        paths=paths,
                        samples=args.samples // ROUNDS,
                        warmup=5 if round_index == 0 else 0,
                        max_seconds=30,
                        unique=mode == "miss",
                        into=latencies[mode].get(page),
                        cpu_pids=lambda server=server: server.pids() + stack.database_backend_pids(database_url)(),
                    )
                browser.close()
    finally:
        for server in servers.values():
            server.stop()
    result: dict = {
        "services": size,
        "database": database_text,
        "data": {k: v for k, v in facts.items() if k not in ("token", "slugs")},
    }
    result["busy_before"] = busy_before
    result["load_average"] = [round(value, 2) for value in os.getloadavg()]  # 1, 5 and 15 minutes, after measuring
    print(f"Load average after measuring {size:,}: {' '.join(f'{v:.2f}' for v in result['load_average'])}")
    for mode in modes:
        trivial = runs[mode]["trivial"].rps
        result[mode] = {
            "throughput": {
                read: {
                    "rps": round(run.rps, 1),
                    "ratio": round(run.rps / trivial, 3) if trivial else 0.0,
                    "errors": run.errors,
                    "cpu_ms_per_request": round(run.cpu_ms_per_request, 3),
                }
                for read, run in runs[mode].items()
            },
            "latency": {
                page: {
                    "median_ms": round(latency.median, 1),
                    "p95_ms": round(latency.p95, 1),
                    "samples": len(latency.samples_ms),
                    "errors": latency.errors,
                    "cpu_ms_per_request": round(latency.cpu_ms_per_request, 1),
                }
                for page, latency in latencies[mode].items()
            },
        }
    return result


READ_NAMES = {
    "by_name": "API: one service by name",
    "first_page": "API: first page of 50",
    "owner": "API: owner filter",
    "lifecycle_tier": "API: lifecycle + tier",
    "search": "API: text search (~50 hits)",
}
PAGE_NAMES = {
    "catalog": "Page: catalog, first page",
    "catalog_owner": "Page: catalog, owner",
    "catalog_lifecycle_tier": "Page: catalog, lifecycle + tier",
    "catalog_search": "Page: catalog, search",
    "service": "Page: service (random)",
}


def report(sizes: list[dict]) -> bool:
    """Print the hit/miss table and judge the misses; True when every target is met."""
    ok = True
    heads = [f"{s['services'] // 1000}k {mode}" for s in sizes for mode in ("hit", "miss")]
    print(f"\n{SETTINGS_NOTE}\n")
    print(f"{'read':<34}" + "".join(f"{head:>17}" for head in heads) + f"  {'target (miss)':<16}{'growth':>7}  result")
    print("-" * (34 + 17 * len(heads) + 34))
    trivial = "".join(
        f"{s[mode]['throughput']['trivial']['rps']:>11.0f} req/s" for s in sizes for mode in ("hit", "miss")
    )
    print(f"{'API: trivial JSON view (/healthz)':<34}{trivial}")
    for read, label in READ_NAMES.items():
        cells = "".join(
            f"{s[mode]['throughput'][read]['ratio']:>8.0%} ({s[mode]['throughput'][read]['rps']:>4.0f}/s)"
            for s in sizes
            for mode in ("hit", "miss")
        )
        misses = [s["miss"]["throughput"][read] for s in sizes]
        met = all(m["ratio"] >= RATIO_TARGETS[read] and not m["errors"] for m in misses)
        growth = misses[0]["ratio"] / misses[-1]["ratio"] if misses[-1]["ratio"] else float("inf")
        met &= growth <= GROWTH_LIMIT
        ok &= met
        target = f"≥ {RATIO_TARGETS[read]:.0%}"
        print(f"{label:<34}{cells}  {target:<16}{growth:>6.2f}x  {'PASS' if met else 'MISS'}")
    for page, label in PAGE_NAMES.items():
        cells = "".join(
            f"{s[mode]['latency'][page]['median_ms']:>7.1f}/{s[mode]['latency'][page]['p95_ms']:>5.1f} ms"
            for s in sizes
            for mode in ("hit", "miss")
        )
        median_target, p95_target = LATENCY_TARGETS["service" if page == "service" else "catalog"]
        misses = [s["miss"]["latency"][page] for s in sizes]
        met = all(m["median_ms"] <= median_target and m["p95_ms"] <= p95_target and not m["errors"] for m in misses)
        growth = misses[-1]["median_ms"] / misses[0]["median_ms"] if misses[0]["median_ms"] else float("inf")
        met &= growth <= GROWTH_LIMIT
        ok &= met
        target = f"≤ {median_target:.0f}/{p95_target:.0f} ms"
        print(f"{label:<34}{cells}  {target:<16}{growth:>6.2f}x  {'PASS' if met else 'MISS'}")
    cpu = "".join(
        f"{'/'.join(str(round(s[mode]['latency'][page]['cpu_ms_per_request'])) for page in PAGE_NAMES):>17}"
        for s in sizes
        for mode in ("hit", "miss")
    )
    print(f"{'Pages: CPU ms per page (each row)':<34}{cpu}")
    print(
        "\nAPI cells: req/s as a share of the trivial view's on the same gunicorn in the same rounds (req/s). Page "
        "cells: median/p95. Growth: the miss figure at the largest size against the smallest (≤ 1.25x)."
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="catalog sizes (default 10000,100000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per read per server (default 3)")
    parser.add_argument("--samples", type=int, default=60, help="measured GETs per page per server (default 60)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads for throughput (default 4)")
    parser.add_argument(
        "--reuse", action="store_true", help="measure an earlier run's databases of the same sizes instead of new ones"
    )
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--facts", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate)
        return 0
    if args.facts:
        facts()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the gunicorns
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "var" / "staticfiles").mkdir(parents=True, exist_ok=True)
    overall = time.perf_counter()
    redis_url, redis_text = stack.redis_url(work=BENCH_DIR, redis_db=REDIS_DB, local_default=True)
    print(f"Cache and broker: {redis_text}")
    sizes = [measure_size(int(size), args, redis_url) for size in args.sizes.split(",")]
    all_pass = report(sizes)
    busy = max(s["busy_before"] or 0.0 for s in sizes)
    if busy > 0.15:
        print(
            f"\nWarning: other work kept the CPUs {busy:.0%} busy before a measurement: latencies are inflated and "
            "req/s deflated (ratios less so). Run again on a quiet machine for figures to hold against the targets."
        )
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu_count": os.cpu_count(), "uname": " ".join(os.uname()), "python": sys.version.split()[0]},
        "cache": redis_text,
        "server": "gunicorn portal.wsgi, 2 sync workers, portal.settings.prod; hit: catalog caches on, same URL; "
        "miss: CATALOG_API_CACHE=false CATALOG_PAGE_CACHE=false and a unique query parameter per request",
        "targets": {"ratios_on_miss": RATIO_TARGETS, "latency_on_miss_ms": LATENCY_TARGETS, "growth": GROWTH_LIMIT},
        "sizes": sizes,
        "all_pass": all_pass,
        "total_seconds": round(time.perf_counter() - overall, 1),
    }
    out = BENCH_DIR / "catalog.json"
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"\n{'All targets met' if all_pass else 'Some targets missed'}; figures in {out.relative_to(ROOT)}")
    print(f"Total {document['total_seconds']:.0f} s")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
