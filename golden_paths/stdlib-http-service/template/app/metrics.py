"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: no client library needed."""

from __future__ import annotations

import threading
import time
from collections import Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self, *, start_time: float | None = None) -> None:
        self.start_time = time.time() if start_time is None else start_time
        self._requests: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def request_observed(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._requests[(method, path, status)] += 1

    def render(self) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
        lines = [
            "# HELP http_requests_total HTTP requests answered, by method, path and status.",
            "# TYPE http_requests_total counter",
        ]
        for (method, path, status), count in requests:
            lines.append(
                f'http_requests_total{{method="{_label(method)}",path="{_label(path)}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.start_time:.3f}",
        ]
        return "\n".join(lines) + "\n"
