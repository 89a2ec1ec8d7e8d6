"""Deployments of the stdlib golden path on the local runtime, driven by real Celery workers, with faults injected.

Nothing is scripted: the release is the rendered golden path in a real git repository, replicas are real processes
under the runtime's supervisord, analysis traffic is real HTTP, and the steps travel through a real broker. The first
tests run a worker in a thread on the configured broker; the fault tests run `celery -A portal worker` as a
subprocess on a Redis of their own, so that the worker, or the broker, can be SIGKILLed mid-deployment.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery.contrib.testing.worker import TestWorkController, start_worker
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from kombu import pools as kombu_pools

from deployments import services
from deployments.models import TERMINAL_STATES, Deployment, DeployTarget, Environment, Placement, State
from deployments.runtimes import local
from deployments.runtimes.local import LocalRuntime
from portal.celery import app
from tests.deployments.stdlib import GREETINGS, StdlibRepo, stdlib_repo_make
from tests.processes import database_url

# Workers, in threads or processes, have their own database connections: every row must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

SERVICE = "payments-api"  # the `world` fixture's service
ENVIRONMENT = "staging"
PLATFORM = Path(settings.BASE_DIR) / "platform"
# Knobs the local runtime reads from a deployment's config; a target does not set them, so `deploy` adds them.
FAST = {"health_timeout_seconds": 5}
LEASE_SECONDS = 4  # the subprocess workers' step lease: short, so a killed worker's step resumes quickly
FINISH_SECONDS = 60  # generous: only a failing test waits this long


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stdlib(tmp_path_factory: pytest.TempPathFactory) -> StdlibRepo:
    """Rendered once per module (copier takes seconds); every test deploys its tags."""
    return stdlib_repo_make(name=SERVICE, root=tmp_path_factory.mktemp("stdlib"))


@pytest.fixture
def deploy_root(settings, stdlib: StdlibRepo, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The module's repositories, and a deploy root (so a supervisord) of the test's own, shut down afterwards."""
    settings.GIT_ROOT = stdlib.git_root
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    try:
        yield settings.DEPLOY_ROOT
    finally:
        pids = [row["pid"] for row in replicas() if row["pid"]]
        local.supervisord_shutdown()
        assert not local.socket_path().exists()
        for pid in pids:  # supervisord took its replicas with it
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.fixture
def staging(world, deploy_root: Path) -> Environment:  # type: ignore[no-untyped-def]
    """Staging, where payments-api deploys on the local runtime: a canary at 50 %, baked 1 s, then 2 replicas."""
    environment = Environment.objects.create(name="Staging", slug=ENVIRONMENT, order=1)
    DeployTarget.objects.create(
        service=world.service,
        environment=environment,
        runtime="local",
        strategy="canary",
        replicas=2,
        canary_steps=[50],  # one analysis keeps the setup deployments short; the happy path asks for two
        bake_seconds=1,
    )
    return environment


@pytest.fixture
def worker(deploy_root: Path) -> Iterator[TestWorkController]:
    """A worker in a thread on the configured broker; per test, so it is gone while the fault tests repoint `app`."""
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30) as controller:
        yield controller


# --- helpers -------------------------------------------------------------------------------------------------------


def deploy(world, environment: Environment, version: str, **config: Any) -> Deployment:  # type: ignore[no-untyped-def]
    """Deploy the tagged release as its owner would; `config` reaches the runtime in the same commit as the request."""
    release = services.release_for_ref(service=world.service, ref=version, user=world.owner)
    assert release.version == version
    with transaction.atomic():  # the step is enqueued when this commits, so the worker sees the config below
        deployment = services.deployment_request(
            service=world.service, environment=environment, user=world.owner, release=release
        )
        Deployment.objects.filter(pk=deployment.pk).update(config=deployment.config | FAST | config)
    return deployment


def timeline(deployment: Deployment) -> str:
    return "\n".join(f"  {event.at:%H:%M:%S.%f} {event.step}: {event.message}" for event in deployment.events.all())


@contextlib.contextmanager
def uncommitted_reads() -> Iterator[None]:
    """Poll without getting in a worker's way on SQLite (PostgreSQL needs nothing).

    pytest-django's SQLite test database is in memory with a shared cache, where a read holds a table lock and a
    worker's write that meets it fails at once (SQLITE_LOCKED: no busy timeout applies). Reading uncommitted data
    takes no lock; `wait_for` then confirms what it saw with a committed read.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA read_uncommitted = 1")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 0")


def committed(pk: int) -> Deployment:
    """The deployment as last committed; on SQLite, waits out a worker's open write transaction."""
    for _ in range(500):
        try:
            return Deployment.objects.get(pk=pk)
        except OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.01)
    raise AssertionError(f"deployment #{pk} stayed locked for 5 s")


def wait_for(
    deployment: Deployment,
    done: Callable[[Deployment], bool],
    what: str,
    *,
    timeout: float = FINISH_SECONDS,
    tick: Callable[[], None] = lambda: None,
) -> Deployment:
    """Poll until `done(deployment)`; `tick` runs on every round (to restart a worker that died, say)."""
    deadline = time.monotonic() + timeout
    while True:
        tick()
        with uncommitted_reads():
            current = Deployment.objects.get(pk=deployment.pk)
        if done(current):
            current = committed(deployment.pk)
            if done(current):
                return current
        if time.monotonic() > deadline:
            current = committed(deployment.pk)
            raise AssertionError(
                f"deployment #{current.pk} never {what} within {timeout:.0f} s; it is {current.state}:\n"
                + timeline(current)
            )
        time.sleep(0.02)


def finished(deployment: Deployment, *, tick: Callable[[], None] = lambda: None) -> Deployment:
    return wait_for(deployment, lambda d: d.state in TERMINAL_STATES, "finished", tick=tick)


def replicas() -> list[dict[str, Any]]:
    """Every replica the runtime has for payments-api in staging, as the portal's pages see them."""
    return LocalRuntime().endpoints(SERVICE, ENVIRONMENT)


def get(port: int, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2, trust_env=False)


def assert_serving(version: str, count: int) -> list[dict[str, Any]]:
    """Exactly `count` replicas run, all of `version`, and each answers HTTP on its own port as that version."""
    rows = replicas()
    assert [(row["version"], row["state"]) for row in rows] == [(version, "RUNNING")] * count, rows
    for row in rows:
        assert get(row["port"]).json() == {
            "message": f"{GREETINGS[version]} from {SERVICE}",
            "service": SERVICE,
            "version": version,
        }
        assert get(row["port"], "/healthz").json() == {"status": "ok"}
    return rows


def verdicts(deployment: Deployment) -> list[str]:
    return [event.data["verdict"] for event in deployment.events.filter(message="Analysis figures")]


def placed() -> tuple[str, int | None]:
    placement = Placement.objects.select_related("release").get(service__slug=SERVICE, environment__slug=ENVIRONMENT)
    return placement.release.version if placement.release else "", placement.deployment_id


# --- with a worker in a thread, on the configured broker -----------------------------------------------------------


def test_a_canary_ships_the_golden_path_and_the_next_release_replaces_it(world, staging, worker) -> None:  # type: ignore[no-untyped-def]
    DeployTarget.objects.filter(service=world.service, environment=staging).update(canary_steps=[25, 50])
    first = finished(deploy(world, staging, "1.0.0"))

    assert first.state == State.SUCCEEDED, timeline(first)
    assert verdicts(first) == ["pass", "pass"]  # both canary steps were analysed on real traffic
    assert placed() == ("1.0.0", first.pk)
    old = assert_serving("1.0.0", count=2)

    second = finished(deploy(world, staging, "2.0.0"))

    assert second.state == State.SUCCEEDED, timeline(second)
    assert second.previous_release is not None and second.previous_release.version == "1.0.0"
    assert verdicts(second) == ["pass", "pass"]
    baseline = second.events.filter(message="Analysis figures").first().data["figures"]["baseline"]
    assert baseline["requests"] > 0 and baseline["errors"] == 0  # 1.0.0 served beside the canary
    assert placed() == ("2.0.0", second.pk)
    new = assert_serving("2.0.0", count=2)
    assert not {row["port"] for row in new} & {row["port"] for row in old}
    for row in old:  # the old replicas are gone, not merely unlisted
        with pytest.raises(httpx.ConnectError):
            get(row["port"])
    conf = Path(settings.DEPLOY_ROOT) / "supervisor" / "conf.d"
    assert sorted(path.stem for path in conf.glob("rwy-*.ini")) == sorted(row["program"] for row in new)


def test_a_release_failing_its_health_check_is_rolled_back_and_the_previous_one_keeps_serving(
    world, staging, worker
) -> None:  # type: ignore[no-untyped-def]
    first = finished(deploy(world, staging, "1.0.0"))
    assert first.state == State.SUCCEEDED, timeline(first)
    before = assert_serving("1.0.0", count=2)

    broken = finished(deploy(world, staging, "2.1.0", health_timeout_seconds=2))

    assert broken.state == State.ROLLED_BACK, timeline(broken)
    assert "did not pass its health check at /healthz: it answered 500" in broken.failure_reason
    failed = broken.events.get(step=State.FAILED)
    assert failed.from_state == State.ROLLING_OUT and failed.level == "error"
    assert failed.message == broken.failure_reason
    assert broken.events.get(step=State.ROLLED_BACK).message == "Rolled back: 1.0.0 serves all traffic again."
    assert verdicts(broken) == []  # it never got as far as an analysis
    assert placed() == ("1.0.0", first.pk)
    # The previous release was never touched: the same processes, on the same ports, answer as 1.0.0.
    assert assert_serving("1.0.0", count=2) == before


def test_a_canary_killed_during_its_bake_fails_analysis_and_is_rolled_back(world, staging, worker) -> None:  # type: ignore[no-untyped-def]
    first = finished(deploy(world, staging, "1.0.0"))
    assert first.state == State.SUCCEEDED, timeline(first)
    before = assert_serving("1.0.0", count=2)

    deployment = deploy(world, staging, "2.0.0")
    wait_for(
        deployment,
        lambda d: d.state == State.ANALYSING and d.lease_until is None,  # baking: no worker holds the step
        "started baking",
    )
    [canary] = [row for row in replicas() if row["version"] == "2.0.0"]
    assert canary["state"] == "RUNNING" and get(canary["port"]).json()["version"] == "2.0.0"
    os.kill(canary["pid"], signal.SIGKILL)

    done = finished(deployment)

    assert done.state == State.ROLLED_BACK, timeline(done)
    # The first analysis fails on the probes it sent: a dead canary does not need three windows to be judged.
    assert done.failure_reason.startswith("Analysis failed (canary at 50 %): canary health probes"), timeline(done)
    assert f"could not read metrics of replica {canary['program']}" in done.failure_reason
    assert verdicts(done) == ["fail"]
    figures = done.events.filter(message="Analysis figures").last().data["figures"]["canary"]
    assert figures["probe_success"] == 0 and figures["error_rate"] == 1  # it refused every request sent to it
    assert not done.events.filter(step=State.PROMOTING).exists()
    assert placed() == ("1.0.0", first.pk)
    assert assert_serving("1.0.0", count=2) == before


# --- with `celery worker` subprocesses on a Redis of the test's own ------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    """A throwaway redis-server without persistence: a restart loses every queued message, as a crash would."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        assert binary, "the fault tests need redis-server on the PATH"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            assert self.process.poll() is None and time.monotonic() < deadline, (self.folder / "redis.log").read_text()
            time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """Send this process's tasks (the on-commit enqueue of `deployment_request`) to `url`, the workers' broker."""

    def forget_connections() -> None:
        # app.pool comes from kombu's process-wide registry of pools, keyed by connection: closing one pool would
        # leave the registry handing that closed pool to every later publish in this process. Reset the registry.
        kombu_pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    names = ("broker_url", "broker_transport", "broker_transport_options")
    saved = {name: app.conf[name] for name in names}
    forget_connections()
    # The transport too: without REDIS_URL the settings name the filesystem one, which would ignore the URL.
    app.conf.update(broker_url=url, broker_transport="redis", broker_transport_options={"visibility_timeout": 3600})
    try:
        yield
    finally:
        forget_connections()
        app.conf.update(saved)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder=tmp_path / "redis")
    server.start()
    try:
        with publishing_to(server.url):
            yield server
    finally:
        server.kill()


@dataclass
class Worker:
    """`celery -A portal worker` in a process group of its own, so SIGKILL takes it and its embedded beat at once."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, *, broker: RedisServer, log: Path, beat: bool = False, queues: str = "celery") -> "Worker":
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
            "DATABASE_URL": database_url(),
            "CONN_MAX_AGE": "0",
            "REDIS_URL": broker.url,
            "DEPLOY_ROOT": str(settings.DEPLOY_ROOT),
            "GIT_ROOT": str(settings.GIT_ROOT),
            "DEPLOY_STEP_LEASE_SECONDS": str(LEASE_SECONDS),
            "PYTHONPATH": str(PLATFORM),
            "LOG_LEVEL": "INFO",
        }
        name = f"{log.stem}-{os.getpid()}@faults"
        argv = [sys.executable, "-m", "celery", "--workdir", str(PLATFORM), "-A", "portal", "worker"]
        argv += ["--pool", "solo", "--loglevel", "INFO", "--hostname", name, "--queues", queues]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:  # the sweeper runs every few seconds from the beat schedule, as in production
            argv += ["--beat", "--schedule", str(log.with_suffix(".schedule"))]
        with open(log, "ab") as output:
            process = subprocess.Popen(
                argv, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        return cls(name=name, process=process, log=log)

    def ready(self, *, timeout: float = 180) -> None:
        """Wait until the worker answers a remote-control ping (it boots Django, so this takes seconds; with the suite
        on every core and the worker's own beat, a minute was once not enough)."""
        deadline = time.monotonic() + timeout
        while not app.control.ping(destination=[self.name], timeout=0.5):
            assert self.process.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.output()[-3000:]}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.mark.postgres_only
def test_a_worker_killed_during_analysis_leaves_a_step_its_replacement_finishes(
    world, staging, broker: RedisServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The replacement boots beside the first worker (booting takes seconds) but listens to a queue nobody uses, as
    # a warm standby would, until it is told to take over. Its beat runs the sweeper throughout.
    first = Worker.start(broker=broker, log=tmp_path / "worker-1.log")
    standby = Worker.start(broker=broker, log=tmp_path / "worker-2.log", beat=True, queues="standby")
    try:
        # 300 analysis requests keep the worker inside the analysis for a second or so: time to kill it there.
        deployment = deploy(world, staging, "1.0.0", analysis_requests=300)
        analysing = wait_for(
            deployment, lambda d: d.state == State.ANALYSING and d.lease_until is not None, "started analysing"
        )
        first.kill()

        held = Deployment.objects.get(pk=deployment.pk)
        assert (held.state, held.version, held.attempts) == (State.ANALYSING, analysing.version, 1), timeline(held)
        assert held.lease_until is not None and held.lease_until > timezone.now()  # the dead worker's lease stands
        assert verdicts(held) == []
        assert "Task deployments.step[" not in standby.output()

        standby.ready()
        replies = app.control.add_consumer("celery", destination=[standby.name], reply=True, timeout=5)
        assert replies == [{standby.name: {"ok": "add consumer celery"}}]
        done = finished(deployment)
    finally:
        first.kill()
        standby.kill()

    assert done.state == State.SUCCEEDED, timeline(done) + "\n" + standby.output()[-3000:]
    # The killed analysis wrote nothing; the replacement ran the step again from its start, resumed by the sweeper
    # once the dead worker's lease had run out.
    assert verdicts(done) == ["pass"]
    assert "'resumed': 1" in standby.output() and "Task deployments.step[" in standby.output()
    assert placed() == ("1.0.0", done.pk)
    assert_serving("1.0.0", count=2)


@pytest.mark.postgres_only
def test_a_deployment_finishes_when_its_broker_restarts_mid_way(
    world, staging, broker: RedisServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    workers = [Worker.start(broker=broker, log=tmp_path / "worker-1.log", beat=True)]

    def restart_a_dead_worker() -> None:
        # As a process manager would (systemd's Restart=always). Celery 5.7 / kombu 5.7 sometimes end the worker,
        # beat included, when Redis dies while the worker holds an unacknowledged message ("Unrecoverable error:
        # AttributeError: 'NoneType' object has no attribute 'hostname'", from restore_unacked_once on close).
        if workers[-1].process.poll() is not None:
            workers.append(Worker.start(broker=broker, log=tmp_path / f"worker-{len(workers) + 1}.log", beat=True))

    try:
        deployment = deploy(world, staging, "1.0.0")
        wait_for(deployment, lambda d: d.state == State.ANALYSING, "started analysing")
        broker.kill()  # SIGKILL, and no persistence: every queued and unacknowledged message is lost with it
        assert Deployment.objects.get(pk=deployment.pk).state not in TERMINAL_STATES
        time.sleep(1)
        broker.start()
        restarted = timezone.now()

        done = finished(deployment, tick=restart_a_dead_worker)
    finally:
        for worker in workers:
            worker.kill()

    output = "".join(worker.output() for worker in workers)
    assert done.state == State.SUCCEEDED, timeline(done) + "\n" + output[-3000:]
    assert done.finished_at is not None and done.finished_at > restarted
    assert "Connection to broker lost" in output  # the worker did see the outage
    assert verdicts(done) == ["pass"]
    assert placed() == ("1.0.0", done.pk)
    assert_serving("1.0.0", count=2)
