import io
import json
import logging

from app.config import SERVICE_NAME
from app.log import JsonFormatter, configure_logging


def test_log_lines_are_json_objects_with_extra_fields():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        logging.getLogger("app.scheduler").info("run succeeded", extra={"duration_seconds": 1.5})
        try:
            raise ValueError("bad item")
        except ValueError:
            logging.getLogger("app.scheduler").exception("run failed")
    finally:
        logging.getLogger().handlers.clear()

    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert first["message"] == "run succeeded"
    assert first["level"] == "info"
    assert first["logger"] == "app.scheduler"
    assert first["service"] == SERVICE_NAME
    assert first["duration_seconds"] == 1.5
    assert "ts" in first
    assert second["level"] == "error"
    assert "ValueError: bad item" in second["exc_info"]


def test_formatter_never_fails_on_values_json_cannot_encode():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.obj = object()

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "hello world"
    assert entry["obj"].startswith("<object object")
