"""Runway's own /metrics: who may read it, the request histogram kept across processes, and figures read from rows."""

import json
import re

import pytest
import redis
from django.core.cache import cache
from django.test import RequestFactory
from prometheus_client.parser import text_string_to_metric_families

from deployments import machine
from deployments.models import Deployment, Environment, State
from portal.metrics import ROWS_CACHE_KEY, RequestMetricsMiddleware
from tests.deployments.support import release_make

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.5"  # TEST-NET-3: never in the default allow-list


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(client, **extra) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return _samples(response.content.decode())


def test_refused_from_an_address_outside_the_allowed_networks_without_the_token(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "s3cret-token"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "s3cret-token"}):
        response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, **headers)
        assert response.status_code == 403, headers
        assert b"METRICS_TOKEN" in response.content
    # A forwarded-for header claiming loopback is the client's word, not its address.
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_no_token_set_means_networks_only(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_answers_with_the_token_from_anywhere(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "s3cret-token"
    _scrape(client, REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer s3cret-token")


def test_the_request_histogram_counts_a_request_under_its_view_name(client) -> None:  # type: ignore[no-untyped-def]
    key = ("runway_http_request_duration_seconds_count", (("method", "GET"), ("view", "healthz")))
    before = _scrape(client).get(key, 0.0)
    assert client.get("/healthz").status_code == 200
    assert client.get("/catalog/no-such-service-anywhere/").status_code in (302, 404)
    after = _scrape(client)
    assert after[key] == before + 1
    # Read back from the multiprocess files, as a scrape answered by another gunicorn worker would read them.
    every = ("runway_http_request_duration_seconds_bucket", (("le", "+Inf"), ("method", "GET"), ("view", "healthz")))
    assert after[every] == after[key]
    assert not any("no-such-service" in str(labels) for _, labels in after)


def test_the_middleware_adds_no_queries(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    from django.http import HttpResponse

    middleware = RequestMetricsMiddleware(lambda request: HttpResponse("ok"))
    with django_assert_num_queries(0):
        assert middleware(RequestFactory().get("/anything")).status_code == 200


def test_deployment_figures_follow_the_rows(client, world, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_ROWS_CACHE_SECONDS = 0
    # One active deployment per service and environment: three environments.
    places = [Environment.objects.create(name=f"Env {n}", slug=f"env-{n}", order=n) for n in range(3)]
    made = [
        Deployment.objects.create(
            release=release_make(world.service, version=f"1.0.{n}"),
            service=world.service,
            environment=places[n],
            strategy=strategy,
            runtime="simulated",
            plan=[{"action": "shift", "share": 100}],
        )
        for n, strategy in enumerate(["canary", "canary", "rolling"])
    ]
    machine.transition(made[0], State.POLICY_CHECK, message="checking")
    machine.transition(made[0], State.CANCELLED, message="stopped")
    samples = _scrape(client)
    assert samples[("runway_deployments", (("state", "pending"), ("strategy", "canary")))] == 1
    assert samples[("runway_deployments", (("state", "cancelled"), ("strategy", "canary")))] == 1
    assert samples[("runway_deployments", (("state", "pending"), ("strategy", "rolling")))] == 1
    assert samples[("runway_deployment_rollbacks_total", (("outcome", "rolled_back"),))] == 0
    # Each state left counts one step; the state being lived in now (cancelled, pending) is not a step yet.
    assert samples[("runway_deployment_step_duration_seconds_count", (("step", "pending"),))] == 1
    assert samples[("runway_deployment_step_duration_seconds_count", (("step", "policy_check"),))] == 1
    assert ("runway_deployment_step_duration_seconds_count", (("step", "cancelled"),)) not in samples
    assert samples[("runway_deployment_duration_seconds_count", ())] == 1
    assert samples[("runway_scaffold_duration_seconds_count", ())] == 0
    assert samples[("runway_catalog_import_duration_seconds_count", ())] == 0

    Deployment.objects.filter(pk=made[1].pk).update(state=State.ROLLED_BACK)
    samples = _scrape(client)
    assert samples[("runway_deployment_rollbacks_total", (("outcome", "rolled_back"),))] == 1
    assert ("runway_deployments", (("state", "pending"), ("strategy", "canary"))) not in samples


def test_queue_depth_is_read_from_redis(client, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.REDIS_URL, "queue depth is about Celery's Redis broker: set REDIS_URL"
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    settings.CELERY_TASK_DEFAULT_QUEUE = "runway-metrics-test"  # a queue no worker listens on
    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    broker = redis.Redis.from_url(settings.REDIS_URL)
    keys = [f"{prefix}runway-metrics-test", f"{prefix}runway-metrics-test\x06\x163"]
    broker.delete(*keys)
    try:
        broker.lpush(keys[0], "a", "b")
        broker.lpush(keys[1], "c")
        samples = _scrape(client)
        assert samples[("runway_celery_queue_depth", (("queue", "runway-metrics-test"),))] == 3
    finally:
        broker.delete(*keys)


def test_no_queue_figure_on_the_filesystem_broker(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CELERY_BROKER_URL = "filesystem://"
    assert not any(name == "runway_celery_queue_depth" for name, _ in _scrape(client))


def test_the_grafana_dashboard_reads_only_metrics_the_portal_exports(client, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.REDIS_URL, "the queue panel reads Celery's Redis broker: set REDIS_URL"
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    dashboard = json.loads((settings.BASE_DIR / "docs" / "grafana-runway.json").read_text())
    client.get("/healthz")
    response = client.get("/metrics")
    # Families, not samples: a labelled family with no rows yet has no samples but is still exported.
    exported = {family.name for family in text_string_to_metric_families(response.content.decode())}
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"runway_[a-z_]+", target["expr"])
    }
    assert len(dashboard["panels"]) >= 8
    assert used and used <= exported, used - exported


def test_figures_from_rows_are_read_once_per_cache_interval(client, world, settings, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_ROWS_CACHE_SECONDS = 30
    key = ("runway_deployments", (("state", "pending"), ("strategy", "canary")))
    assert key not in _scrape(client)
    release = release_make(world.service)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    Deployment.objects.create(
        release=release, service=world.service, environment=staging, strategy="canary", runtime="simulated", plan=[]
    )
    with django_assert_num_queries(0):  # served from the shared cache: no deployment, event or run query
        assert key not in _scrape(client)
    cache.delete(ROWS_CACHE_KEY)  # the interval ends
    assert _scrape(client)[key] == 1
