"""Start the worker the way Runway does (runway.yaml's `start`), as a separate process."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import fetch, free_port

ROOT = Path(__file__).resolve().parent.parent


def start_command() -> list[str]:
    """runway.yaml's `start`, run with the Python that runs the tests."""
    line = next(line for line in (ROOT / "runway.yaml").read_text().splitlines() if line.startswith("start:"))
    value = line.partition(":")[2].strip()
    command = shlex.split(json.loads(value) if value.startswith('"') else value)
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_runs_the_job_at_start_serves_health_and_metrics_and_stops_on_sigterm():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "INTERVAL_SECONDS": "3600", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(start_command(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, metrics = time.monotonic() + 5, ""
        while time.monotonic() < deadline and 'worker_job_runs_total{outcome="success"} 1' not in metrics:
            try:
                metrics = fetch(f"http://127.0.0.1:{port}/metrics").body.decode()
            except OSError:
                time.sleep(0.05)
        assert 'worker_job_runs_total{outcome="success"} 1' in metrics
        assert fetch(f"http://127.0.0.1:{port}/healthz").status == 200

        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)  # the loop is waiting an hour for the next run: must stop now
        stdout, stderr = process.communicate(timeout=10)
        assert time.monotonic() - stopping < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr.decode()
    messages = [json.loads(line)["message"] for line in stdout.decode().splitlines()]
    assert messages[0] == "started"
    assert "run succeeded" in messages
    assert messages[-2:] == ["stopping", "stopped"]
