import io
import json
import logging

import pytest

from app.config import SERVICE_NAME
from app.log import JsonFormatter


@pytest.fixture
def access_lines():
    """JSON lines written by the access logger during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_each_request_writes_one_json_access_line(client, access_lines):
    client.get("/api/v1/hello", query_string={"name": "Ada"}, headers={"X-Request-ID": "req-1"})

    (entry,) = access_lines()
    assert entry["message"] == "request"
    assert entry["level"] == "info"
    assert entry["logger"] == "app.access"
    assert entry["service"] == SERVICE_NAME
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/hello"
    assert entry["route"] == "/api/v1/hello"
    assert entry["status"] == 200
    assert entry["request_id"] == "req-1"
    assert entry["duration_ms"] >= 0
    assert entry["ts"].endswith("+00:00")


def test_exceptions_are_logged_with_their_traceback():
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError("bad input")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    entry = json.loads(JsonFormatter().format(record))

    assert entry["level"] == "error"
    assert "ValueError: bad input" in entry["exc_info"]
