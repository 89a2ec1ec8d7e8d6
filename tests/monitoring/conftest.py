"""A real HTTP server on loopback with one path per behaviour a probe must handle."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HUGE_BYTES = 50 * 1024 * 1024


@dataclass
class Target:
    port: int
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            target.hits.append((self.path, self.headers.get("Host", "")))
            if self.path == "/ok":
                self._send(200, b'{"status": "ok"}')
            elif self.path == "/slow":
                time.sleep(3)
                self._send(200, b"late")
            elif self.path == "/fail":
                self._send(503, b"unavailable")
            elif self.path == "/elsewhere":
                # The same server under another name is another host: the probe must not go there.
                self._send(302, headers={"Location": f"http://localhost:{target.port}/ok"})
            elif self.path == "/moved":
                self._send(301, headers={"Location": "/ok"})
            elif self.path == "/loop":
                self._send(302, headers={"Location": "/loop"})
            elif self.path == "/huge":
                self.send_response(200)
                self.send_header("Content-Length", str(HUGE_BYTES))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(HUGE_BYTES // len(chunk)):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            else:
                self._send(404, b"no such path")

    return Handler


@pytest.fixture
def target() -> Iterator[Target]:
    target = Target(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(target))
    server.daemon_threads = True
    target.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield target
    server.shutdown()
    server.server_close()
