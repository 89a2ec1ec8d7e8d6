"""The service page's monitoring in Chromium: health from a real probe, an SLO with its error budget, and the key
metrics scraped from a real /metrics page, with an anomaly marked next to the deployment that preceded it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from catalog import services as catalog_services
from deployments.models import Deployment, Environment, State
from monitoring import series, services, tasks
from monitoring.models import SLO, HealthCheck, Metric, SliSample, SliState
from teams import services as team_services
from teams.models import Membership
from tests.deployments.support import release_make
from tests.e2e.conftest import SCREENSHOTS
from tests.monitoring.test_metrics import _samples, app_server  # noqa: F401 - the real /metrics server
from tests.monitoring.test_slos import probe_slo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"


def test_health_an_slo_budget_and_an_anomaly_after_its_deployment_in_chromium(live_server, app_server, page: Page):  # noqa: F811
    app, port = app_server
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    user = User.objects.create_user(username="maya", password=PASSWORD)
    team_services.membership_set(team=team, user=user, role=Membership.Role.MEMBER, changed_by=None)
    service = catalog_services.service_create(created_by=user, owner=team, slug="payments-api", name="Payments API")
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    check = services.health_check_create(
        user=user, service=service, environment=production, url=f"http://127.0.0.1:{port}/healthz"
    )

    # A week of scraped metrics: p95 latency steady near 8 ms, then 40 ms from three hours ago, 12 minutes after a
    # production deployment; and the real page scraped twice on top (the baseline, then 200 requests).
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    now = now.replace(minute=now.minute // 10 * 10)
    _samples(check, now=now - timedelta(minutes=10, seconds=30), days=7, latency_at=lambda m: 40 if m < 170 else 8)
    jump = now - timedelta(minutes=180)
    deployed = Deployment.objects.create(
        release=release_make(service, "3.1.0"),
        service=service,
        environment=production,
        strategy="rolling",
        runtime="simulated",
    )
    Deployment.objects.filter(pk=deployed.pk).update(state=State.SUCCEEDED, started_at=jump - timedelta(minutes=12))
    series.metrics_rollup(now=now, hours=24 * 7)
    app.serve(100)
    assert series.metrics_scrape_due() == 1
    app.serve(190)
    app.serve(10, status="500", seconds=0.3)
    assert series.metrics_scrape_due(now=timezone.now() + timedelta(seconds=61)) == 1
    found = series.metrics_anomalies_detect(check=check, now=now)
    (latency,) = [a for a in found if a.metric == Metric.LATENCY_P95]
    assert latency.deployment_id == deployed.pk

    # An SLO over the probes, a week of events with about half its 28-day budget spent.
    slo = services.slo_create(user=user, service=service, document=probe_slo("availability"))
    SliSample.objects.bulk_create(
        SliSample(slo=slo, at=timezone.now() - timedelta(hours=h), good=999 if h % 2 else 1000, total=1000)
        for h in range(1, 24 * 7)
    )
    HealthCheck.objects.update(next_run_at=timezone.now())
    assert tasks.run_due_checks() == 1
    SLO.objects.filter(pk=slo.pk).update(sli_state=SliState.OK, evaluated_at=timezone.now())

    page.goto(f"{live_server.url}/accounts/login/?next=/catalog/services/payments-api/")
    page.get_by_label("Username").fill("maya")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    health = page.locator("#health")
    expect(health.get_by_role("row", name="Production")).to_contain_text("Healthy")

    slos = page.locator("#slos")
    row = slos.get_by_role("row", name=re.compile("availability"))
    expect(row).to_contain_text("Ok")
    expect(row).to_contain_text("99.90\u00a0%")  # the target
    budget = row.locator("td").nth(2)
    expect(budget).to_have_text(re.compile(r"^\d+\.\d\u00a0%$"))  # budget left, e.g. 50.0 %
    expect(row.get_by_role("img", name="Error budget left of availability")).to_be_visible()

    metrics = page.locator("#metrics")
    expect(metrics.get_by_role("heading", name="Production")).to_be_visible()
    chart = metrics.get_by_role("img", name="Latency in Production")
    expect(chart).to_be_visible()
    tick = chart.locator(".deploy-tick")
    mark = chart.locator(".anomaly-mark")
    expect(tick).to_have_count(1)
    expect(mark).to_have_count(1)
    # The anomaly sits next to the deployment before it: 12 minutes apart on a week's axis is the same pixel or two.
    tick_box, mark_box = tick.bounding_box(), mark.bounding_box()
    assert tick_box and mark_box
    assert abs((mark_box["x"] + mark_box["width"] / 2) - (tick_box["x"] + tick_box["width"] / 2)) < 6
    expect(tick.locator("title")).to_have_text(f"Deployment #{deployed.pk} of payments-api 3.1.0")
    minutes = int((latency.started_at - (jump - timedelta(minutes=12))).total_seconds() // 60)
    expect(metrics.get_by_role("listitem").filter(has_text="Latency p95 in Production")).to_contain_text(
        f"started {minutes} minutes after deployment #{deployed.pk} of payments-api"
    )
    expect(metrics.get_by_role("img", name="Error rate in Production")).to_be_visible()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    metrics.screenshot(path=str(SCREENSHOTS / "monitoring_metrics.png"))
    slos.screenshot(path=str(SCREENSHOTS / "monitoring_slos.png"))
