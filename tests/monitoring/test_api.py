"""/api/v1/health-checks/: read by everyone signed in, written by the service's owners, with status and uptime."""

import pytest

from deployments.models import Environment
from monitoring.models import HealthCheck, ProbeResult
from tests.factories import service_make

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/health-checks/"


@pytest.fixture
def staging() -> Environment:
    return Environment.objects.create(name="Staging", slug="staging", order=1)


def _payload(**fields):  # type: ignore[no-untyped-def]
    return {"service": "payments-api", "environment": "staging", "url": "http://127.0.0.1:9000/healthz"} | fields


def test_owners_create_and_edit_checks_outsiders_only_read(api_client, world, staging):
    api_client.force_authenticate(world.outsider)
    assert api_client.post(URL, _payload(), format="json").status_code == 403
    assert not HealthCheck.objects.exists()

    api_client.force_authenticate(world.owner)
    response = api_client.post(URL, _payload(body_match="ok"), format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["health"]["status"] == "unknown"
    assert created["health"]["uptime"] == {"last_24h": None, "last_7d": None, "last_30d": None}

    api_client.force_authenticate(world.outsider)
    detail = f"{URL}{created['id']}/"
    assert api_client.get(detail).status_code == 200
    assert api_client.patch(detail, {"interval_seconds": 30}, format="json").status_code == 403
    assert api_client.delete(detail).status_code == 403

    api_client.force_authenticate(world.owner)
    response = api_client.patch(detail, {"interval_seconds": 30, "enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["interval_seconds"] == 30
    assert api_client.delete(detail).status_code == 204
    assert not HealthCheck.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "http://169.254.169.254/latest/"}, "url", "denied network"),
        ({"url": "file:///etc/passwd"}, "url", "valid URL"),
        ({"interval_seconds": 1}, "interval_seconds", "greater than or equal to 10"),
        ({"timeout_ms": 10**9}, "timeout_ms", "less than or equal to 30000"),
        ({"environment": "nowhere"}, "environment", "does not exist"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, world, staging, fields, field, message):
    api_client.force_authenticate(world.owner)
    response = api_client.post(URL, _payload(**fields), format="json")
    assert response.status_code == 400, response.content
    assert message in str(response.json()[field])
    assert not HealthCheck.objects.exists()


def test_a_second_check_for_the_same_environment_is_a_400(api_client, world, staging):
    api_client.force_authenticate(world.owner)
    assert api_client.post(URL, _payload(), format="json").status_code == 201
    response = api_client.post(URL, _payload(), format="json")
    assert response.status_code == 400
    assert "already has a health check in this environment" in str(response.json())


def test_the_list_shows_health_filters_by_service_and_takes_bounded_queries(
    api_client, world, staging, django_assert_max_num_queries
):
    for i in range(12):
        service = service_make(owner=world.owner_team, slug=f"svc-{i:02d}", name=f"Service {i}")
        check = HealthCheck.objects.create(service=service, environment=staging, url="http://a.test/")
        ProbeResult.objects.create(health_check=check, checked_at=check.created_at, ok=True, status_code=200)
    api_client.force_authenticate(world.outsider)
    with django_assert_max_num_queries(10):
        response = api_client.get(URL)
    rows = response.json()["results"]
    assert len(rows) == 12
    assert {row["health"]["status"] for row in rows} == {"healthy"}
    assert {row["health"]["uptime"]["last_24h"] for row in rows} == {100.0}
    only = api_client.get(URL, {"service__slug": "svc-03"}).json()["results"]
    assert [row["service"] for row in only] == ["svc-03"]
