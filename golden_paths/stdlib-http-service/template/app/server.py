"""The HTTP server: routes, JSON access logs, metrics, and a graceful stop on SIGTERM.

`ThreadingHTTPServer` answers each connection in its own thread. Connections are closed after each response
(HTTP/1.0), so stopping the server only waits for requests already being answered.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.config import GREETING, SERVICE_NAME, Settings
from app.log import configure_logging
from app.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("app")
access_log = logging.getLogger("app.access")

ROUTES = ("/", "/healthz", "/metrics")  # other paths are counted as "other" to keep metrics small


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: object, **headers: str) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode() + b"\n", headers=headers)


class Service:
    """What the service answers, independent of the HTTP plumbing (and so easy to test)."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.stopping = threading.Event()

    def handle(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"}, Allow="GET, HEAD")
        if path == "/":
            return json_response(
                HTTPStatus.OK,
                {
                    "message": f"{GREETING} from {SERVICE_NAME}",
                    "service": SERVICE_NAME,
                    "version": self.settings.version,
                },
            )
        if path == "/healthz":
            if self.stopping.is_set():
                return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "stopping"})
            return json_response(HTTPStatus.OK, {"status": "ok"})
        if path == "/metrics":
            return Response(HTTPStatus.OK, self.metrics.render().encode(), CONTENT_TYPE)
        return json_response(HTTPStatus.NOT_FOUND, {"error": "not found"})


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = SERVICE_NAME
    timeout = 30  # seconds a client has to send its request; stops idle connections from holding a thread

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def version_string(self) -> str:
        return self.server_version

    def _answer(self) -> None:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        request_id = self.headers.get("X-Request-ID") or uuid.uuid4().hex
        try:
            response = self.server.service.handle(self.command, path)
        except Exception:
            log.exception("unhandled error", extra={"path": path, "request_id": request_id})
            response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
        route = path if path in ROUTES else "other"
        # Counted before the answer is sent: a client that reads /metrics right after must see its request counted.
        self.server.service.metrics.request_observed(self.command, route, response.status)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Request-ID", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        access_log.info(
            "request",
            extra={
                "method": self.command,
                "path": path,
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "remote_addr": self.client_address[0],
                "request_id": request_id,
            },
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _answer() writes the access log line, as JSON

    def log_message(self, format: str, *args: object) -> None:
        # The base class writes plain text to stderr (malformed requests, timeouts...): log it as JSON instead.
        log.warning(format % args, extra={"remote_addr": self.client_address[0]})


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in progress
    block_on_close = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(address, Handler)


def make_server(settings: Settings, service: Service | None = None) -> Server:
    """Bind the listening socket (port 0 picks a free port: see `server.server_address`)."""
    return Server((settings.host, settings.port), service or Service(settings))


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    server = make_server(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        server.service.stopping.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http")
    thread.start()
    host, port = server.server_address[:2]
    log.info("listening", extra={"host": host, "port": port, "version": settings.version})
    while not stop.wait(1.0):
        pass
    server.shutdown()  # stop accepting; returns once the serving loop has ended
    thread.join()
    server.server_close()  # waits for the requests still being answered
    log.info("stopped")
    return 0
