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
    response = api_client.post(
        reverse("api:health-check-list"),
        {"service": world.service.slug, "environment": "staging", "url": target.url("/ok"), "source": "simulated"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "http"
    assert HealthCheck.objects.get().source == ProbeSource.HTTP
