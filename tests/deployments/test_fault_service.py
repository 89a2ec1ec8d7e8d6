"""The fault-injecting release does what each mode says: real processes of the rendered golden path with the fault
layer, answering real HTTP on a port of their own."""

import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deployments.faulty import render_faulty

START_SECONDS = 10.0  # generous: only a failing test waits this long


@pytest.fixture(scope="module")
def worktree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_faulty(name="faulty-api", destination=tmp_path_factory.mktemp("faulty") / "faulty-api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Replica:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False)

    def get(self, path: str = "/") -> httpx.Response:
        return self.client.get(path)

    def timed(self, count: int) -> list[float]:
        """The delay injected into each of `count` requests; each request took at least that long (sleep never
        returns early), which is all the wall clock is trusted with on a busy machine."""
        injected = []
        for _ in range(count):
            started = time.perf_counter()
            response = self.get()
            took = (time.perf_counter() - started) * 1000
            assert response.status_code == 200
            delay = float(response.headers["X-Injected-Delay-Ms"])
            assert took >= delay, (took, delay)
            injected.append(delay)
        return injected

    def statuses(self, count: int, path: str = "/") -> list[int]:
        return [self.get(path).status_code for _ in range(count)]

    def exit_code(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def run(worktree: Path, fault: dict[str, Any], *, wait: bool = True) -> Iterator[Replica]:
    """Start `python -m app` with the fault in FAULT; with `wait`, until it answers its health check once."""
    port = _free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "VERSION": "9.9.9", "FAULT": json.dumps(fault)}
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=worktree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    replica = Replica(process, port)
    try:
        deadline = time.monotonic() + START_SECONDS
        while wait:
            with contextlib.suppress(httpx.HTTPError):
                replica.get("/healthz")
                break
            assert process.poll() is None, f"exited with {process.returncode}: {process.stderr.read().decode()}"
            assert time.monotonic() < deadline, "never answered"
            time.sleep(0.05)
        yield replica
    finally:
        replica.client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        process.stderr.close()


def test_good_answers_every_request_with_the_golden_paths_body_and_noise(worktree: Path) -> None:
    with run(worktree, {"mode": "good"}) as replica:
        assert replica.get().json() == {"message": "Hello from faulty-api", "service": "faulty-api", "version": "9.9.9"}
        assert replica.get("/healthz").json() == {"status": "ok"}
        injected = replica.timed(30)
        assert 'status="200"} 31' in replica.get("/metrics").text  # counted like the golden path counts
    assert 14 <= statistics.median(injected) <= 28  # the shared service time, 20 ms at the median
    # With noise, not a constant: the delays are spread (two of thirty may still round to the same microsecond).
    assert statistics.pstdev(injected) > 0.5 and len(set(injected)) >= 25


def test_crash_on_start_exits_before_listening(worktree: Path) -> None:
    with run(worktree, {"mode": "crash_on_start"}, wait=False) as replica:
        assert replica.exit_code(timeout=START_SECONDS) != 0
        assert b"crashing on start" in replica.process.stderr.read()
        with pytest.raises(httpx.ConnectError):
            replica.get("/healthz")


def test_crash_after_serves_then_exits(worktree: Path) -> None:
    # Its delay counts from when the process starts, not from when it answers: 4 s leaves a busy machine time to start.
    with run(worktree, {"mode": "crash_after", "seconds": 4}) as replica:
        assert replica.statuses(3) == [200] * 3
        assert replica.exit_code(timeout=START_SECONDS) == 3
        with pytest.raises(httpx.ConnectError):
            replica.get()


@pytest.mark.parametrize(("rate", "count", "low", "high"), [(0.2, 500, 60, 140), (0.01, 2000, 5, 40)])
def test_errors_answer_500_on_that_share_of_requests_only(
    worktree: Path, rate: float, count: int, low: int, high: int
) -> None:
    """Bounds about four standard deviations wide: a seeded generator, but the test should not depend on it."""
    with run(worktree, {"mode": "errors", "rate": rate, "base_ms": 0, "seed": 7}) as replica:
        statuses = replica.statuses(count)
        assert set(statuses) <= {200, 500}
        assert low <= statuses.count(500) <= high, statuses.count(500)
        assert replica.statuses(20, "/healthz") == [200] * 20  # the health check is not affected
        assert f'path="/",status="500"}} {statuses.count(500)}' in replica.get("/metrics").text


def test_background_errors_fail_a_share_of_a_good_releases_requests(worktree: Path) -> None:
    with run(worktree, {"mode": "good", "background_rate": 0.2, "base_ms": 0, "seed": 11}) as replica:
        statuses = replica.statuses(500)
        assert replica.statuses(20, "/healthz") == [200] * 20
    assert 60 <= statuses.count(500) <= 140, statuses.count(500)


def test_latency_at_the_median_slows_every_request(worktree: Path) -> None:
    """The same seed draws the same noise: each request of the slow release is exactly three times the good one's."""
    with (
        run(worktree, {"mode": "good", "base_ms": 10, "seed": 5}) as good,
        run(worktree, {"mode": "latency", "factor": 3, "where": "median", "base_ms": 10, "seed": 5}) as slow,
    ):
        ratios = [s / g for s, g in zip(slow.timed(30), good.timed(30), strict=True)]
    assert ratios == pytest.approx([3.0] * 30, rel=1e-3)


def test_latency_at_p99_slows_only_the_tail(worktree: Path) -> None:
    with (
        run(worktree, {"mode": "good", "base_ms": 5, "seed": 3}) as good,
        run(worktree, {"mode": "latency", "factor": 10, "where": "p99", "base_ms": 5, "seed": 3}) as slow,
    ):
        ratios = [round(s / g, 2) for s, g in zip(slow.timed(600), good.timed(600), strict=True)]
    assert set(ratios) == {1.0, 10.0}
    assert 1 <= ratios.count(10.0) <= 20, ratios.count(10.0)  # about 1 % (6 of 600)


def test_health_fails_after_its_onset_while_requests_succeed(worktree: Path) -> None:
    # The onset counts from when the process starts, not from when it answers: 3 s leaves a busy machine time to start.
    with run(worktree, {"mode": "health_fails", "onset": 3.0, "base_ms": 0}) as replica:
        assert replica.get("/healthz").status_code == 200  # it passes the start-up health check
        time.sleep(3.1)
        assert replica.statuses(5, "/healthz") == [500] * 5
        assert replica.statuses(5) == [200] * 5


def test_requests_fail_while_health_succeeds(worktree: Path) -> None:
    with run(worktree, {"mode": "requests_fail", "base_ms": 0}) as replica:
        assert replica.statuses(5) == [500] * 5
        assert replica.statuses(5, "/healthz") == [200] * 5


def test_memory_grows_until_the_process_is_killed_within_its_limit(worktree: Path) -> None:
    """It dies by SIGKILL, as the OOM killer kills, and never holds more than its limit (resident, sampled)."""
    with run(worktree, {"mode": "memory", "mb_per_second": 64, "limit_mb": 96}) as replica:
        peak = 0
        deadline = time.monotonic() + 30
        while replica.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                status = Path(f"/proc/{replica.process.pid}/status").read_text()
                # A process that just died is a zombie without a VmRSS line until it is reaped.
                rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")]
                peak = max([peak, *rss])
            time.sleep(0.05)
        assert replica.exit_code(timeout=1) == -9
        said = re.search(rb"out of memory after (\d+) MB", replica.process.stderr.read())
    assert said is not None
    # How far it grew is what it says it held: sampling alone can miss the last second of growth on a busy machine.
    assert 48 <= int(said[1]) <= 96, said[1]
    assert peak < 96 * 1024 + 64 * 1024, peak  # KiB: it never held more than its limit and the interpreter
