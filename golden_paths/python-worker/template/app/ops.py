"""A small HTTP server beside the job loop, for the platform: GET /healthz and GET /metrics."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.metrics import CONTENT_TYPE, Metrics
from app.scheduler import Scheduler

log = logging.getLogger("app.ops")


class Handler(BaseHTTPRequestHandler):
    server: OpsServer
    timeout = 10

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            status, body, content_type = self._health()
        elif path == "/metrics":
            status, body, content_type = HTTPStatus.OK, self.server.metrics.render().encode(), CONTENT_TYPE
        else:
            status, body, content_type = HTTPStatus.NOT_FOUND, b'{"error": "not found"}\n', "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # Probes come every few seconds: log them at debug level only.
        log.debug("request", extra={"method": "GET", "path": path, "status": int(status)})

    def _health(self) -> tuple[int, bytes, str]:
        scheduler, metrics = self.server.scheduler, self.server.metrics
        healthy = scheduler.running and not scheduler.stop.is_set()
        payload = {
            "status": "ok" if healthy else "stopping",
            "runs": dict(metrics.runs),
            "last_success": metrics.last_success or None,
        }
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return status, json.dumps(payload).encode() + b"\n", "application/json"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_GET logs each request, as JSON

    def log_message(self, format: str, *args: object) -> None:
        log.warning(format % args, extra={"remote_addr": self.client_address[0]})


class OpsServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], scheduler: Scheduler, metrics: Metrics) -> None:
        self.scheduler = scheduler
        self.metrics = metrics
        super().__init__(address, Handler)
