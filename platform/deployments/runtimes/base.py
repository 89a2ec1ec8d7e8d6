"""The small interface every deploy runtime implements, and what it returns.

Every method is idempotent: a worker that dies half-way through a step runs the same call again, and the call
must converge on the same result (start only the replicas that are missing, stop only those still running).
A runtime keeps what it needs between calls in `ctx.state`, which the engine saves on the deployment after each
call. Raise `StepFailed` for a verdict on the release (its health check fails: roll back), `Waiting` when an
external system has not answered yet, and let anything else propagate: the engine counts it as a crash and
retries the step a few times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class StepFailed(Exception):
    """The release is bad (it does not build, start or answer its health check): the deployment rolls back."""


class Waiting(Exception):
    """An external system has not answered yet; the engine asks again after `seconds`."""

    def __init__(self, message: str, *, seconds: float = 5.0) -> None:
        super().__init__(message)
        self.seconds = seconds


@dataclass
class Context:
    """What a runtime knows about the deployment it is working on."""

    deployment_id: int
    service: str  # the service's slug
    environment: str  # the environment's slug
    version: str
    commit_sha: str
    repository: str  # a path or URL git can clone; "" when the service has none
    previous_version: str | None = None
    previous_commit_sha: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the deploy target's settings (replicas, thresholds...)
    state: dict[str, Any] = field(default_factory=dict)  # the runtime's own notes, saved between calls
    step: str = ""  # a stable key for the current plan step, e.g. "3:shift"


@dataclass
class Samples:
    """What one set of replicas (baseline: the old release, canary: the new one) did during an analysis window."""

    requests: int = 0  # requests counted by the replicas' own metrics
    errors: int = 0  # of which answered with a 5xx
    latencies_ms: list[float] = field(default_factory=list)  # per-request latencies of the analysis traffic
    probes: int = 0  # health probes sent
    probes_ok: int = 0  # of which answered 2xx

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latencies_ms": [round(value, 2) for value in self.latencies_ms],
            "probes": self.probes,
            "probes_ok": self.probes_ok,
        }


@dataclass
class Observation:
    """The analysis window's samples; `metric_error` says why metrics could not be read (never healthy)."""

    canary: Samples
    baseline: Samples | None = None  # None when nothing ran before (a first deployment)
    metric_error: str = ""


class Runtime(ABC):
    name: str
    lists_replicas = False  # whether `endpoints` says where the replicas run, so health checks can follow them

    @abstractmethod
    def prepare(self, ctx: Context) -> None:
        """Fetch and build the release (local: check out its commit and run its build)."""

    @abstractmethod
    def scale(self, ctx: Context, *, replicas: int) -> None:
        """Make exactly `replicas` replicas of the new release run and pass their health check."""

    @abstractmethod
    def retire_old(self, ctx: Context, *, keep: int) -> None:
        """Stop replicas of the previous release until at most `keep` remain."""

    @abstractmethod
    def route(self, ctx: Context, *, share: int) -> None:
        """Send `share` percent of traffic to the new release."""

    @abstractmethod
    def observe(self, ctx: Context) -> Observation:
        """Measure both releases for analysis: error counts, latencies and probe results."""

    @abstractmethod
    def finalize(self, ctx: Context) -> None:
        """The new release takes all traffic and every replica of the previous one is stopped."""

    @abstractmethod
    def rollback(self, ctx: Context) -> None:
        """Traffic back to the previous release (still running), then stop every replica of the new one."""

    @abstractmethod
    def stop_all(self, *, service: str, environment: str) -> None:
        """Stop everything this service runs in this environment (decommissioning)."""

    def endpoints(self, service: str, environment: str) -> list[dict[str, Any]] | None:
        """Every replica that should run for this service and environment: `program`, `version`, `state`
        ("RUNNING" when it runs), `health_url` and `metrics_url`. None when the runtime cannot say where its
        replicas run (an external CD system's, or the simulated one's where nothing runs)."""
        return None
