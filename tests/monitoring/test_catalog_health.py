"""The catalog list's health column: placeholders in the cached table, filled by one htmx request per page."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.models import Environment
from monitoring.models import HealthCheck, ProbeResult
from tests.factories import TeamFactory, service_make

pytestmark = [pytest.mark.django_db]

ENDPOINT = reverse("catalog:service-list-health")


def _check(service, environment, *results: bool) -> HealthCheck:
    """A check whose latest results are `results` (newest first), recent enough to count."""
    check = HealthCheck.objects.create(service=service, environment=environment, url="http://127.0.0.1:9/healthz")
    now = timezone.now()
    ProbeResult.objects.bulk_create(
        ProbeResult(health_check=check, checked_at=now - timedelta(seconds=10 * i), ok=ok, error="" if ok else "503")
        for i, ok in enumerate(results)
    )
    return check


def _cell(content: str, service_id: int) -> str:
    match = re.search(rf'<span id="health-{service_id}" hx-swap-oob="true">(.*?)</span>\n', content, re.S)
    assert match, f"no cell for service {service_id}"
    return match.group(1)


def test_the_worst_environment_decides_and_unknown_is_never_green(client, world):
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2)
    team = TeamFactory()
    mixed, unknown_and_healthy, bare = (service_make(owner=team) for _ in range(3))
    _check(world.service, staging, True, True)
    _check(world.service, production, True, True)
    _check(mixed, staging, True, True)
    _check(mixed, production, False, False)
    _check(unknown_and_healthy, staging, True)
    _check(unknown_and_healthy, production)  # no results yet

    client.force_login(world.outsider)
    ids = [world.service.pk, mixed.pk, unknown_and_healthy.pk, bare.pk]
    content = client.get(ENDPOINT, {"service": ids}).content.decode()

    assert '<span class="badge badge-dep-succeeded"' in _cell(content, world.service.pk)
    assert ">Healthy</span>" in _cell(content, world.service.pk)
    assert ">Down</span>" in _cell(content, mixed.pk) and "Production" in _cell(content, mixed.pk)
    cell = _cell(content, unknown_and_healthy.pk)
    assert ">Unknown</span>" in cell and "badge-dep-succeeded" not in cell
    assert "—" in _cell(content, bare.pk) and "no health checks" in _cell(content, bare.pk)


@pytest.mark.parametrize("count", [2, 40])
def test_the_health_request_costs_the_same_for_any_number_of_services(
    client, world, django_assert_max_num_queries, count
):
    production = Environment.objects.create(name="Production", slug="production", order=2)
    team = TeamFactory()
    services = [service_make(owner=team) for _ in range(count)]
    for service in services:
        _check(service, production, True, False)
    client.force_login(world.outsider)
    with django_assert_max_num_queries(4):  # session, user, checks, their recent results
        response = client.get(ENDPOINT, {"service": [service.pk for service in services]})
    assert response.content.decode().count('hx-swap-oob="true"') == count


@pytest.mark.parametrize("bad", [["x"], ["1.5"], [str(i) for i in range(201)]])
def test_bad_service_lists_are_a_400_that_says_what_to_fix(client, world, bad):
    client.force_login(world.outsider)
    response = client.get(ENDPOINT, {"service": bad})
    assert response.status_code == 400
    assert b"service" in response.content


def test_signed_out_readers_are_sent_to_sign_in(client, world):
    assert client.get(ENDPOINT, {"service": [world.service.pk]}).status_code == 302
