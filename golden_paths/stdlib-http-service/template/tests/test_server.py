import io
import json
import logging
import time

from app.config import GREETING, SERVICE_NAME, Settings
from app.log import JsonFormatter
from tests.conftest import fetch


def test_healthz_answers_ok(base_url):
    reply = fetch(f"{base_url}/healthz")

    assert reply.status == 200
    assert json.loads(reply.body) == {"status": "ok"}
    assert reply.headers["Content-Type"] == "application/json"


def test_healthz_answers_503_once_stopping(server, base_url):
    server.service.stopping.set()

    assert fetch(f"{base_url}/healthz").status == 503


def test_root_says_hello_with_service_name_and_version(base_url):
    reply = fetch(f"{base_url}/")

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "message": f"{GREETING} from {SERVICE_NAME}",
        "service": SERVICE_NAME,
        "version": "1.2.3",
    }


def test_version_defaults_to_dev():
    assert Settings.from_env({}).version == "dev"
    assert Settings.from_env({"VERSION": "2026.11.26-1"}).version == "2026.11.26-1"
    assert Settings.from_env({"PORT": "9123"}).port == 9123


def test_unknown_path_is_404_and_other_methods_405(base_url):
    assert fetch(f"{base_url}/nope").status == 404
    reply = fetch(f"{base_url}/", method="POST")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"


def _counter(text: str, labels: str) -> float:
    prefix = f"http_requests_total{{{labels}}} "
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


def test_metrics_count_requests_by_path_and_status(base_url):
    # The counters live for the whole process, so count what this test adds rather than absolute values.
    before = fetch(f"{base_url}/metrics").body.decode()
    fetch(f"{base_url}/")
    fetch(f"{base_url}/")
    fetch(f"{base_url}/does-not-exist")

    reply = fetch(f"{base_url}/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    assert "# TYPE http_requests_total counter" in text
    ok, missing = 'method="GET",path="/",status="200"', 'method="GET",path="other",status="404"'
    assert _counter(text, ok) - _counter(before, ok) == 2
    assert _counter(text, missing) - _counter(before, missing) == 1
    assert "# TYPE process_start_time_seconds gauge" in text
    start = [line for line in text.splitlines() if line.startswith("process_start_time_seconds ")]
    assert float(start[0].split()[1]) > 1_600_000_000


def test_each_request_writes_one_json_access_log_line(base_url):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("app.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        fetch(f"{base_url}/healthz")
        deadline = time.monotonic() + 2
        while not stream.getvalue() and time.monotonic() < deadline:  # logged just after the response is sent
            time.sleep(0.01)
    finally:
        access.removeHandler(handler)

    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "request"
    assert entry["service"] == SERVICE_NAME
    assert entry["level"] == "info"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert entry["duration_ms"] >= 0
    assert entry["request_id"]
