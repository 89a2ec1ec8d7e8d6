"""`manage.py runstack`: the web server, a Celery worker and beat in one terminal (what `make run` uses).

Ctrl-C, SIGTERM or SIGHUP stops everything the stack started: the three children, their own children (gunicorn's
workers, the Celery pool), and the local runtime's supervisord with the replicas it runs for services deployed to
Development (a worker starts it on the first deploy, as a daemon of its own, so stopping the worker alone would leave
it and its ports behind).

Each child runs in a process group of its own and carries a token of this stack in its environment; the stack writes
its pid, the token and its children to `VAR_DIR/runstack.json`. A stack that could not clean up (SIGKILL, a crash, a
closed terminal) leaves that file: the next start stops every process still carrying its token before it binds the
same port, and refuses to start while that stack itself is still alive. supervisord is adopted rather than killed:
if one answers, its replicas keep running under the new stack; if none does but replicas are configured, it is
started, so what the environments page says runs in Development answers again.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deployments.runtimes import local as local_runtime

TOKEN_VARIABLE = "RUNWAY_STACK_TOKEN"
STOP_SECONDS = 15.0  # what a child gets to finish on SIGTERM before it is killed
RESTART_WINDOW_SECONDS = 60
MAX_RESTARTS = 5


class Command(BaseCommand):
    help = "Start gunicorn, a Celery worker and Celery beat together (what `make run` uses)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--worker-concurrency", type=int, default=2)

    def handle(self, *args: Any, bind: str, web_workers: int, worker_concurrency: int, **options: Any) -> None:
        state_file = Path(settings.VAR_DIR) / "runstack.json"
        state_file.parent.mkdir(parents=True, exist_ok=True)
        self._clean_leftovers(state_file)
        # Metrics files of the previous run's processes (portal/metrics.py): their pids are reused, and counts
        # carried over would jump backwards or double when a new process takes an old one's file.
        for leftover in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            leftover.unlink(missing_ok=True)
        token = uuid.uuid4().hex
        platform_dir = settings.BASE_DIR / "platform"
        env = {**os.environ, "PYTHONPATH": str(platform_dir), TOKEN_VARIABLE: token}
        commands = _commands(platform_dir, bind, web_workers, worker_concurrency, Path(settings.VAR_DIR))
        # Signals become one orderly stop; children in their own groups hear nothing from the terminal themselves.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            restored = self._adopt_supervisord()
            for name, command in commands.items():
                processes[name] = _spawn(command, env)
            _write_state(state_file, token, processes)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nRunway is starting on http://{bind}/ — sign in as demo / runway-demo "
                    f"(or admin / runway-demo for a platform admin). Ctrl-C stops everything.\n"
                )
                + (f"{restored}\n" if restored else "")
            )
            restarts: dict[str, list[float]] = {"worker": [], "beat": []}
            while True:
                time.sleep(0.5)
                exited = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
                if not exited:
                    continue
                if "web" in exited or not self._restart(exited, processes, commands, env, restarts):
                    self.stderr.write(f"{', '.join(exited)} stopped; stopping the rest.")
                    break
                _write_state(state_file, token, processes)
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C while stopping must not cut the clean-up short: it only hurries it (SIGKILL at once).
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, _hurry)
            self.stdout.write("Stopping Runway…")
            _stop(list(processes.values()), token)
            self._stop_supervisord()
            state_file.unlink(missing_ok=True)
            self.stdout.write("Stopped.")

    def _clean_leftovers(self, state_file: Path) -> None:
        """Stop what a stack that died without cleaning up left running, or refuse if that stack is still alive."""
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(state, dict) or not isinstance(state.get("token"), str):
            state_file.unlink(missing_ok=True)
            return
        pid = state.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _is_runstack(pid):
            raise CommandError(
                f"Runway is already running here (runstack, pid {pid}); stop it first (Ctrl-C in its terminal, or "
                f"kill {pid})."
            )
        if not Path("/proc").is_dir():  # no way to find the token: the groups recorded are the best guess
            for child in state.get("children", {}).values():
                if isinstance(child, int):
                    _killpg(child, signal.SIGTERM)
        leftovers = _members(state["token"])
        if leftovers:
            self.stderr.write(
                f"A previous run of the stack did not stop cleanly; stopping what it left running "
                f"(pids {', '.join(map(str, leftovers))})."
            )
            _stop([], state["token"])
        state_file.unlink(missing_ok=True)

    def _adopt_supervisord(self) -> str:
        """Keep the local runtime's supervisord if one runs, or start it when replicas are configured; say which."""
        try:
            pid = local_runtime.supervisord_pid()
            if pid is not None:
                return f"Adopted the local runtime's supervisord (pid {pid}) and the replicas it runs."
            count = local_runtime.supervisord_restore()
        except (OSError, RuntimeError) as error:  # the stack still starts; the deploy pages show what is down
            self.stderr.write(f"The local runtime's replicas could not be started again: {error}")
            return ""
        return f"Started again the {count} replica(s) deployed on the local runtime." if count else ""

    def _stop_supervisord(self) -> None:
        try:
            local_runtime.supervisord_shutdown()
        except (OSError, RuntimeError) as error:
            self.stderr.write(f"The local runtime's supervisord did not stop: {error}")

    def _restart(
        self,
        exited: dict[str, int | None],
        processes: dict[str, subprocess.Popen[bytes]],
        commands: dict[str, list[str]],
        env: dict[str, str],
        restarts: dict[str, list[float]],
    ) -> bool:
        """Start a worker or beat that died again, as a service manager would: Celery's worker can exit when its
        broker vanishes mid-delivery, and nothing is lost by restarting it (PostgreSQL holds the truth and the
        sweeper re-sends what was in flight). One that keeps dying is given up, with everything else."""
        now = time.monotonic()
        for name, code in exited.items():
            recent = [at for at in restarts[name] if now - at < RESTART_WINDOW_SECONDS]
            if len(recent) >= MAX_RESTARTS:
                self.stderr.write(f"{name} exited {MAX_RESTARTS} times within {RESTART_WINDOW_SECONDS} s; giving up.")
                return False
            restarts[name] = [*recent, now]
            self.stderr.write(f"{name} exited with code {code}; starting it again.")
            _killpg(processes[name].pid, signal.SIGKILL)  # whatever of its group outlived it
            processes[name] = _spawn(commands[name], env)
        return True


def _commands(platform_dir: Path, bind: str, web_workers: int, concurrency: int, var_dir: Path) -> dict[str, list[str]]:
    bin_dir = os.path.dirname(sys.executable)
    celery = [f"{bin_dir}/celery", "--workdir", str(platform_dir), "-A", "portal"]
    return {
        "web": [
            f"{bin_dir}/gunicorn",
            "--chdir",
            str(platform_dir),
            "--bind",
            bind,
            "--workers",
            str(web_workers),
            "--access-logfile",
            "-",
            "portal.wsgi",
        ],
        "worker": [
            *celery,
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--hostname",
            "runway@%h",
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", str(var_dir / "celerybeat")],
    }


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A group of its own: the whole child (gunicorn and its workers, the worker and its pool) stops together.
    return subprocess.Popen(command, env=env, process_group=0)


def _write_state(state_file: Path, token: str, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    state = {"pid": os.getpid(), "token": token, "children": {name: p.pid for name, p in processes.items()}}
    temporary = state_file.with_name(f".{state_file.name}.tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(state_file)


def _is_runstack(pid: int) -> bool:
    try:
        return b"runstack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _members(token: str) -> list[int]:
    """Every live process carrying this stack's token (its children and theirs, whatever group they moved to)."""
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return sorted(found)


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


_hurried = False


def _stop(processes: list[subprocess.Popen[bytes]], token: str) -> None:
    """SIGTERM each child's group and every process with the token, SIGKILL what is left after STOP_SECONDS."""
    for process in processes:
        if process.poll() is None:
            _killpg(process.pid, signal.SIGTERM)
    for pid in _members(token):
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and not _hurried:
        for process in processes:
            process.poll()
        if not _members(token) and all(process.returncode is not None for process in processes):
            break
        time.sleep(0.1)
    for process in processes:
        _killpg(process.pid, signal.SIGKILL)
    for pid in _members(token):
        _kill(pid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _hurry(signum: int, frame: object) -> None:
    global _hurried
    _hurried = True
