"""Prometheus metrics with prometheus_client, in a registry of the app's own (so tests can create many apps).

gunicorn runs one process per replica (docs/adr/0002), so this registry holds every request of the replica.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

LABELS = ("method", "path", "status")


class Metrics:
    def __init__(self, *, version: str = "dev", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route and status.",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route and status.",
            LABELS,
            registry=self.registry,
        )
        info = Gauge("app_info", "Always 1; the labels tell the running version.", ["version"], registry=self.registry)
        info.labels(version=version).set(1)
        ProcessCollector(registry=self.registry)  # process_start_time_seconds, memory, CPU, open files

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        labels = {"method": method, "path": path, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
