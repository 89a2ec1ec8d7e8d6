"""A runtime that does no work: every call succeeds at once and analysis sees healthy, steady traffic.

It exists to measure the portal's own orchestration (the benchmark starts a hundred deployments on it) and to
give services without code a deploy history in the demo. Nothing runs anywhere.

A deployment's config may ask for a fault with `"simulate"`, so that a rollback can be shown without a broken
release (the demo loader sets it on one deployment; no page or API sets it):
- `"slow"`: the new release answers about twice as slowly as the old one. It stays far below any p95 limit, so
  only the comparison with the baseline (Mann-Whitney U) catches it, and only when there is a baseline.
- `"errors"`: one request in five fails on the new release, far above the default 1 % error-rate limit.
Any other value fails the deployment at once, rather than letting a mistyped fault pass for a healthy release.
"""

import random

from deployments.runtimes.base import Context, Observation, Runtime, Samples, StepFailed

FAULTS = frozenset({"slow", "errors"})


def _samples(seed: str, *, slowdown: float = 1.0, error_rate: float | None = None) -> Samples:
    """400 requests counted, 40 of them timed around 12 ms, now and then one failed (at most 0.25 % of a window, and
    rarely enough that the judge's background allowance over a whole deployment explains it: two windows of two
    failures each, 4 of 800, were refused by its binomial test and rolled a healthy demo release back); the same
    every time for one seed, so a deployment's figures do not change when a page is reloaded."""
    rng = random.Random(seed)
    latencies = [max(1.0, rng.gauss(12.0, 2.0)) * slowdown for _ in range(40)]
    requests = 400
    failed = rng.choice((0, 0, 0, 1)) if error_rate is None else round(requests * error_rate)
    return Samples(requests=requests, errors=failed, latencies_ms=latencies, probes=2, probes_ok=2)


class SimulatedRuntime(Runtime):
    name = "simulated"

    def prepare(self, ctx: Context) -> None:
        fault = ctx.config.get("simulate") or ""
        if fault and fault not in FAULTS:
            raise StepFailed(f"Unknown simulated fault {fault!r}; choose one of {', '.join(sorted(FAULTS))}.")
        ctx.state["prepared"] = True

    def scale(self, ctx: Context, *, replicas: int) -> None:
        ctx.state["new"] = replicas

    def retire_old(self, ctx: Context, *, keep: int) -> None:
        ctx.state["old"] = keep

    def route(self, ctx: Context, *, share: int) -> None:
        ctx.state["share"] = share

    def observe(self, ctx: Context) -> Observation:
        window = f"{ctx.deployment_id}:{ctx.step}"  # each analysis window measures anew
        baseline = _samples(f"{window}:baseline") if ctx.previous_commit_sha else None
        fault = ctx.config.get("simulate")
        canary = _samples(
            f"{window}:canary", slowdown=2.0 if fault == "slow" else 1.0, error_rate=0.2 if fault == "errors" else None
        )
        return Observation(canary=canary, baseline=baseline)

    def finalize(self, ctx: Context) -> None:
        ctx.state["old"] = 0
        ctx.state["share"] = 100

    def rollback(self, ctx: Context) -> None:
        ctx.state["new"] = 0
        ctx.state["share"] = 0

    def stop_all(self, *, service: str, environment: str) -> None:
        return None
