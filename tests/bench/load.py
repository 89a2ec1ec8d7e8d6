"""The HTTP side of the benchmark: a gunicorn server on loopback, a signed-in client, latency and throughput.

Every request goes to 127.0.0.1 and carries `X-Forwarded-Proto: https`, as a TLS-terminating proxy in front of
the portal would send: the production settings then run unchanged (secure cookies, CSRF origin checks, no HTTPS
redirect) over plain loopback HTTP.
"""

import itertools
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import httpx

PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
_UNIQUE = itertools.count()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn (sync workers) serving portal.wsgi on 127.0.0.1; always stop() it, in a finally block."""

    def __init__(self, *, root: Path, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.root, self.env, self.workers, self.log_path = root, env, workers, log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "portal.wsgi",
            "--chdir", str(self.root / "platform"),
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", "sync",
            "--timeout", "60",
            "--log-level", "warning",
        ]  # fmt: skip
        # gunicorn's own messages and Django's log lines (stderr) both go to the log file. A session of its own,
        # so that stopping it can never reach this process or its parent.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
                command, env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                response = httpx.get(f"{self.base_url}/healthz", headers=PROXY_HEADERS, timeout=2)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The master and its workers (Linux /proc), for CPU accounting."""
        if self.process is None:
            return []
        pids = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            pids += [int(pid) for pid in children]
        except OSError:
            pass
        return pids

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # gunicorn stops its workers gracefully
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this Popen created, and nothing else
            self.process.wait(timeout=5)


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user+system CPU seconds used so far by each of these processes that exists (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return used


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings by the processes present in both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def machine_busy_fraction(seconds: float = 2.0) -> float | None:
    """The share of all CPUs busy over `seconds` while this benchmark sits idle: other work on the machine."""

    def sample() -> tuple[int, int]:
        values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])

    try:
        busy_start, total_start = sample()
        time.sleep(seconds)
        busy_end, total_end = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (busy_end - busy_start) / max(1, total_end - total_start)


class Browser:
    """A signed-in browser: cookies are kept by hand, because the production cookies are `Secure` and httpx
    (like a browser) will not send those over http:// even though the proxy header says the hop is https."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}
        self.client = httpx.Client(base_url=base_url, timeout=15, follow_redirects=False)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(PROXY_HEADERS)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep_cookies(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value

    def get(self, path: str) -> httpx.Response:
        response = self.client.get(path, headers=self._headers())
        self._keep_cookies(response)
        return response

    def sign_in(self, *, username: str, password: str) -> None:
        self.get("/accounts/login/")
        token = self.cookies.get("csrftoken")
        if not token:
            raise RuntimeError("GET /accounts/login/ set no csrftoken cookie")
        response = self.client.post(
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers=self._headers({"Origin": f"https://127.0.0.1:{self.client.base_url.port}"}),
        )
        self._keep_cookies(response)
        if response.status_code != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"sign-in failed: HTTP {response.status_code}")

    def close(self) -> None:
        self.client.close()


@dataclass
class Latency:
    name: str
    path: str
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    cpu_seconds: float = 0.0  # gunicorn's and the database backends' CPU over the measured samples

    @property
    def cpu_ms_per_request(self) -> float:
        """Server and database CPU per page: what a page costs, whatever else keeps the machine busy."""
        return self.cpu_seconds * 1000 / len(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def p95(self) -> float:
        if len(self.samples_ms) < 2:
            return self.median
        return statistics.quantiles(self.samples_ms, n=100, method="inclusive")[94]


def measure_latency(
    browser: Browser,
    *,
    name: str,
    paths: list[str],
    samples: int,
    warmup: int,
    max_seconds: float,
    unique: bool = False,
    into: Latency | None = None,
    cpu_pids: Callable[[], list[int]] | None = None,
) -> Latency:
    """Sequential GETs, cycling through `paths`; the first `warmup` are not counted. Bounded in count and time.
    With `unique`, every GET gets a query parameter of its own, so that no response cache can answer it."""
    result = into or Latency(name=name, path=paths[0] if len(paths) == 1 else f"{len(paths)} pages like {paths[0]}")
    deadline = time.monotonic() + max_seconds
    pids = cpu_pids() if cpu_pids else []
    cpu_before: dict[int, float] | None = None
    for index in range(warmup + samples):
        if time.monotonic() > deadline:
            break
        if index == warmup and pids:
            cpu_before = cpu_seconds(pids)
        path = paths[index % len(paths)]
        if unique:
            path = f"{path}{'&' if '?' in path else '?'}bench={os.getpid()}-{next(_UNIQUE)}"
        started = time.perf_counter()
        response = browser.get(path)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            result.errors += 1
            if result.errors > 5:
                raise RuntimeError(f"{name}: GET {path} answered {response.status_code}")
            continue
        if index >= warmup:
            result.samples_ms.append(elapsed_ms)
            result.bytes = len(response.content)
    if cpu_before is not None:
        result.cpu_seconds += cpu_delta(cpu_before, cpu_seconds(pids))
    return result


@dataclass
class Throughput:
    name: str
    path: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    database_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_cores(self) -> float:
        """CPUs the gunicorn processes kept busy (the database's share is not included)."""
        return self.server_cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """gunicorn plus database-backend CPU per answered request: what a request costs on a quiet machine."""
        return (self.server_cpu_seconds + self.database_cpu_seconds) * 1000 / self.requests if self.requests else 0.0

    @property
    def client_cpu_cores(self) -> float:
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0


def _one_request(port: int, payload: bytes) -> bool:
    """One request on a fresh connection (gunicorn's sync workers close every connection); True on a 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks[:1]).startswith(b"HTTP/1.1 200")


def measure_throughput(
    server: Server,
    *,
    name: str,
    path: str,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    into: Throughput | None = None,
    database_pids: Callable[[], list[int]] = list,
    unique: bool = False,
    paths: list[str] | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> Throughput:
    """`concurrency` threads send requests (GETs, or `method` with a JSON `body`) back to back for `seconds` after
    `warmup` seconds; adds to `into` if given.

    The client is a raw socket with a pre-encoded request, so that it spends as little as possible of the
    machine's two cores: the figure is the server's, not the HTTP library's. With `unique`, every request gets
    a query string of its own, to measure the cost of a response that no cache holds.
    """
    head = [f"Host: 127.0.0.1:{server.port}", "Accept: application/json"]
    head += [f"{key}: {value}" for key, value in {**PROXY_HEADERS, **headers}.items()]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += ["Connection: close", "", ""]
    tail = "\r\n".join(head).encode("latin-1") + body
    fixed = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + tail
    counter = itertools.count()

    def payload() -> bytes:
        if paths:  # one of several URLs at random (a service by name), with the same headers
            chosen = random.choice(paths)  # noqa: S311 - picking pages, not secrets
            separator = "&" if "?" in chosen else "?"
            chosen += f"{separator}bench={os.getpid()}-{next(counter)}" if unique else ""
            return f"{method} {chosen} HTTP/1.1\r\n".encode("latin-1") + tail
        if not unique:
            return fixed
        # A query string never seen before: the request misses any response cache keyed on the URL.
        separator = "&" if "?" in path else "?"
        return f"{method} {path}{separator}bench={os.getpid()}-{next(counter)} HTTP/1.1\r\n".encode("latin-1") + tail

    if not _one_request(server.port, payload()):
        raise RuntimeError(f"{name}: {method} {path} did not answer 200")

    result = into or Throughput(name=name, path=path)
    lock = threading.Lock()
    phase = {"counting": False}
    stop_at = time.monotonic() + warmup + seconds

    def worker() -> None:
        ok = errors = 0
        latencies = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                success = _one_request(server.port, payload())
            except OSError:
                success = False
            if not phase["counting"]:
                continue
            if success:
                ok += 1
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1
        with lock:
            result.requests += ok
            result.errors += errors
            result.latencies_ms += latencies

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)  # not counted
    phase["counting"] = True
    server_pids, db_pids = server.pids(), database_pids()  # the workers' (persistent) connections exist by now
    started, client_cpu = time.monotonic(), time.process_time()
    server_cpu, db_cpu = cpu_seconds(server_pids), cpu_seconds(db_pids)
    for thread in threads:
        thread.join(timeout=seconds + 30)
    result.seconds += time.monotonic() - started
    result.client_cpu_seconds += time.process_time() - client_cpu
    result.server_cpu_seconds += cpu_delta(server_cpu, cpu_seconds(server_pids))
    result.database_cpu_seconds += cpu_delta(db_cpu, cpu_seconds(db_pids))
    return result
