"""`runstack` starts a Celery worker or beat that died again, and gives up on one that keeps dying."""

import subprocess
from io import StringIO

from portal.management.commands import runstack


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
