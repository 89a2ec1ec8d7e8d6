"""Start the service the way Runway does (runway.yaml's `start`), as a separate process."""

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


def test_starts_within_a_second_and_stops_on_sigterm():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "VERSION": "test", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(start_command(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        status = None
        while time.monotonic() - started < 1.0 and status != 200:
            try:
                status = fetch(f"http://127.0.0.1:{port}/healthz").status
            except OSError:
                time.sleep(0.02)
        assert status == 200, "no answer on /healthz within 1 second"

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr.decode()
    entries = [json.loads(line) for line in stdout.decode().splitlines()]
    messages = [entry["message"] for entry in entries]
    assert messages[0] == "listening"
    assert entries[0]["port"] == port
    assert "request" in messages
    # The request's log line may land after "stopping": it is written once the answer has gone out.
    assert messages[-1] == "stopped"
    assert messages.count("stopping") == 1
