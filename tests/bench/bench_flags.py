"""Feature flags benchmark: OFREP evaluation over HTTP on the bench's gunicorn (2 sync workers, production-like
settings), the way an OpenFeature SDK calls it.

Targets (issue 16, "Speed"):
1. Single evaluation (`POST /ofrep/v1/evaluate/flags/{key}`): ≥ 1,000 requests/s, p50 ≤ 5 ms.
2. Bulk evaluation of 100 flags: p50 ≤ 10 ms.
3. A 304 bulk answer (`If-None-Match` with the last ETag): p50 ≤ 2 ms.

The service has 100 flags with targeting rules and a rollout; every request carries a context. Runs on a fresh
`runway_bench_flags` database on DATABASE_URL's PostgreSQL server (or a SQLite file), Redis database 13 of REDIS_URL's
server when set; everything else under var/bench/flags/. Prints a table, writes var/bench/flags.json; exit status 0
when every target is met, 1 when one is missed.
"""

import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import load  # tests/bench/, this script's folder, is first on sys.path
import stack

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
WORK = OUT / "flags"
FLAGS = 100
SECONDS = 5.0
CONCURRENCY = 8
SAMPLES = 300
TARGET_RPS = 1000.0
TARGETS = {"single_p50_ms": 5.0, "bulk_p50_ms": 10.0, "not_modified_p50_ms": 2.0}


def _request(port: int, path: str, key: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nX-Forwarded-Proto: https\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    return head + body


def _send(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _latencies(port: int, payload: bytes, expect: bytes) -> list[float]:
    figures = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        answer = _send(port, payload)
        figures.append((time.perf_counter() - started) * 1000)
        if not answer.startswith(expect):
            raise RuntimeError(f"expected {expect!r}, got {answer[:200]!r}")
    return figures


def _throughput(port: int, payload: bytes) -> tuple[float, int]:
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    begin = time.monotonic() + 1.0
    end = begin + SECONDS

    def worker() -> None:
        while (now := time.monotonic()) < end:
            ok = _send(port, payload).startswith(b"HTTP/1.1 200")
            if now >= begin:
                with lock:
                    counts["ok" if ok else "errors"] += 1

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["ok"] / SECONDS, counts["errors"]


def main() -> int:
    env, database_text, broker_text = stack.prepare(
        work=WORK, db_name="runway_bench_flags", bench="bench_flags", redis_db=13, FLAGS_SDK_RATE_LIMIT="100000000"
    )
    from catalog import services as catalog_services
    from deployments import services as deployment_services
    from flags import services

    _user, team = stack.bench_team()
    service = catalog_services.service_create(created_by=None, owner=team, slug="shop", name="Shop")
    production = deployment_services.environment_create(
        created_by=None, name="Production", slug="production", order=1, protected=True
    )
    services.segment_save(
        actor=None,
        slug="staff",
        name="Staff",
        conditions=[{"attribute": "email", "op": "ends_with", "value": "@shop.example"}],
    )
    for index in range(FLAGS):
        flag = services.flag_create(actor=None, service=service, key=f"flag-{index}", default_variant="off")
        services.setting_update(
            actor=None,
            flag=flag,
            environment=production,
            enabled=True,
            rules=[
                {"name": "staff", "when": [{"op": "segment", "value": "staff"}], "variant": "on"},
                {
                    "name": "beta",
                    "when": [{"attribute": "plan", "op": "in", "value": ["beta", "trial"]}],
                    "variant": "on",
                },
            ],
            rollout={"on": 10, "off": 90},
        )
    _key, raw = services.sdk_key_create(actor=None, service=service, environment=production, name="bench")
    context = json.dumps({"context": {"targetingKey": "user-42", "email": "ann@mail.example", "plan": "pro"}}).encode()

    server = load.Server(root=ROOT, env=env, workers=2, log_path=WORK / "gunicorn.log")
    try:
        server.start()
        port = server.port
        single = _request(port, "/ofrep/v1/evaluate/flags/flag-7", raw, context)
        bulk = _request(port, "/ofrep/v1/evaluate/flags", raw, context)
        first = _send(port, bulk)
        head, _, body = first.partition(b"\r\n\r\n")
        etag = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"etag:"))
        if len(json.loads(body)["flags"]) != FLAGS:
            raise RuntimeError("the bulk answer does not hold every flag")
        conditional = _request(port, "/ofrep/v1/evaluate/flags", raw, context, f"If-None-Match: {etag.decode()}\r\n")
        single_ms = _latencies(port, single, b"HTTP/1.1 200")
        bulk_ms = _latencies(port, bulk, b"HTTP/1.1 200")
        not_modified_ms = _latencies(port, conditional, b"HTTP/1.1 304")
        rps, errors = _throughput(port, single)
    finally:
        server.stop()

    figures = {
        "single_p50_ms": statistics.median(single_ms),
        "single_p95_ms": stack.quantile(single_ms, 0.95),
        "bulk_p50_ms": statistics.median(bulk_ms),
        "not_modified_p50_ms": statistics.median(not_modified_ms),
        "single_rps": rps,
        "single_errors": errors,
        "flags": FLAGS,
        "database": database_text,
        "broker": broker_text,
    }
    missed = [name for name, limit in TARGETS.items() if figures[name] > limit]
    if rps < TARGET_RPS or errors:
        missed.append("single_rps")
    print(f"Feature flags over OFREP ({FLAGS} flags; {database_text})")
    print(f"  single evaluation   p50 {figures['single_p50_ms']:.2f} ms, {rps:.0f} req/s (targets 5 ms, 1,000 req/s)")
    print(f"  bulk of {FLAGS} flags    p50 {figures['bulk_p50_ms']:.2f} ms (target 10 ms)")
    print(f"  304 bulk answer     p50 {figures['not_modified_p50_ms']:.2f} ms (target 2 ms)")
    print("  missed: " + ", ".join(missed) if missed else "  every target met")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "flags.json").write_text(json.dumps({**figures, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
