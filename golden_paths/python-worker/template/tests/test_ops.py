import json
import threading

import pytest

from app.metrics import Metrics
from app.ops import OpsServer
from app.scheduler import Scheduler
from tests.conftest import fetch


@pytest.fixture
def ops():
    metrics = Metrics(interval_seconds=60)
    scheduler = Scheduler(lambda: "done", 60, metrics=metrics)
    server = OpsServer(("127.0.0.1", 0), scheduler, metrics)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield scheduler, f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def test_healthz_is_ok_while_the_loop_runs(ops):
    scheduler, url = ops
    scheduler.running = True

    reply = fetch(f"{url}/healthz")

    assert reply.status == 200
    assert json.loads(reply.body)["status"] == "ok"


def test_healthz_is_503_when_the_loop_is_not_running_or_stopping(ops):
    scheduler, url = ops
    assert fetch(f"{url}/healthz").status == 503

    scheduler.running = True
    scheduler.stop.set()
    reply = fetch(f"{url}/healthz")
    assert reply.status == 503
    assert json.loads(reply.body)["status"] == "stopping"


def test_metrics_in_prometheus_text_format(ops):
    scheduler, url = ops
    scheduler.run_once()

    reply = fetch(f"{url}/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    assert "# TYPE worker_job_runs_total counter" in text
    assert 'worker_job_runs_total{outcome="success"} 1' in text
    assert 'worker_job_runs_total{outcome="failure"} 0' in text
    assert 'worker_job_duration_seconds_bucket{le="+Inf"} 1' in text
    assert "worker_job_duration_seconds_count 1" in text
    assert "worker_job_interval_seconds 60" in text
    last_success = next(line for line in text.splitlines() if line.startswith("worker_job_last_success_timestamp"))
    assert float(last_success.split()[1]) > 1_600_000_000


def test_unknown_path_is_404(ops):
    _, url = ops
    assert fetch(f"{url}/nope").status == 404
