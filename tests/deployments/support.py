"""A runtime whose every outcome a test scripts, and a driver that runs a deployment's steps in this process."""

import hashlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from deployments import engine, runtimes
from deployments.models import TERMINAL_STATES, Deployment, DeployTarget, Environment, Release
from deployments.runtimes.base import Context, Observation, Runtime, Samples, StepFailed

GOOD = [10.0 + (i % 7) for i in range(40)]


def samples(*, errors: int = 0, latency: float = 0.0) -> Samples:
    return Samples(requests=40, errors=errors, latencies_ms=[value + latency for value in GOOD], probes=2, probes_ok=2)


class ScriptedRuntime(Runtime):
    """`script` holds outcomes in order: "pass", "fail", "error", "one_error" (1 of 40 failed) for analyses;
    "crash" raises in any step; "bad" makes the next scale fail its health check; "rollback_fail" makes the next
    rollback raise."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.calls: list[str] = []

    def _next(self, *kinds: str) -> str | None:
        if self.script and self.script[0] in (*kinds, "crash"):
            return self.script.popleft()
        return None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self._next() == "crash":
            raise RuntimeError("the worker's process fell over")

    def prepare(self, ctx: Context) -> None:
        self._call("prepare")

    def scale(self, ctx: Context, *, replicas: int) -> None:
        self._call(f"scale:{replicas}")
        if self._next("bad") == "bad":
            raise StepFailed("replica 1 did not pass its health check at /healthz: 500")

    def retire_old(self, ctx: Context, *, keep: int) -> None:
        self._call(f"retire:{keep}")

    def route(self, ctx: Context, *, share: int) -> None:
        self._call(f"route:{share}")
        ctx.state["share"] = share

    def observe(self, ctx: Context) -> Observation:
        self._call("observe")
        kind = self._next("pass", "fail", "error", "one_error") or "pass"
        baseline = samples() if ctx.previous_commit_sha else None
        if kind == "fail":
            return Observation(canary=samples(errors=20), baseline=baseline)
        if kind == "one_error":
            return Observation(canary=samples(errors=1), baseline=baseline)
        if kind == "error":
            return Observation(canary=Samples(), baseline=baseline, metric_error="metrics endpoint refused")
        return Observation(canary=samples(), baseline=baseline)

    def finalize(self, ctx: Context) -> None:
        self._call("finalize")

    def rollback(self, ctx: Context) -> None:
        self.calls.append("rollback")
        if self._next("rollback_fail") in ("rollback_fail", "crash"):
            raise RuntimeError("the old replicas would not start")

    def stop_all(self, *, service: str, environment: str) -> None:
        self._call(f"stop_all:{service}:{environment}")


@contextmanager
def scripted() -> Iterator[ScriptedRuntime]:
    runtime = ScriptedRuntime()
    runtimes.REGISTRY["scripted"] = lambda: runtime
    try:
        yield runtime
    finally:
        runtimes.REGISTRY.pop("scripted", None)


def step(deployment: Deployment) -> Deployment:
    """Run the deployment's next step now, as a worker would, ignoring any wait."""
    Deployment.objects.filter(pk=deployment.pk).update(next_run_at=None, lease_until=None)
    version = Deployment.objects.values_list("version", flat=True).get(pk=deployment.pk)
    engine.run_step(deployment.pk, version)
    return Deployment.objects.get(pk=deployment.pk)


def drive(deployment: Deployment, *, limit: int = 100) -> Deployment:
    """Run steps until the deployment reaches a final state."""
    for _ in range(limit):
        deployment = step(deployment)
        if deployment.state in TERMINAL_STATES or deployment.paused:
            return deployment
    raise AssertionError(f"deployment stuck in {deployment.state} after {limit} steps")


def target_make(service, environment: Environment, **fields) -> DeployTarget:  # type: ignore[no-untyped-def]
    defaults = {"runtime": "simulated", "strategy": "canary", "replicas": 2, "bake_seconds": 0}
    return DeployTarget.objects.create(service=service, environment=environment, **{**defaults, **fields})


def release_make(service, version: str = "1.0.0", sha: str | None = None) -> Release:  # type: ignore[no-untyped-def]
    sha = sha or hashlib.sha1(f"{service.slug}@{version}".encode()).hexdigest()
    return Release.objects.create(service=service, version=version, commit_sha=sha)
