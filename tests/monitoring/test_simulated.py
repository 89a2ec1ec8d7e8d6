"""Simulated checks (the demo's services on the simulated runtime): made-up results, no request, and said so."""

import pytest
from django.urls import reverse

from deployments.models import Environment
from monitoring import demo, tasks
from monitoring.models import HealthCheck, ProbeResult, ProbeSource
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db]


def test_the_demo_adds_simulated_checks_once_and_they_report_at_once(client, world):
    Environment.objects.create(name="Staging", slug="staging", order=1)
    Environment.objects.create(name="Production", slug="production", order=2)
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)

    assert demo.health_load(service_slugs=[world.service.slug, "no-such-service"], admin=admin) == 2
    assert demo.health_load(service_slugs=[world.service.slug], admin=admin) == 0  # idempotent
    checks = HealthCheck.objects.filter(service=world.service)
    assert {check.source for check in checks} == {ProbeSource.SIMULATED}
    # Probed at load without a request (the .invalid host never resolves, so a real probe would fail).
    assert list(ProbeResult.objects.values_list("ok", "status_code", "error").distinct()) == [(True, 200, "")]

    client.force_login(world.outsider)
    page = client.get(world.service.get_absolute_url()).content.decode()
    health = page[page.index('id="health-heading"') :]
    health = health[: health.index("</section>")]
    assert health.count('<span class="badge">simulated</span>') == 2
    assert "no request is made and these results are made up" in health
    assert "simulated.invalid" not in health  # no pretend URL shown as if it were requested
    badges = client.get(reverse("catalog:service-list-health"), {"service": world.service.pk}).content.decode()
    assert ">Healthy</span>" in badges and ">simulated</span>" in badges


def test_a_simulated_check_makes_no_request(world, target):
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    HealthCheck.objects.create(
        service=world.service, environment=staging, url=target.url("/fail"), source=ProbeSource.SIMULATED
    )
    assert tasks.run_due_checks() == 1
    assert target.hits == []
    assert ProbeResult.objects.get().ok


def test_the_api_shows_the_source_and_will_not_make_a_simulated_check(api_client, world, target):
    Environment.objects.create(name="Staging", slug="staging", order=1)
    api_client.force_authenticate(world.owner)
    body = {"service": world.service.slug, "environment": "staging", "url": target.url("/ok")}
    response = api_client.post(reverse("api:health-check-list"), {**body, "source": "simulated"}, format="json")
    assert response.status_code == 400
    assert response.json()["source"] == ["Choose http or replicas: simulated checks are made by the demo loader only."]
    assert not HealthCheck.objects.exists()

    response = api_client.post(reverse("api:health-check-list"), body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "http"
    assert HealthCheck.objects.get().source == ProbeSource.HTTP


def test_the_demo_gives_simulated_checks_a_week_of_metrics_with_an_anomaly_after_checkout_deployment(world):
    from datetime import timedelta

    from django.utils import timezone

    from deployments.models import Deployment
    from monitoring.models import Anomaly, Metric, MetricRollup, MetricSample
    from tests.deployments.support import release_make
    from tests.factories import service_make

    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    checkout = service_make(owner=world.owner_team, slug="checkout-api", name="Checkout API")
    for service in (world.service, checkout):
        for environment in (staging, production):
            HealthCheck.objects.create(
                service=service, environment=environment, url="http://x.invalid/", source=ProbeSource.SIMULATED
            )
    deployed = Deployment.objects.create(
        release=release_make(checkout, "5.0.0"),
        service=checkout,
        environment=production,
        strategy="rolling",
        runtime="simulated",
    )
    Deployment.objects.filter(pk=deployed.pk).update(started_at=timezone.now() - timedelta(hours=20))

    assert demo.metrics_history_load() == 2 * 7 * 24 * 6
    assert demo.metrics_history_load() == 0  # idempotent
    assert MetricRollup.objects.filter(health_check__service=checkout).count() >= 7 * 24
    anomalies = list(Anomaly.objects.filter(health_check__service=checkout, metric=Metric.LATENCY_P95))
    assert [a.deployment_id for a in anomalies] == [deployed.pk]
    assert not Anomaly.objects.filter(health_check__service=world.service, metric=Metric.LATENCY_P95).exists()
    assert MetricSample.objects.filter(health_check__service=world.service).count() == 7 * 24 * 6
    assert not MetricSample.objects.filter(health_check__environment=staging).exists()  # filled live by workers
