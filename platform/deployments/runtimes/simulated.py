"""A runtime that does no work: every call succeeds at once and analysis sees healthy, steady traffic.

It exists to measure the portal's own orchestration (the benchmark starts a hundred deployments on it) and to
give services without a repository a deploy history in the demo. Nothing runs anywhere.
"""

import random

from deployments.runtimes.base import Context, Observation, Runtime, Samples


def _samples(seed: int) -> Samples:
    rng = random.Random(seed)
    latencies = [max(1.0, rng.gauss(12.0, 2.0)) for _ in range(40)]
    return Samples(requests=40, errors=0, latencies_ms=latencies, probes=2, probes_ok=2)


class SimulatedRuntime(Runtime):
    name = "simulated"

    def prepare(self, ctx: Context) -> None:
        ctx.state["prepared"] = True

    def scale(self, ctx: Context, *, replicas: int) -> None:
        ctx.state["new"] = replicas

    def retire_old(self, ctx: Context, *, keep: int) -> None:
        ctx.state["old"] = keep

    def route(self, ctx: Context, *, share: int) -> None:
        ctx.state["share"] = share

    def observe(self, ctx: Context) -> Observation:
        baseline = _samples(ctx.deployment_id * 2 + 1) if ctx.previous_commit_sha else None
        return Observation(canary=_samples(ctx.deployment_id * 2), baseline=baseline)

    def finalize(self, ctx: Context) -> None:
        ctx.state["old"] = 0
        ctx.state["share"] = 100

    def rollback(self, ctx: Context) -> None:
        ctx.state["new"] = 0
        ctx.state["share"] = 0

    def stop_all(self, *, service: str, environment: str) -> None:
        return None
