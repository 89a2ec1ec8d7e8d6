"""A scaffold whose worker is SIGKILLed mid-render: real `celery worker` processes, a real broker, a real render.

The worker holds a lease on the run and renews it while it renders; killed, it stops renewing, and the sweeper (the
second worker's beat, as in production) finds the lapsed lease, marks the render step interrupted, removes the dead
worker's work folder and sends the run again, which the second worker then finishes.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from catalog.models import Service
from scaffolder import leases, registry, services
from scaffolder.models import STEPS, ScaffoldRun
from tests.processes import database_url
from tests.scaffolder.support import STDLIB, answers, git

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]

PLATFORM = Path(settings.BASE_DIR) / "platform"
LEASE_SECONDS = 3  # the workers' lease: short, so a killed worker's run is found quickly
FINISH_SECONDS = 120  # generous: only a failing test waits this long (two workers boot Django on a busy machine)


@dataclass
class Worker:
    """`celery -A portal worker` in a session of its own, so SIGKILL takes it and the copier child it runs at once."""

    process: subprocess.Popen[bytes]
    log: Path
    alive: bool = True  # expected to be running

    @classmethod
    def start(cls, *, log: Path, beat: bool = False) -> "Worker":
        # The broker is the test run's own (REDIS_URL, or the filesystem queue under the inherited RUNWAY_VAR_DIR).
        env = os.environ | {
            "DATABASE_URL": database_url(),
            "CONN_MAX_AGE": "0",
            "GIT_ROOT": str(settings.GIT_ROOT),
            "GOLDEN_PATH_STORE": str(settings.GOLDEN_PATH_STORE),
            "SCAFFOLD_LEASE_SECONDS": str(LEASE_SECONDS),
            "PYTHONPATH": str(PLATFORM),
            "LOG_LEVEL": "INFO",
        }
        argv = [sys.executable, "-m", "celery", "--workdir", str(PLATFORM), "-A", "portal", "worker"]
        argv += ["--pool", "solo", "--loglevel", "INFO", "--hostname", f"{log.stem}-{os.getpid()}@scaffold-faults"]
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:  # the sweeper runs on the beat schedule, as in production
            argv += ["--beat", "--schedule", str(log.with_suffix(".schedule"))]
        with open(log, "ab") as output:
            process = subprocess.Popen(
                argv, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        return cls(process=process, log=log)

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _wait(run: ScaffoldRun, done: Callable[[ScaffoldRun], bool], what: str, *workers: Worker) -> ScaffoldRun:
    deadline = time.monotonic() + FINISH_SECONDS
    while True:
        current = ScaffoldRun.objects.get(pk=run.pk)
        if done(current):
            return current
        stopped = [worker for worker in workers if worker.process.poll() is not None and worker.alive]
        if time.monotonic() > deadline or stopped:
            logs = "\n".join(worker.output() for worker in workers)
            raise AssertionError(f"run never {what}; it is {current.status}: {current.steps}\n{logs}")
        time.sleep(0.01)


def _rendering(run: ScaffoldRun) -> bool:
    return bool(run.steps) and run.steps[-1] == {"name": "render", "status": "running", "message": ""}


def test_a_worker_killed_mid_render_leaves_a_run_the_sweeper_retries_and_another_worker_finishes(
    world, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    path = registry.golden_path_get(STDLIB)
    assert path is not None
    first = Worker.start(log=tmp_path / "worker-1.log")
    second = None
    try:
        run = services.scaffold_request(
            path=path, answers=answers(), owner=world.owner_team, system=None, requested_by=world.owner
        )
        rendering = _wait(run, _rendering, "started rendering", first)
        folder = leases.work_root() / f"scaffold-{run.uuid}"
        assert folder.is_dir()  # the render's work folder
        first.kill()

        held = ScaffoldRun.objects.get(pk=run.pk)
        assert (held.status, held.attempts) == (ScaffoldRun.Status.RUNNING, 1)
        assert held.lease_until is not None and held.lease_until >= rendering.lease_until  # renewed, never given up
        assert _rendering(held)

        second = Worker.start(log=tmp_path / "worker-2.log", beat=True)
        done = _wait(run, lambda r: r.is_done, "finished", first, second)
    finally:
        first.kill()
        if second is not None:
            second.kill()

    assert done.status == ScaffoldRun.Status.SUCCEEDED, f"{done.error}\n{second.output() if second else ''}"
    assert done.attempts == 2 and done.lease_until is None
    # The killed attempt's render is marked interrupted, with the reason; the retry's five steps follow, all done.
    assert done.steps[0] == {"name": "render", "status": "interrupted", "message": services.INTERRUPTED}
    assert [(step["name"], step["status"]) for step in done.steps[1:]] == [(name, "done") for name in STEPS]
    assert not folder.exists()
    assert not list(leases.work_root().glob(f"scaffold-{run.uuid}*"))
    service = Service.objects.get(slug="ledger-api")
    assert done.service == service and service.owner == world.owner_team
    assert git(Path(settings.GIT_ROOT) / "ledger-api.git", "rev-list", "--count", "main").strip() == "1"


def _children(parent: int, marker: bytes) -> list[int]:
    """Live processes whose parent is `parent` and whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == parent and marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.django_db(transaction=False)
def test_a_render_does_not_outlive_the_worker_that_started_it(tmp_path: Path) -> None:
    """Killed with its worker, copier does not write on into a work folder the sweeper removes."""
    template = tmp_path / "endless"
    template.mkdir()
    (template / "copier.yml").write_text("name: {type: str}\n")
    # Ten billion sandboxed loop turns: a render that never ends by itself.
    (template / "endless.txt.jinja").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    )
    (tmp_path / "out").mkdir()
    script = (
        "from pathlib import Path; from scaffolder.render import render_in_child; "
        f"render_in_child(template=Path({str(template)!r}), destination=Path({str(tmp_path / 'out' / 'x')!r}), "
        "data={'name': 'x'})"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script], env=os.environ | {"PYTHONPATH": str(PLATFORM)}, start_new_session=True
    )
    render: list[int] = []
    try:
        deadline = time.monotonic() + FINISH_SECONDS
        while not (render := _children(worker.pid, b"scaffolder.render")):
            assert worker.poll() is None and time.monotonic() < deadline, "the render never started"
            time.sleep(0.05)
        time.sleep(1)  # well into the endless loop
        os.kill(worker.pid, signal.SIGKILL)  # the worker alone, as an out-of-memory kill would
        worker.wait(timeout=10)
        deadline = time.monotonic() + 30  # generous: it goes at once; before, it rendered on alone
        while _alive(render[0]):
            assert time.monotonic() < deadline, "the render went on after its worker died"
            time.sleep(0.05)
    finally:
        for pid in render:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.kill()
