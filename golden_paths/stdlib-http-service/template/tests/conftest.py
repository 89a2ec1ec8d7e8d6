from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.config import Settings
from app.server import Server, make_server


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, method: str = "GET") -> Reply:
    """A request with urllib that returns error statuses instead of raising them."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server() -> Iterator[Server]:
    """The real server on an ephemeral port, serving from a thread."""
    server = make_server(Settings(host="127.0.0.1", port=0, version="1.2.3"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


@pytest.fixture
def base_url(server: Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
