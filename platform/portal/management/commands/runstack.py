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
        self.stdout.write(
            self.style.SUCCESS(
                f"\nRunway is starting on http://{bind}/ — sign in as demo / runway-demo "
                f"(or admin / runway-demo for a platform admin). Ctrl-C stops everything.\n"
            )
        )
        try:
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            stopped = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(stopped)} stopped; stopping the rest.")
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
