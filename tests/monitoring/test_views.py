"""The service page shows each environment's health, from a real probe of a local HTTP server."""

import pytest

from deployments.models import Environment
from monitoring import services, tasks
from monitoring.models import HealthCheck

pytestmark = [pytest.mark.django_db]


def test_the_service_page_shows_health_per_environment(client, world, target):
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2)
    services.health_check_create(user=world.owner, service=world.service, environment=staging, url=target.url("/ok"))
    services.health_check_create(
        user=world.owner, service=world.service, environment=production, url=target.url("/fail")
    )
    HealthCheck.objects.update(next_run_at=HealthCheck.objects.first().created_at)
    assert tasks.run_due_checks() == 2

    client.force_login(world.outsider)
    content = client.get(world.service.get_absolute_url()).content.decode()
    health = content[content.index('id="health-heading"') : content.index('id="deployments-heading"')]
    assert health.index("Staging") < health.index("Production")
    assert '<span class="badge badge-dep-succeeded">Healthy</span>' in health
    assert '<span class="badge badge-dep-failed">Down</span>' in health
    assert "answered 503, expected 200" in health
    assert "100\u00a0%" in health and ">0\u00a0%<" in health
    assert "Checks in the API" not in health  # the outsider may not change them


def test_a_service_without_checks_says_how_to_add_one(client, world):
    client.force_login(world.owner)
    content = client.get(world.service.get_absolute_url()).content.decode()
    assert "No health checks." in content
    assert "POST /api/v1/health-checks/" in content
