"""`runstack` (what `make run` runs), with real processes: stopping it stops everything it started, the local
runtime's supervisord and its replicas included; a stack killed outright is cleaned up by the next start; a worker or
beat that dies is started again until it keeps dying."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings

from deployments.runtimes import local
from portal.management.commands import runstack
from tests.processes import database_url

WAIT_SECONDS = 120  # generous: only a failing test waits this long (the stack boots Django four times)


def test_a_dead_worker_is_started_again_until_it_keeps_dying() -> None:
    errors = StringIO()
    command = runstack.Command(stdout=StringIO(), stderr=errors)
    commands = {"worker": ["sleep", "30"]}
    dead = subprocess.Popen(["true"])
    dead.wait()
    processes = {"worker": dead}
    restarts: dict[str, list[float]] = {"worker": []}
    started = []
    try:
        for _ in range(runstack.MAX_RESTARTS):
            assert command._restart({"worker": 0}, processes, commands, {}, restarts)
            started.append(processes["worker"])
            assert processes["worker"].poll() is None  # a new, running process
        assert not command._restart({"worker": 1}, processes, commands, {}, restarts)
    finally:
        for process in started:
            process.kill()
            process.wait()
    assert len({process.pid for process in started}) == runstack.MAX_RESTARTS
    assert "giving up" in errors.getvalue()


# --- the whole stack, as `make run` starts it ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running, not a zombie nobody reaped (a container's init may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait(condition: Callable[[], bool], what: str, stack: "Stack | None" = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if stack is not None and stack.process.poll() is not None:
            raise AssertionError(f"the stack exited ({stack.process.returncode}) before {what}:\n{stack.output()}")
        assert time.monotonic() < deadline, f"never {what}" + (f":\n{stack.output()}" if stack else "")
        time.sleep(0.1)


class Stack:
    """`manage.py runstack` in a group of its own, on a test database, a var folder and a deploy root of its own."""

    def __init__(self, tmp_path: Path, port: int, log: str) -> None:
        self.port, self.log, self.var = port, tmp_path / log, tmp_path / "var"
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--bind", f"127.0.0.1:{port}", *self.SMALL],
            cwd=settings.BASE_DIR,
            env=self.env(tmp_path),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )

    SMALL = ["--web-workers", "1", "--worker-concurrency", "1"]

    @staticmethod
    def env(tmp_path: Path) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # its own broker, in its var
        return env | {
            "DATABASE_URL": database_url(),
            "CONN_MAX_AGE": "0",
            "RUNWAY_VAR_DIR": str(tmp_path / "var"),
            "DEPLOY_ROOT": str(settings.DEPLOY_ROOT),
            "PYTHONPATH": str(Path(settings.BASE_DIR) / "platform"),
            "LOG_LEVEL": "WARNING",
        }

    def state(self) -> dict:  # type: ignore[type-arg]
        try:
            return json.loads((self.var / "runstack.json").read_text())
        except (OSError, ValueError):
            return {}

    def ready(self) -> None:
        """Its children are started (the state file names this stack) and the web server answers."""
        _wait(lambda: self.state().get("pid") == self.process.pid and _answers(self.port), "served", self)

    def members(self) -> list[int]:
        return runstack._members(self.state()["token"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def deploy_root(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    try:
        yield settings.DEPLOY_ROOT
    finally:
        local.supervisord_shutdown()  # whatever a failing test left


def _deploy_a_replica() -> tuple[int, int]:
    """What a deploy to Development leaves: a replica's include file, and supervisord (started by a worker, outside
    the stack's process groups) running it on its own port. Returns the replica's port and supervisord's pid."""
    port = _free_port()
    program = "rwy-hello.development-0123456789-0"
    meta = {"program": program, "service": "hello", "environment": "development", "version": "1.0.0", "port": port}
    conf = Path(settings.DEPLOY_ROOT) / "supervisor" / "conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / f"{program}.ini").write_text(
        f"{local.META_PREFIX}{json.dumps(meta | {'commit': '0123456789' * 4})}\n[program:{program}]\n"
        f"command={sys.executable} -m http.server {port} --bind 127.0.0.1\nautostart=true\nautorestart=false\n"
        "stopasgroup=true\nkillasgroup=true\n"
    )
    assert local.supervisord_restore() == 1
    _wait(lambda: _answers(port), "the replica answered")
    pid = local.supervisord_pid()
    assert pid is not None
    return port, pid


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_stopping_the_stack_stops_everything_it_started(deploy_root: Path, tmp_path: Path) -> None:
    stack = Stack(tmp_path, _free_port(), "stack.log")
    try:
        stack.ready()
        replica_port, supervisord = _deploy_a_replica()
        members = stack.members()
        assert len(members) >= 4, members  # gunicorn and its worker, the Celery worker (and its pool), beat

        again = subprocess.run(
            [sys.executable, "manage.py", "runstack", "--bind", f"127.0.0.1:{_free_port()}", *Stack.SMALL],
            cwd=settings.BASE_DIR,
            env=Stack.env(tmp_path),
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
        )
        assert again.returncode != 0
        assert f"Runway is already running here (runstack, pid {stack.process.pid})" in again.stderr

        stack.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert stack.process.wait(timeout=WAIT_SECONDS) == 0, stack.output()
    finally:
        stack.kill()

    assert [pid for pid in members if _alive(pid)] == []
    assert not _alive(supervisord) and local.supervisord_pid() is None
    assert not _answers(stack.port) and not _answers(replica_port)  # both ports are free again
    assert not (stack.var / "runstack.json").exists()
    assert "Stopped." in stack.output()

    # Started again, the stack starts what was deployed to Development again: the replica answers on its port.
    again_stack = Stack(tmp_path, _free_port(), "again.log")
    try:
        again_stack.ready()
        _wait(lambda: _answers(replica_port), "the replica answered again", again_stack)
        assert "Started again the 1 replica(s) deployed on the local runtime." in again_stack.output()
        again_stack.process.send_signal(signal.SIGTERM)
        assert again_stack.process.wait(timeout=WAIT_SECONDS) == 0, again_stack.output()
    finally:
        again_stack.kill()
    assert local.supervisord_pid() is None and not _answers(replica_port)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_killed_stacks_processes_are_cleaned_up_and_its_replicas_adopted_by_the_next_start(
    deploy_root: Path, tmp_path: Path
) -> None:
    port = _free_port()
    first = Stack(tmp_path, port, "first.log")
    second = None
    try:
        first.ready()
        replica_port, supervisord = _deploy_a_replica()
        left = first.members()
        os.kill(first.process.pid, signal.SIGKILL)  # no chance to clean up
        first.process.wait(timeout=10)
        assert [pid for pid in left if _alive(pid)] == left and _answers(port)  # its children live on, on its port

        second = Stack(tmp_path, port, "second.log")
        second.ready()

        assert [pid for pid in left if _alive(pid)] == []
        assert "did not stop cleanly; stopping what it left running" in second.output()
        assert local.supervisord_pid() == supervisord and _answers(replica_port)  # adopted, replicas untouched
        assert f"Adopted the local runtime's supervisord (pid {supervisord})" in second.output()
        members = second.members()
        assert members and not set(members) & set(left)

        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=WAIT_SECONDS) == 0, second.output()
    finally:
        first.kill()
        if second is not None:
            second.kill()

    assert [pid for pid in members if _alive(pid)] == []
    assert local.supervisord_pid() is None and not _answers(replica_port) and not _answers(port)
