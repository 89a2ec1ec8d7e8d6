"""Runway and Backstage's catalog backend, side by side on this machine, in alternating rounds (issue 14, part 4).

Not part of `make bench`: it needs the Backstage kit of ../shared/peers/backstage/ set up and serving on
127.0.0.1:7007 (see its README; this script builds and starts nothing of it), with its 5,000-component tree. This
script imports the same tree into a fresh Runway database, starts gunicorn (2 sync workers, catalog caches off), and
measures the README's four reads on both servers round by round, with a unique query parameter on every request to
Runway (Backstage has no response cache, and refuses unknown parameters on some routes; only misses compare like with
like). It prints req/s and p50 per read and the
ratios Runway / Backstage, and writes var/bench/side_by_side.json.

    .venv/bin/python tests/bench/side_by_side.py --tree /path/to/backstage/catalog [--rounds 3] [--seconds 4]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from tests.bench import load, run_bench  # noqa: E402

BACKSTAGE = "http://127.0.0.1:7007"
COMPONENTS = 5000


class Remote:
    """A server this script did not start (Backstage), shaped like load.Server for measure_throughput."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.port = int(base_url.rsplit(":", 1)[1])

    def pids(self) -> list[int]:
        return []


def reads(team: str) -> dict[str, tuple[list[str], list[str]]]:
    """Read → (Backstage paths, Runway paths), as in the kit's README."""
    by_name = range(0, COMPONENTS, 20)
    backstage = "/api/catalog/entities"
    return {
        "one by name (random)": (
            [f"{backstage}/by-name/component/default/comp-{n:05d}" for n in by_name],
            [f"/api/v1/services/comp-{n:05d}/" for n in by_name],
        ),
        "first page of 50": ([f"{backstage}/by-query?filter=kind=component&limit=50"], ["/api/v1/services/"]),
        "owner filter": (
            [f"{backstage}/by-query?filter=spec.owner=group:default/{team}"],
            [f"/api/v1/services/?owner={team}"],
        ),
        "text search": (
            [
                f"{backstage}/by-query?filter=kind=component&fullTextFilterTerm={team}"
                "&fullTextFilterFields=metadata.name,metadata.description&limit=50"
            ],
            [f"/api/v1/services/?q={team}"],
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", required=True, help="the kit's catalog/ folder (gen_catalog.py's output)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per read, per server, per round")
    parser.add_argument("--concurrency", type=int, default=8, help="connections, as the README's wrk -c8")
    parser.add_argument("--team", default="team-042")
    args = parser.parse_args()
    run_bench.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    database_url, database_text = run_bench.database_prepare(f"{run_bench.DB_PREFIX}_side_by_side")
    redis_url, _ = run_bench.stack.redis_url(work=run_bench.BENCH_DIR, redis_db=run_bench.REDIS_DB, local_default=True)
    env = {
        **run_bench.bench_environment(database_url, redis_url),
        "CATALOG_API_CACHE": "false",
        "CATALOG_PAGE_CACHE": "false",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", "catalog_sync", args.tree], cwd=ROOT, env=env, check=True, capture_output=True
    )
    imported = time.perf_counter() - started
    token = (
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-c",
                "import django; django.setup();"
                "from django.contrib.auth.models import User; from accounts import services as s;"
                "u = User.objects.create_user('bench', is_staff=True);"
                "print(s.token_create(user=u, name='b', lifetime_days=1)[1])",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .strip()
        .splitlines()[-1]
    )
    print(f"Runway: {database_text}; imported the tree in {imported:.1f} s")
    server = load.Server(root=ROOT, env=env, workers=2, log_path=run_bench.BENCH_DIR / "gunicorn-side-by-side.log")
    backstage = Remote(BACKSTAGE)
    plan = reads(args.team)
    runs = {(name, side): load.Throughput(name=name, path="") for name in plan for side in ("backstage", "runway")}
    busy = load.machine_busy_fraction(1.0)
    try:
        server.start()
        bearer = {"Authorization": f"Bearer {token}"}
        for round_index in range(args.rounds):
            for name, (backstage_paths, runway_paths) in plan.items():
                for side, target, paths, headers in (
                    ("backstage", backstage, backstage_paths, {}),
                    ("runway", server, runway_paths, bearer),
                ):
                    load.measure_throughput(
                        target,  # type: ignore[arg-type]
                        name=name,
                        path=paths[0],
                        paths=paths,
                        headers=headers,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=0.5,
                        into=runs[(name, side)],
                        unique=side == "runway",  # Backstage has no response cache, and refuses unknown parameters
                    )
            print(f"  round {round_index + 1} of {args.rounds} done")
    finally:
        server.stop()
    rows = []
    print(f"\n{'read (5,000 components, misses)':<28}{'Backstage':>18}{'Runway':>18}{'Runway / Backstage':>20}")
    for name in plan:
        b, r = runs[(name, "backstage")], runs[(name, "runway")]
        b50 = statistics.median(b.latencies_ms) if b.latencies_ms else float("nan")
        r50 = statistics.median(r.latencies_ms) if r.latencies_ms else float("nan")
        ratio = r.rps / b.rps if b.rps else float("inf")
        print(f"{name:<28}{b.rps:>8.0f}/s p50 {b50:>4.0f}ms{r.rps:>8.0f}/s p50 {r50:>4.0f}ms{ratio:>19.2f}x")
        rows.append(
            {
                "read": name,
                "backstage_rps": round(b.rps, 1),
                "backstage_p50_ms": round(b50, 1),
                "backstage_errors": b.errors,
                "runway_rps": round(r.rps, 1),
                "runway_p50_ms": round(r50, 1),
                "runway_errors": r.errors,
                "ratio": round(ratio, 2),
            }
        )
    out = run_bench.BENCH_DIR / "side_by_side.json"
    out.write_text(
        json.dumps(
            {
                "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "components": COMPONENTS,
                "runway_import_seconds": round(imported, 1),
                "machine_busy_before": busy,
                "rounds": args.rounds,
                "seconds_per_read_per_round": args.seconds,
                "concurrency": args.concurrency,
                "reads": rows,
                "pid": os.getpid(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nMachine busy before the run: {busy or 0:.0%}. Figures in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
