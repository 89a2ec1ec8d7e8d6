"""Health checks of the deployed replicas: real replicas of a stdlib app, deployed by the local runtime under a real
supervisord, found anew by every probe and scrape, whatever ports the last deployment gave them."""

import os
import signal
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from audit.models import AuditEvent
from deployments import runtimes
from deployments import services as deployment_services
from deployments.models import DeployTarget, Environment, State
from deployments.runtimes.local import LocalRuntime
from monitoring import replicas, scrape, series, services, tasks
from monitoring.models import HealthCheck, MetricSample, ProbeResult, ProbeSource
from tests.deployments.support import ScriptedRuntime, drive, release_make, scripted, target_make
from tests.deployments.test_local_runtime import (  # noqa: F401 - fixtures, used by name
    Repo,
    ctx,
    deploy_root,
    deploy_v1,
    repo,
    running,
    runtime,
)

API = "/api/v1/health-checks/"


def _reading(requests: float, errors: float = 0.0, buckets: list | None = None) -> scrape.Reading:
    return scrape.Reading(requests=requests, errors=errors, buckets=buckets or [])


# --- summing replicas' counters -------------------------------------------------------------------------------------


def test_each_replica_is_counted_from_its_own_previous_reading():
    first = scrape.replicas_state(None, {"a": _reading(100, 1), "b": _reading(40)}, at=1000.0)
    assert scrape.replicas_interval(None, {"a": _reading(100)}, at=1000.0) is None  # nothing to compare with yet

    # a served 20 more; b restarted and has served 5 since; c started since the last scrape and has served 7.
    now = {"a": _reading(120, 3), "b": _reading(5), "c": _reading(7, 1, [["0.1", 7], ["+Inf", 7]])}
    interval = scrape.replicas_interval(first, now, at=1060.0)
    assert interval is not None
    assert (interval.seconds, interval.requests, interval.errors) == (60.0, 20 + 5 + 7, 2 + 0 + 1)
    assert interval.buckets == [["0.1", 7], ["+Inf", 7]]


def test_a_replica_that_could_not_be_read_keeps_its_reading_and_one_never_read_is_a_baseline():
    first = scrape.replicas_state(None, {"a": _reading(100), "b": None}, at=1000.0)
    assert first["replicas"] == {"a": {"at": 1000.0, "requests": 100, "errors": 0.0, "buckets": []}, "b": None}

    second_readings = {"a": None, "b": _reading(50)}
    second = scrape.replicas_state(first, second_readings, at=1060.0)
    # b was there but unread before: its 50 may be older than the last scrape, so they are its baseline, not counted.
    interval = scrape.replicas_interval(first, second_readings, at=1060.0)
    assert interval is not None and interval.requests == 0
    assert second["replicas"]["a"]["requests"] == 100  # kept from the last time it was read

    third = scrape.replicas_interval(second, {"a": _reading(130), "b": _reading(60)}, at=1120.0)
    assert third is not None and third.requests == 30 + 10


def test_counters_kept_from_a_single_page_are_not_compared_with_replicas():
    single = _reading(500).state(1000.0)
    assert scrape.replicas_interval(single, {"a": _reading(510)}, at=1060.0) is None


# --- choosing the replicas --------------------------------------------------------------------------------------------


@pytest.fixture
def staging(db) -> Environment:
    return Environment.objects.get_or_create(slug="staging", defaults={"name": "Staging", "order": 1})[0]


def test_a_replicas_check_needs_a_runtime_that_says_where_replicas_run(world, api_client, staging):
    api_client.force_authenticate(world.owner)
    body = {"service": "payments-api", "environment": "staging", "source": "replicas"}

    refused = api_client.post(API, body, format="json")
    assert refused.status_code == 400
    assert "has no deploy target in Staging" in refused.json()["source"][0]

    target = DeployTarget.objects.create(service=world.service, environment=staging, runtime="webhook")
    refused = api_client.post(API, body, format="json")
    assert refused.status_code == 400
    assert "webhook runtime, which does not say where its replicas run" in refused.json()["source"][0]

    target.runtime = "local"
    target.save()
    refused = api_client.post(API, {**body, "url": "http://payments.internal/healthz"}, format="json")
    assert refused.status_code == 400 and "leave url empty" in refused.json()["url"][0]
    refused = api_client.post(API, {**body, "source": "simulated"}, format="json")
    assert refused.status_code == 400 and "made by the demo loader only" in refused.json()["source"][0]
    refused = api_client.post(API, {**body, "source": "http"}, format="json")
    assert refused.status_code == 400 and "Give the URL to probe" in refused.json()["url"][0]

    made = api_client.post(API, body, format="json")
    assert made.status_code == 201, made.json()
    assert (made.json()["source"], made.json()["url"]) == ("replicas", "")
    assert HealthCheck.objects.get().source == ProbeSource.REPLICAS


def test_switching_a_check_to_its_replicas_forgets_the_single_pages_counters(world, staging):
    DeployTarget.objects.create(service=world.service, environment=staging, runtime="local")
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url="http://127.0.0.1:9/healthz"
    )
    check.metrics_state = _reading(500).state(1000.0)
    check.next_run_at = timezone.now() + timedelta(hours=1)
    check.save()
    services.health_check_update(user=world.owner, check=check, source="replicas", url="")
    check.refresh_from_db()
    assert check.metrics_state == {} and check.next_run_at <= timezone.now()


def test_a_check_whose_deploy_target_went_away_fails_saying_why(world, staging):
    target = DeployTarget.objects.create(service=world.service, environment=staging, runtime="local")
    services.health_check_create(user=world.owner, service=world.service, environment=staging, source="replicas")
    target.delete()
    assert tasks.run_due_checks() == 1
    result = ProbeResult.objects.get()
    assert not result.ok
    assert result.error == "payments-api in staging has no deploy target, so there are no replicas to probe"


# --- real replicas ----------------------------------------------------------------------------------------------------


def _get(port: int, times: int) -> None:
    for _ in range(times):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False).status_code == 200


def _probe_now(check: HealthCheck) -> ProbeResult:
    HealthCheck.objects.filter(pk=check.pk).update(next_run_at=timezone.now())
    assert tasks.run_due_checks() == 1
    return ProbeResult.objects.filter(health_check=check).latest("checked_at")


def test_a_check_of_the_replicas_follows_each_deployment_and_sums_their_counters(
    world,
    staging,
    runtime: LocalRuntime,  # noqa: F811 - the imported fixture
    repo: Repo,  # noqa: F811 - the imported fixture
    settings,
):
    settings.MONITORING_PROBE_ALLOW_LOOPBACK = False  # as in production: replicas Runway started are still reached
    slug = world.service.slug
    DeployTarget.objects.create(service=world.service, environment=staging, runtime="local", replicas=2)
    first = deploy_v1(runtime, repo, slug, replicas=2)
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, source="replicas", timeout_ms=1000
    )
    try:
        result = _probe_now(check)
        assert result.ok and result.error == "" and result.latency_ms is not None

        # Metrics: the first scrape is the baseline; the next one counts what both replicas served since.
        assert series.metrics_scrape_due() == 1
        old_ports = sorted(row["port"] for row in running(runtime, slug))
        _get(old_ports[0], 5)
        _get(old_ports[1], 3)
        later = timezone.now() + timedelta(seconds=60)
        assert series.metrics_scrape_due(now=later) == 1
        assert MetricSample.objects.get(health_check=check).requests == 8

        # One replica stops answering: the check fails and names it.
        frozen = next(row for row in running(runtime, slug) if row["port"] == old_ports[1])
        os.kill(frozen["pid"], signal.SIGSTOP)
        try:
            result = _probe_now(check)
        finally:
            os.kill(frozen["pid"], signal.SIGCONT)
        assert not result.ok
        named = f"{frozen['program']} (version 1.0.0, port {old_ports[1]})"
        assert result.error.startswith(f"1 of 2 replicas failed; {named}")
        assert "timed out after 1000 ms" in result.error

        # The next release runs on other ports; the same check probes and scrapes it with nothing changed.
        second = ctx(repo, slug, repo.good2, "2.0.0", previous=(repo.good, "1.0.0"))
        runtime.prepare(second)
        runtime.scale(second, replicas=2)
        runtime.finalize(second)
        new_ports = sorted(row["port"] for row in running(runtime, slug))
        assert len(new_ports) == 2 and not set(new_ports) & set(old_ports)
        assert _probe_now(check).ok

        _get(new_ports[0], 4)  # replicas started since the last scrape: all they counted is new
        assert series.metrics_scrape_due(now=later + timedelta(seconds=60)) == 1
        assert MetricSample.objects.filter(health_check=check).latest("at").requests == 4
        check.refresh_from_db()
        assert set(check.metrics_state["replicas"]) == {row["program"] for row in running(runtime, slug)}
    finally:
        runtime.stop_all(service=slug, environment="staging")
    assert first.service == slug

    # Nothing deployed any more: down, saying so, rather than unknown or green.
    result = _probe_now(check)
    assert not result.ok and result.error == "nothing of payments-api in staging is deployed on this runtime"


# --- watching what a deployment placed --------------------------------------------------------------------------------


@pytest.fixture
def deploy(world, staging, django_capture_on_commit_callbacks):
    """Deploy a release of payments-api to staging on a scripted runtime (listing its replicas or not), committing
    as a worker would, so that what waits for the commit runs while the runtime is still registered."""
    target_make(world.service, staging, runtime="scripted", strategy="rolling", replicas=2)

    def run(version: str, *, listing: bool = True, script: tuple[str, ...] = ()):
        with scripted() as scripted_runtime, django_capture_on_commit_callbacks(execute=True):
            scripted_runtime.lists_replicas = listing
            scripted_runtime.script.extend(script)
            release = release_make(world.service, version)
            return drive(
                deployment_services.deployment_request(
                    service=world.service, environment=staging, user=world.owner, release=release
                )
            )

    return run


def test_a_first_successful_deployment_is_watched_from_then_on(world, staging, deploy):
    failed = deploy("0.9.0", script=("bad",))
    assert failed.state == State.ROLLED_BACK and not HealthCheck.objects.exists()  # nothing runs to watch

    first = deploy("1.0.0")
    assert first.state == State.SUCCEEDED
    check = HealthCheck.objects.get()
    assert (check.environment, check.source, check.url) == (staging, ProbeSource.REPLICAS, "")
    note = first.events.order_by("at", "pk").last()
    assert note.message.startswith("Runway watches Payments API in Staging from now on: a health check of every")
    event = AuditEvent.objects.get(action="health_check.created")
    assert event.actor is None and event.actor_repr == "runway" and event.after["source"] == "replicas"

    check.timeout_ms = 1234
    check.save()
    second = deploy("1.1.0")
    assert second.state == State.SUCCEEDED
    assert HealthCheck.objects.get().timeout_ms == 1234  # an existing check is the owners': left as it is
    assert not second.events.filter(message__startswith="Runway watches").exists()


def test_nothing_is_added_where_the_runtime_cannot_say_where_replicas_run_or_when_turned_off(deploy, settings):
    assert deploy("1.0.0", listing=False).state == State.SUCCEEDED
    settings.MONITORING_WATCH_DEPLOYMENTS = False
    assert deploy("1.1.0").state == State.SUCCEEDED
    assert not HealthCheck.objects.exists()


def test_a_failure_to_watch_never_undoes_the_deployment(deploy, monkeypatch):
    def broken(**_):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "deployment_watch", broken)
    assert deploy("1.0.0").state == State.SUCCEEDED and not HealthCheck.objects.exists()


class _Listed(ScriptedRuntime):
    """A runtime that says where the replicas run: rows a test sets, pointing at real HTTP servers."""

    lists_replicas = True

    def __init__(self, rows: list[dict]) -> None:
        super().__init__()
        self.rows = rows

    def endpoints(self, service: str, environment: str) -> list[dict]:
        return self.rows


@pytest.mark.parametrize(
    ("states", "ok", "error"),
    [
        (["RUNNING", "STARTING"], True, ""),  # a deployment's new replica, not serving yet: not judged
        (["STARTING", "STARTING"], False, "2 of 2 replicas failed; a (version 1.0.0, port 1): is starting"),
        (["RUNNING", "BACKOFF"], False, "1 of 2 replicas failed; b (version 1.0.0, port 2): is backoff"),
        (["FATAL", "RUNNING"], False, "1 of 2 replicas failed; a (version 1.0.0, port 1): is fatal"),
    ],
)
def test_a_replica_that_should_run_but_does_not_fails_the_check(target, states, ok, error):
    rows = [
        {"program": name, "version": "1.0.0", "port": port, "state": state, "health_url": target.url("/ok")}
        for name, port, state in zip("ab", (1, 2), states, strict=True)
    ]
    runtimes.REGISTRY["listed"] = lambda: _Listed(rows)
    try:
        check = HealthCheck(source=ProbeSource.REPLICAS, timeout_ms=2000)
        outcome = replicas.probe_all(check, replicas.Place(service="s", environment="e", runtime="listed"))
    finally:
        runtimes.REGISTRY.pop("listed")
    assert (outcome.ok, outcome.error) == (ok, error)
