"""SLOs as code: OpenSLO parsing, burn-rate windows on synthetic series with known answers, import with the catalog,
evaluation from probes and from an unreachable Prometheus, the `slo` fact, and the pages."""

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from catalog import sync
from deployments.models import Environment
from governance import facts
from monitoring import burn, openslo, selectors, services
from monitoring.models import SLO, HealthCheck, ProbeResult, SliSample, SliState

pytestmark = [pytest.mark.django_db]

NOW = timezone.now().replace(second=0, microsecond=0)


def ratio_slo(name: str = "availability", service: str = "payments-api", **spec: Any) -> dict[str, Any]:
    def source(query: str) -> dict[str, Any]:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": name, "displayName": "Requests that succeed"},
        "spec": {
            "service": service,
            "indicator": {
                "metadata": {"name": f"{name}-sli"},
                "spec": {
                    "ratioMetric": {
                        "counter": True,
                        "good": source('sum(http_requests_total{status!~"5.."})'),
                        "total": source("sum(http_requests_total)"),
                    }
                },
            },
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "objectives": [{"target": 0.999}],
            **spec,
        },
    }


def probe_slo(name: str = "probes", environment: str = "production", **objective: Any) -> dict[str, Any]:
    document = ratio_slo(name)
    source = {"metricSource": {"type": "RunwayProbe", "spec": {"environment": environment}}}
    if objective:
        document["spec"]["indicator"]["spec"] = {"thresholdMetric": source}
        document["spec"]["objectives"] = [{"target": 0.9, **objective}]
    else:
        document["spec"]["indicator"]["spec"] = {"ratioMetric": {"good": source, "total": source}}
    return document


# --- parsing ------------------------------------------------------------------------------------------------------


def test_a_ratio_slo_is_read_with_its_defaults():
    document = ratio_slo()
    del document["spec"]["timeWindow"]
    parsed = openslo.slo_parse(document)
    assert (parsed.name, parsed.service, parsed.sli_kind, parsed.source) == (
        "availability",
        "payments-api",
        "ratio",
        "prometheus",
    )
    assert parsed.target == 0.999 and parsed.window_days == 28 and parsed.counter is True


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("apiVersion", "openslo/v2", "apiVersion", "use openslo/v1"),
        ("kind", "SLI", "kind", "Runway reads kind SLO"),
        ("metadata.name", "Has Spaces", "metadata.name", "lower-case"),
        (
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
            "sum(rate(x[5m])",
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query",
            "not valid PromQL: unclosed left parenthesis",
        ),
        ("spec.indicator.spec.ratioMetric.total.metricSource.type", "Datadog", "metricSource.type", "Unknown metric"),
        ("spec.objectives.0.target", 1.5, "spec.objectives[0].target", "below 1"),
        ("spec.objectives", [], "spec.objectives", "exactly one objective"),
        ("spec.timeWindow", [{"duration": "1M", "isRolling": False}], "isRolling", "Calendar windows"),
        ("spec.timeWindow", [{"duration": "200d", "isRolling": True}], "duration", "between 1 and 90 days"),
        ("spec.budgetingMethod", "Timeslices", "spec.budgetingMethod", "Occurrences"),
        ("spec.description", "bad\x00byte", "spec.description", "NUL"),
    ],
)
def test_refusals_name_the_field_to_fix(path, value, field, message):
    with pytest.raises(openslo.SloError, match=message) as error:
        openslo.slo_parse(_set(ratio_slo(), path, value))
    assert field in (error.value.field or "")


def test_a_threshold_slo_needs_an_operator_and_a_number():
    with pytest.raises(openslo.SloError, match="must be one of lt, lte, gt, gte"):
        openslo.slo_parse(probe_slo(value=300))
    with pytest.raises(openslo.SloError, match="must be a number"):
        openslo.slo_parse(probe_slo(op="lte", value="fast"))
    parsed = openslo.slo_parse(probe_slo(op="lte", value=300))
    assert (parsed.sli_kind, parsed.source, parsed.environment, parsed.threshold_value) == (
        "threshold",
        "probe",
        "production",
        300.0,
    )


# --- burn-rate windows on synthetic series ------------------------------------------------------------------------


def _series(slo: SLO, error_ratio_at) -> None:
    """One sample a minute for the last three days, 1,000 events each, the error ratio given by minutes ago."""
    rows = []
    for minutes_ago in range(3 * 24 * 60):
        errors = 1000 * error_ratio_at(minutes_ago)
        rows.append(SliSample(slo=slo, at=NOW - timedelta(minutes=minutes_ago), good=1000 - errors, total=1000))
    SliSample.objects.bulk_create(rows, batch_size=5000)


def _make(world, name: str, target: float = 0.999) -> SLO:
    slo = services.slo_create(user=world.owner, service=world.service, document=ratio_slo(name))
    SLO.objects.filter(pk=slo.pk).update(target=target, sli_state=SliState.OK, evaluated_at=NOW)
    slo.refresh_from_db()
    return slo


@pytest.mark.parametrize(
    ("case", "error_ratio_at", "alert", "burn_1h", "status"),
    [
        # 1.5 % errors for the last hour against a 0.1 % allowance: 15× over 1 h and 5 min.
        ("fast burn", lambda m: 0.015 if m < 60 else 0.0, "page", 15.0, burn.BURNING),
        # 0.7 % for six hours: 7× over 6 h and 30 min (1 h is only 7×, under 14.4×): the second page rule.
        ("steady burn", lambda m: 0.007 if m < 360 else 0.0, "page", 7.0, burn.BURNING),
        # 0.15 % for three days: 1.5× over 3 days and 6 h: a ticket, not a page; and since these three days are all
        # the window has seen, its budget is overspent too.
        ("slow burn", lambda m: 0.0015, "ticket", 1.5, burn.EXHAUSTED),
        # 1.5 % an hour ago for 55 minutes, clean for the last 65: the 5-minute window has stopped it.
        ("ended", lambda m: 0.015 if 65 <= m < 120 else 0.0, "", 0.0, burn.OK),
    ],
)
def test_burn_rate_alerts_on_known_series(world, case, error_ratio_at, alert, burn_1h, status):
    slo = _make(world, case.replace(" ", "-"))
    _series(slo, error_ratio_at)
    (found,) = selectors.slo_statuses([slo], now=NOW)
    assert found.budget.alert == alert
    assert found.budget.burn_rates["1h"] == pytest.approx(burn_1h, rel=0.02)
    assert found.status == status


def test_budget_remaining_and_exhaustion(world):
    slo = _make(world, "budget", target=0.99)
    _series(slo, lambda m: 0.005)  # half the 1 % allowance, over the whole window seen
    (status,) = selectors.slo_statuses([slo], now=NOW)
    assert status.budget.remaining == pytest.approx(0.5)
    SliSample.objects.create(slo=slo, at=NOW - timedelta(days=10), good=0, total=30_000)  # a bad day last week
    (status,) = selectors.slo_statuses([slo], now=NOW)
    assert status.budget.remaining < 0 and status.status == burn.EXHAUSTED
    history = selectors.slo_budget_history(slo, now=NOW)
    assert history[0][1] < 0 and history[-1][1] == pytest.approx(status.budget.remaining)


def test_statuses_cost_one_query_for_many_slos(world, django_assert_max_num_queries):
    slos = [_make(world, f"slo-{n}") for n in range(5)]
    with django_assert_max_num_queries(1):
        assert len(selectors.slo_statuses(slos, now=NOW)) == 5


# --- evaluation ---------------------------------------------------------------------------------------------------


def test_a_probe_sli_counts_the_probes_since_the_last_evaluation(world):
    production = Environment.objects.create(name="Production", slug="production", order=2)
    check = HealthCheck.objects.create(service=world.service, environment=production, url="http://a.test/")
    slo = services.slo_create(user=world.owner, service=world.service, document=probe_slo())
    SLO.objects.filter(pk=slo.pk).update(evaluated_at=NOW - timedelta(minutes=1))
    for seconds, ok in [(10, True), (20, False), (30, True), (90, False)]:  # the last one is before the minute
        ProbeResult.objects.create(health_check=check, checked_at=NOW - timedelta(seconds=seconds), ok=ok)
    sample = services.slo_evaluate(slo_id=slo.pk, now=NOW)
    assert sample is not None and (sample.good, sample.total) == (2, 3)
    assert services.slo_evaluate(slo_id=slo.pk, now=NOW) is None  # a redelivery within the minute counts nothing
    slo.refresh_from_db()
    assert slo.sli_state == SliState.OK


def test_a_probe_sli_without_a_check_is_unknown(world):
    Environment.objects.create(name="Production", slug="production", order=2)
    slo = services.slo_create(user=world.owner, service=world.service, document=probe_slo())
    assert services.slo_evaluate(slo_id=slo.pk, now=NOW) is None
    (status,) = selectors.service_slos(world.service, now=NOW)
    assert status.status == burn.UNKNOWN and "no health check" in status.reason


def test_an_unreachable_prometheus_makes_the_sli_unknown_never_healthy(world, settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{port}"
    slo = _make(world, "remote")
    _series(slo, lambda m: 0.0)  # a perfect history must not make an unreadable SLI look healthy
    SLO.objects.filter(pk=slo.pk).update(evaluated_at=NOW - timedelta(minutes=1))
    assert services.slo_evaluate(slo_id=slo.pk, now=NOW) is None
    (status,) = selectors.service_slos(world.service, now=NOW)
    assert status.status == burn.UNKNOWN and "could not be reached" in status.reason
    document = facts.facts_build(change=_change(world, NOW))["slo"]
    assert document["unknown"] == 1 and document["burning"] is False and document["budget_remaining_min"] is None


def test_counters_record_increases_and_survive_a_reset():
    from monitoring.sources import counter_increase

    assert counter_increase((None, None), (900.0, 1000.0)) == (0.0, 0.0)  # the first reading
    assert counter_increase((900.0, 1000.0), (1890.0, 2000.0)) == (990.0, 1000.0)
    assert counter_increase((1890.0, 2000.0), (95.0, 100.0)) == (95.0, 100.0)  # a restart reset both


# --- facts --------------------------------------------------------------------------------------------------------


def _change(world, at) -> facts.Change:
    environment = Environment.objects.get_or_create(slug="production", defaults={"name": "Production", "order": 2})[0]
    return facts.Change(service=world.service, environment=environment, strategy="rolling", version="1.0", at=at)


def test_the_slo_fact_says_when_the_budget_is_spent(world):
    slo = _make(world, "spent", target=0.99)
    _series(slo, lambda m: 0.02)  # twice the allowance for three days: a ticket-level burn, the budget overspent
    document = facts.facts_build(change=_change(world, NOW))["slo"]
    assert document["exhausted"] is True and document["burning"] is True and document["alert"] == "ticket"
    assert document["objectives"]["spent"]["status"] == burn.EXHAUSTED
    assert document["budget_remaining_min"] == pytest.approx(-1.0)
    assert set(document) == set(facts.sample_document()["slo"])


# --- import with the catalog --------------------------------------------------------------------------------------


def _tree(root: Path, *slos: dict[str, Any], extra: str = "") -> None:
    folder = root / "payments-api"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog-info.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "payments-api"},
                "spec": {"type": "service", "lifecycle": "production", "owner": "group:payments"},
            }
        )
    )
    (folder / "slo.yaml").write_text(yaml.safe_dump_all(slos, sort_keys=False) + extra)


def test_slo_files_import_with_the_catalog_and_errors_are_per_document(world, tmp_path):
    bad = ratio_slo("broken")
    bad["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]["spec"]["query"] = "rate(x[5m]"
    _tree(tmp_path, ratio_slo("availability"), bad, ratio_slo("elsewhere", service="no-such-service"))
    report = sync.catalog_import(root=tmp_path, source_name="org", actor=world.staff)
    assert report.created["slo"] == 1
    problems = {(p.file, p.document, p.entity, p.field) for p in report.errors}
    assert problems == {
        ("payments-api/slo.yaml", 1, "slo:broken", "spec.indicator.spec.ratioMetric.good.metricSource.spec.query"),
        ("payments-api/slo.yaml", 2, "slo:elsewhere", "spec.service"),
    }
    slo = SLO.objects.get()
    assert (slo.name, slo.source_path, slo.catalog_source.name) == ("availability", "payments-api/slo.yaml", "org")
    # Imported again unchanged: nothing written; then without the SLO: it is removed.
    assert sync.catalog_import(root=tmp_path, source_name="org").created.get("slo", 0) == 0
    _tree(tmp_path, ratio_slo("latency"))
    report = sync.catalog_import(root=tmp_path, source_name="org")
    assert report.missing == ["slo:payments-api/availability"] and report.created["slo"] == 1
    assert list(SLO.objects.values_list("name", flat=True)) == ["latency"]
    assert AuditEvent.objects.filter(action="slo.deleted").count() == 1


def test_a_file_owned_slo_is_not_edited_in_the_ui(world, tmp_path, client):
    _tree(tmp_path, ratio_slo("availability"))
    sync.catalog_import(root=tmp_path, source_name="org")
    slo = SLO.objects.get()
    with pytest.raises(PermissionDenied, match="owns this SLO"):
        services.slo_update(user=world.owner, slo=slo, document=ratio_slo("availability"))
    client.force_login(world.owner)
    assert client.get(reverse("monitoring:slo-edit", args=[slo.pk])).status_code == 403
    assert client.post(reverse("monitoring:slo-delete", args=[slo.pk]), {"confirmed": "yes"}).status_code == 403


# --- pages --------------------------------------------------------------------------------------------------------


def test_owners_add_edit_and_delete_slos_in_the_ui_and_others_cannot(world, client):
    new = reverse("monitoring:slo-new", args=[world.service.slug])
    client.force_login(world.outsider)
    assert client.get(new).status_code == 403
    client.force_login(world.owner)
    page = client.get(new)
    assert page.status_code == 200 and b"openslo/v1" in page.content
    answer = client.post(new, {"document": yaml.safe_dump(ratio_slo("typed"))})
    assert answer.status_code == 302 and answer["Location"].endswith("#slos")
    slo = SLO.objects.get(name="typed")
    assert slo.catalog_source is None
    bad = client.post(new, {"document": "apiVersion: openslo/v1\nkind: SLO\nmetadata: [\n"})
    assert bad.status_code == 200 and b"not valid YAML" in bad.content
    promql = ratio_slo("other")
    promql["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["spec"]["query"] = "sum(("
    answer = client.post(new, {"document": yaml.safe_dump(promql)})
    assert answer.status_code == 200 and b"not valid PromQL" in answer.content
    aliases = client.post(new, {"document": "a: &x [1]\nb: *x\n"})
    assert b"aliases" in aliases.content
    edited = ratio_slo("typed")
    edited["spec"]["objectives"] = [{"targetPercent": 99.5}]
    assert (
        client.post(reverse("monitoring:slo-edit", args=[slo.pk]), {"document": yaml.safe_dump(edited)}).status_code
        == 302
    )
    slo.refresh_from_db()
    assert slo.target == pytest.approx(0.995)
    detail = client.get(reverse("catalog:service-detail", args=[world.service.slug]))
    assert b"Requests that succeed" in detail.content and b"Budget over the window" in detail.content
    delete = reverse("monitoring:slo-delete", args=[slo.pk])
    assert b"Delete the SLO typed" in client.get(delete).content
    assert client.post(delete, {"confirmed": "yes"}).status_code == 302
    assert not SLO.objects.exists()


def test_a_scrape_source_keeps_the_probe_safety_rules():
    from monitoring.sources import ScrapeSource, SourceUnavailable

    with pytest.raises(SourceUnavailable, match="refused"):
        ScrapeSource("http://169.254.169.254/metrics").instant("up")
    with pytest.raises(SourceUnavailable, match="not valid PromQL"):
        ScrapeSource("http://127.0.0.1:9/metrics").instant("up{")


# --- anomalies on SLIs, linked to the deployment before them ---------------------------------------------------------


def test_an_anomaly_in_an_sli_is_linked_to_the_dependency_deployed_just_before(world, client):
    from catalog.models import Dependency
    from deployments.models import Deployment
    from monitoring.models import Anomaly
    from monitoring.templatetags.monitoring import anomaly_cause
    from tests.deployments.support import release_make
    from tests.factories import service_make

    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    Dependency.objects.create(source=world.service, target=ledger)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    slo = _make(world, "errors", target=0.99)
    # 3 % errors from here on, 0.2-0.4 % before, for three days; on a 10-minute boundary, where buckets start.
    jump = (NOW - timedelta(hours=5)).replace(minute=(NOW.minute // 10) * 10)
    rows = []
    for step in range(3 * 24 * 6):
        at = NOW - timedelta(minutes=10 * step)
        error = 0.03 if at >= jump else 0.002 + (step * 7919 % 100) / 50_000
        rows.append(SliSample(slo=slo, at=at, good=1000 * (1 - error), total=1000))
    SliSample.objects.bulk_create(rows)
    deployed = Deployment.objects.create(
        release=release_make(ledger), service=ledger, environment=staging, strategy="rolling", runtime="simulated"
    )
    Deployment.objects.filter(pk=deployed.pk).update(started_at=jump - timedelta(minutes=12))

    (found,) = services.slo_anomalies_detect(slo=slo, now=NOW)
    assert found.started_at == jump and found.reason == "extreme"
    assert found.deployment_id == deployed.pk
    assert anomaly_cause(Anomaly.objects.get()) == f"started 12 minutes after deployment #{deployed.pk} of ledger"
    assert services.slo_anomalies_detect(slo=slo, now=NOW) == []  # idempotent: found once
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug]))
    assert f"started 12 minutes after deployment #{deployed.pk} of ledger".encode() in page.content
    assert b'class="anomaly-mark"' in page.content and b'class="deploy-tick"' in page.content


def test_dependent_services_in_trouble_together_are_one_signal_from_the_deepest(
    world, client, django_assert_num_queries
):
    from catalog.models import Dependency
    from monitoring.models import Anomaly
    from tests.factories import service_make

    # payments-api → ledger → database; search is unrelated. Anomalies on payments-api and database, and search.
    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    database = service_make(owner=world.owner_team, slug="database", name="Database")
    search = service_make(owner=world.other_team, slug="search", name="Search")
    Dependency.objects.create(source=world.service, target=ledger)
    Dependency.objects.create(source=ledger, target=database)

    def troubled(service, name: str) -> None:
        slo = services.slo_create(user=world.staff, service=service, document=ratio_slo(name, service=service.slug))
        Anomaly.objects.create(
            slo=slo, started_at=NOW - timedelta(minutes=20), value=0.05, reason="extreme", low=0, high=0.01
        )

    troubled(world.service, "front")
    assert selectors.correlated_signal(world.service, now=NOW) is None  # alone: no signal to group
    troubled(database, "disk")
    troubled(search, "unrelated")
    signal = selectors.correlated_signal(world.service, now=NOW)
    assert signal is not None
    assert [s.slug for s in signal.members] == ["database", "payments-api"] and signal.origin == database
    assert signal.why == "the deepest unhealthy dependency"
    with django_assert_num_queries(2):  # healthy itself (no SLO, no anomaly): the dependency graph is not read
        assert selectors.correlated_signal(ledger, now=NOW) is None
    assert selectors.correlated_signal(search, now=NOW) is None  # in trouble, but linked to nobody in trouble
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert "One signal across dependencies" in page and "Most likely origin: <strong>" in page


def test_a_kept_slo_detector_resumes_between_runs_and_a_damaged_one_is_replayed(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring import anomaly
    from monitoring.models import SloDetectorState

    slo = _make(world, "errors", target=0.99)
    other = _make(world, "errors-too", target=0.99)
    now = NOW.replace(minute=NOW.minute // 10 * 10)
    jump = now - timedelta(hours=5)
    rows = []
    for step in range(3 * 24 * 30):  # a sample every 2 minutes for three days, 3 % errors from the jump on
        at = now - timedelta(minutes=2 * step)
        # Noise per 10-minute bucket, not per sample: a bucket under way has the ratio it will have when whole.
        error = 0.03 if at >= jump else 0.002 + (int(at.timestamp()) // 600 * 7919 % 100) / 50_000
        rows += [SliSample(slo=s, at=at, good=1000 * (1 - error), total=1000) for s in (slo, other)]
    SliSample.objects.bulk_create(rows)

    first = jump - timedelta(hours=1, minutes=3)
    assert services.slo_anomalies_detect_many(slos=[slo, other], now=first) == []  # replays eight days
    found = []
    at = first
    while at < now:  # runs every 7 minutes: most end inside a bucket, which is scored but not kept
        at = min(at + timedelta(minutes=7), now)
        with CaptureQueriesContext(connection) as queries:
            new = services.slo_anomalies_detect_many(slos=[slo, other], now=at)
        if not new:  # the states in one query, each SLO's new samples, the states written in one statement, and
            # for an SLO whose bucket under way re-raises its recorded alert, the read of its recorded anomalies
            assert len(queries) <= 6
        found += new
    assert sorted((a.slo_id, a.started_at) for a in found) == [(slo.pk, jump), (other.pk, jump)]

    config = anomaly.DetectorConfig.for_step(600)
    continuous = anomaly.SeriesDetector(config)
    for bucket, ratio in selectors.slo_error_series(
        slo, since=first - services.ANOMALY_HISTORY, now=now, bucket=timedelta(minutes=10)
    ):
        if bucket + timedelta(minutes=10) <= now:
            continuous.update(bucket.timestamp(), ratio)
    kept = SloDetectorState.objects.get(slo=slo)
    assert kept.fed_until == now and bytes(kept.state) == continuous.state()

    SloDetectorState.objects.filter(slo=slo).update(state=b"damaged")
    slo.anomalies.all().delete()
    (again,) = services.slo_anomalies_detect(slo=slo, now=now)  # the replay of eight days finds the jump again
    assert again.started_at == jump
    replayed = anomaly.SeriesDetector(config)
    for bucket, ratio in selectors.slo_error_series(
        slo, since=now - services.ANOMALY_HISTORY, now=now, bucket=timedelta(minutes=10)
    ):
        if bucket + timedelta(minutes=10) <= now:  # the bucket under way (a sample taken at `now`) is not kept
            replayed.update(bucket.timestamp(), ratio)
    kept.refresh_from_db()
    assert bytes(kept.state) == replayed.state()
