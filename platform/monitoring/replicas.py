"""Health checks that follow a deployment: each probe and scrape asks the environment's deploy runtime where the
service's replicas run now, and reaches every one of them.

A check with a URL watches one address. The local runtime gives every release new ports, so such a check goes
down with the next deployment, and through a load balancer it would read one replica's counters at a time. A check
of the deployed replicas (`source="replicas"`) passes only when every replica that should run answers its health
path as expected; its metrics are the replicas' counters summed, each replica's increase taken from its own previous
reading (so a restart of one is not read as a reset of all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery

from deployments import runtimes
from deployments.models import DeployTarget
from monitoring import probe, scrape
from monitoring.models import HealthCheck, ProbeSource

T = TypeVar("T")
MAX_REPLICAS = 32  # a deploy target runs at most 10, and twice that while a release replaces another


class Unreachable(Exception):
    """Runway cannot say where the replicas run; the message says why and what to do."""


@dataclass(frozen=True)
class Place:
    """Where a check's replicas are deployed: its service and environment slugs and that deploy target's runtime."""

    service: str
    environment: str
    runtime: str | None  # None: the service has no deploy target in that environment

    def endpoints(self) -> list[dict[str, Any]]:
        """The replicas that should run there (runtime.endpoints); Unreachable when nothing can be reached."""
        where = f"{self.service} in {self.environment}"
        if self.runtime is None:
            raise Unreachable(f"{where} has no deploy target, so there are no replicas to probe")
        runtime = runtimes.get(self.runtime)
        rows = runtime.endpoints(self.service, self.environment) if runtime.lists_replicas else None
        if rows is None:
            raise Unreachable(f"the {self.runtime} runtime does not say where {where} runs: give the check a URL")
        if not rows:
            raise Unreachable(f"nothing of {where} is deployed on this runtime")
        return rows[:MAX_REPLICAS]


def listing_runtimes() -> list[str]:
    """The runtimes whose replicas a check can follow (those that say where their replicas run)."""
    return [name for name in runtimes.REGISTRY if runtimes.get(name).lists_replicas]


def places(checks: Iterable[HealthCheck]) -> dict[int, Place]:
    """The place of each replicas check among `checks`, in one query."""
    ids = [check.pk for check in checks if check.source == ProbeSource.REPLICAS]
    if not ids:
        return {}
    runtime = DeployTarget.objects.filter(
        service_id=OuterRef("service_id"), environment_id=OuterRef("environment_id")
    ).values("runtime")[:1]
    rows = (
        HealthCheck.objects.filter(pk__in=ids)
        .annotate(runtime=Subquery(runtime))
        .values_list("pk", "service__slug", "environment__slug", "runtime")
    )
    return {pk: Place(service=slug, environment=environment, runtime=kind) for pk, slug, environment, kind in rows}


def place_of(service: Any, environment: Any, *, instead: str) -> Place:
    """Where `service`'s replicas run in `environment`, for something that would follow them (a health check, a
    flag's rollout); a ValidationError saying what to do `instead` when no runtime says where they run."""
    target = DeployTarget.objects.filter(service=service, environment=environment).first()
    if target is None:
        raise ValidationError(f"{service} has no deploy target in {environment}: add one, or {instead}.")
    if not runtimes.get(target.runtime).lists_replicas:
        raise ValidationError(
            f"{service} deploys to {environment} with the {target.runtime} runtime, which does not say where its "
            f"replicas run: {instead}."
        )
    return Place(service=service.slug, environment=environment.slug, runtime=target.runtime)


def place_validate(check: HealthCheck) -> None:
    """A replicas check needs a deploy target there whose runtime lists its replicas; it has no URL of its own."""
    if check.url:
        why = "A check of the deployed replicas probes each replica at its release's health path: leave url empty."
        raise ValidationError({"url": why})
    try:
        place_of(check.service, check.environment, instead="give the check a URL instead")
    except ValidationError as error:
        raise ValidationError({"source": error.messages}) from None


def _name(row: dict[str, Any]) -> str:
    return f"{row['program']} (version {row['version']}, port {row['port']})"


def probe_all(check: HealthCheck, place: Place) -> probe.Outcome:
    """Probe every replica at once; the check passes only if each one that should run answers as expected. The
    latency is the slowest replica's; a failure names the first replica that failed and says how many did. A replica
    still starting (a deployment's new one) is not judged yet, unless no other is there to judge."""
    try:
        rows = place.endpoints()
    except Unreachable as error:
        return probe.Outcome(ok=False, status_code=None, latency_ms=None, error=str(error)[:300])
    rows = [row for row in rows if row["state"] != "STARTING"] or rows

    def one(row: dict[str, Any]) -> probe.Outcome:
        if row["state"] != "RUNNING":
            return probe.Outcome(ok=False, status_code=None, latency_ms=None, error=f"is {row['state'].lower()}")
        return probe.probe(
            url=row["health_url"],
            timeout_ms=check.timeout_ms,
            expected_status=check.expected_status,
            body_match=check.body_match,
            own=True,
        )

    with ThreadPoolExecutor(max_workers=len(rows)) as pool:
        outcomes = list(pool.map(one, rows))
    latencies = [o.latency_ms for o in outcomes if o.latency_ms is not None]
    latency = max(latencies) if latencies else None
    failed = [(row, outcome) for row, outcome in zip(rows, outcomes, strict=True) if not outcome.ok]
    if not failed:
        return probe.Outcome(ok=True, status_code=outcomes[0].status_code, latency_ms=latency, error="")
    row, first = failed[0]
    why = f"{len(failed)} of {len(rows)} replicas failed; {_name(row)}: {first.error}"
    return probe.Outcome(ok=False, status_code=first.status_code, latency_ms=latency, error=why[:300])


def pages(
    place: Place,
    parse: Callable[[str], T],
    *,
    timeout_ms: int,
    max_bytes: int = probe.MAX_METRICS_BYTES,
    failures: tuple[type[Exception], ...] = (ValueError,),
) -> list[tuple[dict[str, Any], T | None, str]]:
    """Every running replica's metrics page (at its release's own path), fetched at once and given to `parse`:
    (row, what `parse` made, "") or (row, None, why it could not be fetched or parsed, a `failures` exception).
    Unreachable when no runtime says where the replicas run, or none of them is running."""
    rows = [row for row in place.endpoints() if row["state"] == "RUNNING"]
    if not rows:
        raise Unreachable(f"no replica of {place.service} in {place.environment} is running")

    def one(row: dict[str, Any]) -> tuple[dict[str, Any], T | None, str]:
        try:
            text = probe.fetch_text(url=row["metrics_url"], timeout_ms=timeout_ms, max_bytes=max_bytes, own=True)
            return row, parse(text), ""
        except probe.FetchFailed as error:
            return row, None, str(error)
        except failures as error:
            return row, None, str(error)

    with ThreadPoolExecutor(max_workers=len(rows)) as pool:
        return list(pool.map(one, rows))


def read_all(check: HealthCheck, place: Place, *, max_bytes: int) -> tuple[dict[str, scrape.Reading | None], str]:
    """The counters of every running replica by program (None for one that could not be read), and what kept any
    replica from being read ("" if nothing did)."""
    try:
        found = pages(place, scrape.reading_parse, timeout_ms=min(check.timeout_ms, 10_000), max_bytes=max_bytes)
    except Unreachable as error:
        return {}, str(error)
    errors = [f"{_name(row)}: {error}" for row, _, error in found if error]
    readings = {row["program"]: reading for row, reading, _ in found}
    return readings, (f"{len(errors)} of {len(found)} replicas unread; {errors[0]}" if errors else "")
