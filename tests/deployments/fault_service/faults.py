"""Misbehaviour chosen at start, for the safe-delivery benchmark: copied into a rendered stdlib-http-service as
`app/faults.py` and installed by its `app/__main__.py` before the server starts.

The fault is a JSON object, from the FAULT environment variable if set, else from `app/fault.json` (what a release
commits). Keys: `mode` (below), `rate` (share of requests), `factor` (latency multiplier), `where` ("median" or
"p99"), `seconds` (crash_after), `onset` (seconds of good behaviour before the fault starts), `base_ms` (the
median service time every mode shares, the noise of a good release), `background_rate` (a share of requests that
fail in every mode, good included; 0 by default), `mb_per_second` and `limit_mb` (memory).

Modes: good, crash_on_start, crash_after, errors, latency, health_fails, requests_fail, memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import random
import resource
import signal
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

MODES = frozenset(
    {"good", "crash_on_start", "crash_after", "errors", "latency", "health_fails", "requests_fail", "memory"}
)
NOISE_SIGMA = 0.25  # log-normal spread of the service time: a good release is not perfectly steady either
P99_SHARE = 0.01  # "only at p99": this share of requests is slowed


def load(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    text = env.get("FAULT") or ""
    if not text:
        path = Path(__file__).with_name("fault.json")
        text = path.read_text(encoding="utf-8") if path.exists() else "{}"
    fault = {"mode": "good", "base_ms": 20.0, "onset": 0.0, **json.loads(text)}
    if fault["mode"] not in MODES:
        raise SystemExit(f"unknown fault mode {fault['mode']!r}; choose one of {', '.join(sorted(MODES))}")
    return fault


def install(fault: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wrap the service's request handling with the fault; crash at once for crash_on_start."""
    fault = fault or load()
    mode = fault["mode"]
    print(f"fault injection: {json.dumps(fault, sort_keys=True)}", file=sys.stderr, flush=True)
    if mode == "crash_on_start":
        raise SystemExit("fault injection: crashing on start")
    if mode == "crash_after":
        _later(float(fault.get("seconds", 3)), lambda: _die("crashing after its delay", code=3))
    if mode == "memory":
        _grow(float(fault.get("mb_per_second", 32)), float(fault.get("limit_mb", 192)))

    from app import server

    handle = server.Service.handle
    started = time.monotonic()
    rng = random.Random(fault.get("seed"))
    lock = threading.Lock()
    base = float(fault["base_ms"]) / 1000
    onset = float(fault["onset"])

    background = float(fault.get("background_rate", 0))

    def draw() -> tuple[float, float, float]:
        with lock:  # one Random shared by the request threads
            return rng.random(), rng.lognormvariate(0.0, NOISE_SIGMA), rng.random()

    def faulty(self: server.Service, method: str, path: str) -> server.Response:
        active = time.monotonic() - started >= onset
        if path == "/healthz" and active and mode == "health_fails":
            return server.json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "failing on purpose"})
        if path != "/":
            return handle(self, method, path)
        chance, noise, unlucky = draw()
        delay = base * noise
        if active and mode == "latency":
            if fault.get("where", "median") == "median" or chance < P99_SHARE:
                delay *= float(fault["factor"])
        time.sleep(delay)
        if active and mode == "requests_fail":
            response = server.json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "failing on purpose"})
        elif active and mode == "errors" and chance < float(fault["rate"]):
            response = server.json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "injected error"})
        elif unlucky < background:  # every release's background errors, the good ones' included
            response = server.json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "background error"})
        else:
            response = handle(self, method, path)
        # What was injected, so a test checks the decision exactly and the latency only as a lower bound.
        response.headers["X-Injected-Delay-Ms"] = f"{delay * 1000:.3f}"
        return response

    server.Service.handle = faulty  # type: ignore[method-assign]
    return fault


def _later(seconds: float, action: Any) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


def _die(why: str, *, code: int) -> None:
    print(f"fault injection: {why}", file=sys.stderr, flush=True)
    os._exit(code)


M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


def _grow(mb_per_second: float, limit_mb: float) -> None:
    """Allocate steadily under an address-space limit of `limit_mb` above what the process uses now, so the growth
    can never hurt the machine; when an allocation fails, die by SIGKILL as the kernel's OOM killer would."""
    # glibc gives a thread its own malloc arena, each reserving 64 MB of address space that counts against the limit
    # though it is hardly used. A request thread that made one while the leak was young left the leak 14 MB of its 96
    # (seen on a busy CI machine); with one arena for all threads, how far the leak grows no longer depends on timing.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    pages = int(Path("/proc/self/statm").read_text().split()[0]) if Path("/proc/self/statm").exists() else 0
    used = pages * resource.getpagesize()
    limit = used + int(limit_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Each new thread reserves its stack within the limit (8 MB by default). On a busy machine the leak could take the
    # address space before the server had started its threads, which then failed ("can't start new thread", exit 1)
    # instead of the process being killed; with small stacks a thread fits wherever the next allocation still does.
    threading.stack_size(256 * 1024)
    chunk = max(1, math.ceil(mb_per_second / 10))  # ten allocations a second

    def run() -> None:
        held = []
        try:
            while True:
                held.append(bytearray(chunk * 1024 * 1024))  # bytearray writes its pages: they really are used
                time.sleep(0.1)
        except MemoryError:
            print(f"fault injection: out of memory after {len(held) * chunk} MB", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=run, name="leak", daemon=True).start()
