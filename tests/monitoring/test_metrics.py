"""Scraped metrics: a real HTTP server exposing prometheus_client's /metrics, scraped in batches into stored series
(increases between scrapes, restarts, failures kept per check), hourly rollups, the detector over the stored series
with anomalies linked to the deployment before them, and the service page's charts."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, Environment, State
from monitoring import anomaly, scrape, selectors, series, services, tasks
from monitoring.models import Anomaly, DetectorState, HealthCheck, Metric, MetricRollup, MetricSample
from tests.deployments.support import release_make

pytestmark = [pytest.mark.django_db]

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0)


class App:
    """What a golden-path service exposes: http_requests_total by status and a request-duration histogram, in the
    text format. Written out here rather than with prometheus_client's classes: in the test process those run in the
    portal's multiprocess mode, where a "new" registry would share its values with the old one (no restart)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.requests: dict[str, int] = {}
        self.observations: list[float] = []

    def serve(self, count: int, *, status: str = "200", seconds: float = 0.02) -> None:
        self.requests[status] = self.requests.get(status, 0) + count
        self.observations += [seconds] * count

    def exposition(self) -> bytes:
        lines = ["# HELP http_requests_total Requests.", "# TYPE http_requests_total counter"]
        lines += [f'http_requests_total{{method="GET",status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
        lines += ["# HELP http_request_duration_seconds Time.", "# TYPE http_request_duration_seconds histogram"]
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            within = sum(1 for o in self.observations if bound == "+Inf" or o <= bound)  # type: ignore[operator]
            lines.append(f'http_request_duration_seconds_bucket{{method="GET",le="{bound}"}} {within}')
        lines.append(f'http_request_duration_seconds_count{{method="GET"}} {len(self.observations)}')
        lines.append(f'http_request_duration_seconds_sum{{method="GET"}} {sum(self.observations)}')
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def app_server() -> Iterator[tuple[App, int]]:
    app = App()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            status, body = 404, b"no such page"
            if self.path == "/metrics":
                status, body = 200, app.exposition()
            elif self.path == "/healthz":
                status, body = 200, b'{"status": "ok"}'
            elif self.path == "/not-metrics":
                status, body = 200, b"<html>hello</html>\n{{{"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, server.server_address[1]
    server.shutdown()
    server.server_close()


def _environment(slug: str = "production", order: int = 2) -> Environment:
    return Environment.objects.get_or_create(slug=slug, defaults={"name": slug.capitalize(), "order": order})[0]


# --- reading an exposition --------------------------------------------------------------------------------------------


def test_percentiles_are_promql_histogram_quantiles():
    # 100 observations: 50 up to 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
    buckets = [["0.1", 50], ["0.5", 90], ["1.0", 100], ["+Inf", 100]]
    assert scrape.quantile(0.5, buckets) == pytest.approx(0.1)
    assert scrape.quantile(0.95, buckets) == pytest.approx(0.75)
    assert scrape.quantile(0.99, buckets) == pytest.approx(0.95)
    assert scrape.quantile(0.99, [["0.1", 0], ["+Inf", 10]]) == 0.1  # in the +Inf bucket: the highest finite bound
    assert scrape.quantile(0.5, [["0.1", 0], ["+Inf", 0]]) is None


def test_latencies_from_buckets_have_the_histograms_percentiles():
    """One latency per request, spread within its bucket: their percentiles are histogram_quantile's (to within a
    spread step), a request past the last bound gets that bound, and a large count is scaled down alike."""
    import numpy

    buckets = [["0.1", 50], ["0.5", 90], ["1.0", 100], ["+Inf", 104]]
    values = scrape.latencies_ms(buckets)
    assert len(values) == 104 and values == sorted(values)
    assert values[-4:] == [1000.0] * 4  # the +Inf bucket: the highest finite bound
    for q, step in ((0.5, 400 / 40), (0.9, 500 / 10)):  # the bucket's width over its count, in ms
        assert float(numpy.percentile(values, q * 100)) == pytest.approx(scrape.quantile(q, buckets) * 1000, abs=step)
    scaled = scrape.latencies_ms([["0.05", 300_000], ["0.25", 1_000_000], ["+Inf", 1_000_000]], limit=10_000)
    assert len(scaled) == 10_000 and sum(value <= 50 for value in scaled) == 3_000
    assert scrape.latencies_ms([]) == [] and scrape.latencies_ms([["0.1", 0], ["+Inf", 0]]) == []


def test_bucket_increases_count_a_restart_whole_and_refuse_changed_bounds():
    before = [["0.1", 5], ["+Inf", 8]]
    assert scrape.buckets_increase(before, [["0.1", 7], ["+Inf", 12]]) == [["0.1", 2], ["+Inf", 4]]
    assert scrape.buckets_increase(before, [["0.1", 1], ["+Inf", 2]]) == [["0.1", 1], ["+Inf", 2]]  # went down
    assert scrape.buckets_increase(before, [["0.1", 9], ["+Inf", 9]], restarted=True) == [["0.1", 9], ["+Inf", 9]]
    assert scrape.buckets_increase(before, [["0.2", 9], ["+Inf", 9]]) == []
    assert scrape.buckets_increase([], [["0.1", 9], ["+Inf", 9]]) == []


def test_an_exposition_without_request_counts_is_not_read():
    with pytest.raises(scrape.NoMetrics, match="exposes no http_requests_total"):
        scrape.reading_parse("# TYPE up gauge\nup 1\n")
    with pytest.raises(scrape.NoMetrics, match="not a Prometheus exposition"):
        scrape.reading_parse("<html>{{{")


# --- the scheduled scrape ---------------------------------------------------------------------------------------------


def test_scrapes_store_what_happened_between_them_in_batches(world, app_server, django_assert_max_num_queries):
    app, port = app_server
    production, staging = _environment(), _environment("staging", 1)
    check = HealthCheck.objects.create(
        service=world.service, environment=production, url=f"http://127.0.0.1:{port}/healthz"
    )
    missing = HealthCheck.objects.create(
        service=world.service, environment=staging, url=f"http://127.0.0.1:{port}/healthz", metrics_path="/nothing"
    )
    app.serve(500)  # before Runway first looks: the baseline, not counted

    # The claim (a select and an update), then one select, one insert and one update for the whole batch (and, in a
    # test, the savepoints of the two transactions).
    with django_assert_max_num_queries(9):
        assert series.metrics_scrape_due() == 1
    assert not MetricSample.objects.exists()
    missing.refresh_from_db()
    assert missing.metrics_error == f"http://127.0.0.1:{port}/nothing: answered 404, expected 200"
    assert series.metrics_scrape_due() == 0  # nothing due again within the interval

    app.serve(110, seconds=0.02)
    app.serve(10, status="503", seconds=0.4)
    later = timezone.now() + timedelta(seconds=60)
    assert series.metrics_scrape_due(now=later) == 1
    sample = MetricSample.objects.get(health_check=check)
    assert (sample.requests, sample.errors) == (120, 10)
    # 110 within 50 ms (all at 20 ms: the 0.01-0.05 bucket), 10 in (0.1, 0.5]: p50 inside the first, p99 in the last.
    assert sample.p50_ms == pytest.approx(10 + 40 * (60 - 0) / 110, rel=1e-4)
    assert sample.p99_ms == pytest.approx(100 + 400 * (118.8 - 110) / 10, rel=1e-4)
    assert sample.buckets[-1] == ["+Inf", 120]

    app.restart()  # the service restarted: its counters start again from zero
    app.serve(30)
    assert series.metrics_scrape_due(now=later + timedelta(seconds=60)) == 1
    latest = MetricSample.objects.filter(health_check=check).latest("at")
    assert (latest.requests, latest.errors) == (30, 0)


def test_a_page_that_is_not_an_exposition_is_an_error_on_its_check(world, app_server):
    _app, port = app_server
    check = HealthCheck.objects.create(
        service=world.service,
        environment=_environment(),
        url=f"http://127.0.0.1:{port}/healthz",
        metrics_path="/not-metrics",
    )
    series.metrics_scrape_due()
    check.refresh_from_db()
    assert "not a Prometheus exposition" in check.metrics_error and check.metrics_state == {}


def test_a_metrics_path_is_checked_like_the_probe_url(world, api_client, settings):
    settings.ALLOWED_HOSTS = ["runway.example", "testserver"]
    api_client.force_authenticate(world.owner)
    _environment()
    body = {"service": "payments-api", "environment": "production", "url": "http://runway.example/healthz"}
    refused = api_client.post("/api/v1/health-checks/", {**body, "metrics_path": "/admin/metrics"}, format="json")
    assert refused.status_code == 400 and "metrics_path" in refused.json()
    refused = api_client.post("/api/v1/health-checks/", {**body, "metrics_path": "metrics"}, format="json")
    assert refused.status_code == 400 and "metrics_path" in refused.json()
    made = api_client.post("/api/v1/health-checks/", {**body, "metrics_path": ""}, format="json")
    assert made.status_code == 201 and made.json()["metrics_path"] == ""


# --- rollups, series and anomalies ------------------------------------------------------------------------------------


def _samples(check: HealthCheck, *, now: datetime, days: int, latency_at) -> None:
    """One sample a minute for `days`: 600 requests, 0.5 % errors, all in one latency bucket chosen by minutes ago."""
    rows = []
    for minutes_ago in range(days * 24 * 60):
        ms = latency_at(minutes_ago)
        buckets = [[str(le), 600 if le * 1000 >= ms else 0] for le in LATENCY_BUCKETS] + [["+Inf", 600]]
        rows.append(
            MetricSample(
                health_check=check,
                at=now - timedelta(minutes=minutes_ago),
                seconds=60,
                requests=600 + (minutes_ago * 7919) % 40,
                errors=3,
                buckets=buckets,
                p95_ms=ms * (1 + (minutes_ago * 104729) % 7 / 100),
            )
        )
    MetricSample.objects.bulk_create(rows, batch_size=5000)


def test_rollups_keep_exact_percentiles_and_the_chart_reads_rollups_then_raw(world):
    check = HealthCheck.objects.create(service=world.service, environment=_environment(), url="http://a.test/")
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    _samples(check, now=now, days=1, latency_at=lambda m: 40 if m < 120 else 8)
    assert series.metrics_rollup(now=now, hours=24) == 24
    rollup = MetricRollup.objects.get(health_check=check, hour=now.replace(minute=0) - timedelta(hours=1))
    assert rollup.requests == sum(600 + (m * 7919) % 40 for m in range(31, 91)) and rollup.seconds == 3600
    hours = selectors.metrics_by_hour([check], since=now - timedelta(days=1), now=now)[check.pk]
    assert hours[-1].hour == now.replace(minute=0)  # this hour: from raw samples, not rolled up yet
    assert hours[-1].requests == sum(600 + (m * 7919) % 40 for m in range(0, 31))
    assert hours[-1].latency_ms(0.95) == pytest.approx(10 + 40 * 0.95)  # all in the (10, 50] ms bucket
    assert hours[0].latency_ms(0.5) == pytest.approx(5)  # all within 10 ms: half of the way to 10


def test_a_latency_jump_is_found_in_the_stored_series_and_linked_to_the_deployment_before_it(world, client):
    production, staging = _environment(), _environment("staging", 1)
    check = HealthCheck.objects.create(service=world.service, environment=production, url="http://a.test/")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    now = now.replace(minute=now.minute // 10 * 10)
    # Latency steady around 8 ms for a week, then 40 ms from 3 hours ago, 12 minutes after a production deployment.
    _samples(check, now=now, days=7, latency_at=lambda m: 40 if m < 180 else 8)
    jump = now - timedelta(minutes=180)
    deployed = Deployment.objects.create(
        release=release_make(world.service, "3.1.0"),
        service=world.service,
        environment=production,
        strategy="rolling",
        runtime="simulated",
    )
    Deployment.objects.filter(pk=deployed.pk).update(state=State.SUCCEEDED, started_at=jump - timedelta(minutes=12))
    elsewhere = Deployment.objects.create(
        release=release_make(world.service, "3.2.0"),
        service=world.service,
        environment=staging,
        strategy="rolling",
        runtime="simulated",
    )
    Deployment.objects.filter(pk=elsewhere.pk).update(started_at=jump - timedelta(minutes=5))

    found = series.metrics_anomalies_detect(check=check, now=now)
    latency = [a for a in found if a.metric == Metric.LATENCY_P95]
    assert len(latency) == 1 and abs(latency[0].started_at - jump) <= timedelta(minutes=10)
    assert latency[0].deployment_id == deployed.pk  # the staging deployment was later, but elsewhere
    assert not [a for a in found if a.metric == Metric.REQUEST_RATE]
    assert series.metrics_anomalies_detect(check=check, now=now) == []  # idempotent
    assert Anomaly.objects.filter(health_check=check).count() == len(found)

    series.metrics_rollup(now=now, hours=24 * 7)
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert 'id="metrics-heading"' in page and "Latency in Production" in page and "Error rate in Production" in page
    assert f"Deployment #{deployed.pk} of payments-api 3.1.0" in page
    assert page.count('class="anomaly-mark"') >= 1
    minutes = int((latency[0].started_at - (jump - timedelta(minutes=12))).total_seconds() // 60)
    assert f"started {minutes} minutes after deployment #{deployed.pk} of payments-api" in page


def test_a_kept_detector_is_fed_only_new_buckets_and_ends_as_one_fed_continuously(world, django_assert_max_num_queries):
    check = HealthCheck.objects.create(service=world.service, environment=_environment(), url="http://a.test/")
    quiet = HealthCheck.objects.create(
        service=world.service, environment=_environment("staging", 1), url="http://b.test/"
    )
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    now = now.replace(minute=now.minute // 10 * 10)
    _samples(check, now=now, days=7, latency_at=lambda m: 40 if m < 180 else 8)
    _samples(quiet, now=now, days=7, latency_at=lambda m: 8)
    before = now - timedelta(hours=4, minutes=3)  # mid-bucket: the bucket under way is left for the next run

    assert series.metrics_anomalies_detect_many(checks=[check, quiet], now=before) == []  # replays the week
    kept = DetectorState.objects.get(health_check=check)
    assert kept.fed_until == before.replace(minute=before.minute // 10 * 10)

    # The next runs read every state in one query and write them back in one; the jump is found on resuming.
    found = []
    for later in (now - timedelta(hours=2), now):
        with django_assert_max_num_queries(8):  # states, 2 × points, anomalies known, deployment, insert, write
            found += series.metrics_anomalies_detect_many(checks=[check, quiet], now=later)
    assert [a.metric for a in found] == [Metric.LATENCY_P95]
    assert abs(found[0].started_at - (now - timedelta(minutes=180))) <= timedelta(minutes=10)

    config = anomaly.DetectorConfig.for_step(series.BUCKET.total_seconds())
    continuous = anomaly.ServiceDetector(list(series.DETECTED), config)
    since = before - timedelta(days=7)
    alerts = [
        (at, name)
        for at, values in series.metric_points(check, since=since, now=now)
        for name, _ in continuous.update(at.timestamp(), values)
    ]
    assert [(at, name) for at, name in alerts if at >= kept.fed_until] == [(found[0].started_at, "latency_p95")]
    kept.refresh_from_db()
    assert kept.fed_until == now and bytes(kept.state) == continuous.state()
    assert series.metrics_anomalies_detect_many(checks=[check, quiet], now=now) == []  # nothing new to feed


def test_the_scheduled_run_keeps_a_state_for_each_recently_scraped_check(world, monkeypatch):
    checks = [
        HealthCheck.objects.create(service=world.service, environment=_environment(slug, order), url="http://a.test/")
        for slug, order in (("production", 2), ("staging", 1), ("qa", 0))
    ]
    now = timezone.now()
    for check in checks[:2]:
        _samples(check, now=now, days=1, latency_at=lambda m: 8)
    monkeypatch.setattr(tasks, "DETECT_BATCH", 1)  # a batch per check: each keeps its own state
    tasks.detect_anomalies_task()
    kept = dict(DetectorState.objects.values_list("health_check_id", "fed_until"))
    assert set(kept) == {checks[0].pk, checks[1].pk}  # the third was never scraped
    assert all(now - series.BUCKET <= fed <= now for fed in kept.values())


def test_an_unreadable_or_outdated_state_is_replaced_by_a_replay_of_the_week(world):
    check = HealthCheck.objects.create(service=world.service, environment=_environment(), url="http://a.test/")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    now = now.replace(minute=now.minute // 10 * 10)
    _samples(check, now=now, days=7, latency_at=lambda m: 40 if m < 180 else 8)
    series.metrics_anomalies_detect(check=check, now=now - timedelta(hours=5))
    kept = DetectorState.objects.get(health_check=check)
    good = bytes(kept.state)
    outdated = good[:4] + (anomaly.STATE_VERSION + 1).to_bytes(4, "little") + good[8:]
    for stored in (b"garbage", good[:-100], outdated):
        Anomaly.objects.filter(health_check=check).delete()
        DetectorState.objects.filter(pk=kept.pk).update(state=stored)
        found = series.metrics_anomalies_detect(check=check, now=now)
        assert [a.metric for a in found] == [Metric.LATENCY_P95]  # the replay still finds the jump
        replayed = anomaly.ServiceDetector(list(series.DETECTED), anomaly.DetectorConfig.for_step(600))
        for at, values in series.metric_points(check, since=now - timedelta(days=7), now=now):
            replayed.update(at.timestamp(), values)
        kept.refresh_from_db()
        assert bytes(kept.state) == replayed.state() and kept.fed_until == now


def test_simulated_checks_report_made_up_metrics_labelled_as_such(world, client):
    from monitoring.models import ProbeSource

    check = HealthCheck.objects.create(
        service=world.service, environment=_environment(), url="http://sim.test/", source=ProbeSource.SIMULATED
    )
    series.metrics_scrape_due()
    check.refresh_from_db()
    HealthCheck.objects.filter(pk=check.pk).update(metrics_state={**check.metrics_state, "at": time.time() - 60})
    series.metrics_scrape_due(now=timezone.now() + timedelta(seconds=61))
    sample = MetricSample.objects.get(health_check=check)
    assert sample.requests > 0 and sample.p95_ms is not None and sample.errors < sample.requests
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert "Request rate in Production" in page and '<span class="badge">simulated</span>' in page


def test_the_charts_cost_five_queries_whatever_the_environments(world, django_assert_max_num_queries):
    from monitoring.templatetags.monitoring import metric_charts

    now = timezone.now()
    for n in range(3):
        check = HealthCheck.objects.create(
            service=world.service, environment=_environment(f"env-{n}", n), url="http://a.test/"
        )
        _samples(check, now=now, days=1, latency_at=lambda m: 8)
        series.metrics_rollup(now=now, hours=6)
    with django_assert_max_num_queries(6):  # checks, rollups, raw samples, dependencies, deployments, anomalies
        sections = metric_charts(world.service)
    assert [len(section["charts"]) for section in sections] == [3, 3, 3]
    assert all(not section["empty"] for section in sections)


def test_the_health_check_service_keeps_the_metrics_path(world):
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=_environment(), url="http://a.test:8080/healthz"
    )
    assert check.metrics_url == "http://a.test:8080/metrics"
    services.health_check_update(user=world.owner, check=check, metrics_path="/internal/metrics")
    assert HealthCheck.objects.get().metrics_url == "http://a.test:8080/internal/metrics"


def test_an_anomaly_in_a_dependency_metrics_joins_the_correlated_signal(world):
    from catalog.models import Dependency
    from tests.factories import service_make

    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    Dependency.objects.create(source=world.service, target=ledger)
    production = _environment()
    now = timezone.now()
    for service in (world.service, ledger):
        check = HealthCheck.objects.create(service=service, environment=production, url=f"http://{service.slug}.test/")
        Anomaly.objects.create(
            health_check=check,
            metric=Metric.ERROR_RATE,
            started_at=now - timedelta(minutes=15),
            value=0.2,
            reason="extreme",
            low=0,
            high=0.01,
        )
    signal = selectors.correlated_signal(world.service, now=now)
    assert signal is not None and signal.origin == ledger
    assert [s.slug for s in signal.members] == ["ledger", "payments-api"]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_scheduled_scrape_and_the_rollup(world, app_server, settings):
    import time as clock

    from celery.contrib.testing.worker import start_worker

    from monitoring import tasks
    from portal.celery import app as celery_app

    assert settings.CELERY_BEAT_SCHEDULE["monitoring-scrape-metrics"]["task"] == tasks.scrape_metrics_task.name
    settings.MONITORING_SCRAPE_INTERVAL_SECONDS = 1
    service_app, port = app_server
    check = HealthCheck.objects.create(
        service=world.service, environment=_environment(), url=f"http://127.0.0.1:{port}/healthz"
    )
    service_app.serve(10)
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        tasks.scrape_metrics_task.delay()  # the baseline
        deadline = clock.monotonic() + 30
        while clock.monotonic() < deadline and not HealthCheck.objects.get(pk=check.pk).metrics_state:
            clock.sleep(0.1)
        service_app.serve(40)
        service_app.serve(2, status="502")
        clock.sleep(1.1)  # the next scrape is due a (shortened) interval later
        tasks.scrape_metrics_task.delay()
        while clock.monotonic() < deadline and not MetricSample.objects.exists():
            clock.sleep(0.1)
    sample = MetricSample.objects.get(health_check=check)
    assert (sample.requests, sample.errors) == (42, 2)
    tasks.rollup_results_task()  # this hour is not complete: nothing to roll up yet, and nothing purged
    assert MetricSample.objects.count() == 1
