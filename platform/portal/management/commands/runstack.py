"""`manage.py runstack`: the web server, a Celery worker and beat, in one terminal; Ctrl-C stops all three."""

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start gunicorn, a Celery worker and Celery beat together (what `make run` uses)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args: Any, bind: str, web_workers: int, **options: Any) -> None:
        platform_dir = settings.BASE_DIR / "platform"
        env = {**os.environ, "PYTHONPATH": str(platform_dir)}
        bin_dir = os.path.dirname(sys.executable)
        beat_schedule = settings.VAR_DIR / "celerybeat"
        commands = {
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
                f"{bin_dir}/celery",
                "--workdir",
                str(platform_dir),
                "-A",
                "portal",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                "runway@%h",
            ],
            "beat": [
                f"{bin_dir}/celery",
                "--workdir",
                str(platform_dir),
                "-A",
                "portal",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(beat_schedule),
            ],
        }
        # SIGTERM (from a supervisor or `timeout`) stops the children too, as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        processes = {name: subprocess.Popen(command, env=env) for name, command in commands.items()}
        restarts: dict[str, list[float]] = {"worker": [], "beat": []}
        self.stdout.write(
            self.style.SUCCESS(
                f"\nRunway is starting on http://{bind}/ — sign in as demo / runway-demo "
                f"(or admin / runway-demo for a platform admin). Ctrl-C stops everything.\n"
            )
        )
        try:
            while True:
                time.sleep(0.5)
                exited = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
                if not exited:
                    continue
                if "web" in exited or not self._restart(exited, processes, commands, env, restarts):
                    self.stderr.write(f"{', '.join(exited)} stopped; stopping the rest.")
                    break
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

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
            processes[name] = subprocess.Popen(commands[name], env=env)
        return True


RESTART_WINDOW_SECONDS = 60
MAX_RESTARTS = 5


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
