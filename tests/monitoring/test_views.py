"""The service page shows each environment's health, from a real probe of a local HTTP server."""

import pytest

from audit.models import AuditEvent
from deployments.models import DeployTarget, Environment
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
    assert "Add a health check" not in health and "Edit" not in health  # the outsider may not change them


def test_a_service_without_checks_says_how_to_add_one(client, world):
    client.force_login(world.owner)
    content = client.get(world.service.get_absolute_url()).content.decode()
    assert "No health checks." in content
    assert f'href="/monitoring/services/{world.service.slug}/health-checks/new/">Add one</a>' in content
    assert "POST /api/v1/health-checks/" in content


# --- adding, changing and deleting checks on the page -----------------------------------------------------------------

NEW = "/monitoring/services/payments-api/health-checks/new/"
FORM = {"interval_seconds": 30, "timeout_ms": 2000, "expected_status": 200, "metrics_path": "/metrics", "enabled": "on"}


def test_the_form_offers_the_deployed_replicas_where_runway_deploys_the_service(client, world):
    Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2)
    DeployTarget.objects.create(service=world.service, environment=production, runtime="local")
    client.force_login(world.owner)
    page = client.get(NEW).content.decode()
    assert '<option value="production" selected>Production</option>' in page
    assert '<option value="replicas" selected>' in page

    response = client.post(NEW, FORM | {"environment": "production", "source": "replicas", "url": ""})
    assert response.status_code == 302 and response["Location"].endswith("#health")
    check = HealthCheck.objects.get()
    assert (check.environment, check.source, check.url, check.interval_seconds) == (production, "replicas", "", 30)
    assert AuditEvent.objects.filter(action="health_check.created").count() == 1

    # Production has its check now: only staging is offered, and without a deploy target, a URL is.
    page = client.get(NEW).content.decode()
    assert 'value="production"' not in page and '<option value="http" selected>' in page


def test_what_the_service_refuses_comes_back_on_the_forms_fields(client, world):
    Environment.objects.create(name="Staging", slug="staging", order=1)
    client.force_login(world.owner)

    page = client.post(NEW, FORM | {"environment": "staging", "source": "replicas", "url": ""}).content.decode()
    assert "has no deploy target in Staging: add one, or give the check a URL instead." in page
    page = client.post(NEW, FORM | {"environment": "staging", "source": "http", "url": ""}).content.decode()
    assert "Give the URL to probe" in page
    page = client.post(NEW, FORM | {"environment": "staging", "source": "http", "url": "ftp://x"}).content.decode()
    assert "Enter a valid URL." in page
    page = client.post(NEW, FORM | {"environment": "staging", "source": "http", "url": "http://169.254.169.254/"})
    assert "169.254.169.254 is in the denied network" in page.content.decode()
    page = client.post(NEW, FORM | {"environment": "staging", "source": "simulated", "url": "http://a.example/"})
    assert "Select a valid choice." in page.content.decode()
    assert not HealthCheck.objects.exists()


def test_owners_change_and_delete_checks_and_others_may_not(client, world, target):
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url=target.url("/ok")
    )
    edit, delete = f"/monitoring/health-checks/{check.pk}/edit/", f"/monitoring/health-checks/{check.pk}/delete/"
    client.force_login(world.outsider)
    assert client.get(edit).status_code == 403
    assert client.post(edit, FORM | {"source": "http", "url": target.url("/fail")}).status_code == 403
    assert client.post(delete, {"confirmed": "yes"}).status_code == 403
    assert client.get(NEW).status_code == 403

    client.force_login(world.owner)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert f'href="{edit}"' in page and f'href="{delete}"' in page
    assert 'value="staging" selected' in client.get(edit).content.decode()
    response = client.post(edit, FORM | {"source": "http", "url": target.url("/fail"), "environment": "production"})
    assert response.status_code == 302
    check.refresh_from_db()
    assert check.url == target.url("/fail") and check.environment == staging  # the environment stays

    assert client.post(delete, {}).status_code == 200  # the confirmation page, nothing deleted
    assert HealthCheck.objects.exists()
    assert client.post(delete, {"confirmed": "yes"}).status_code == 302
    assert not HealthCheck.objects.exists()


def test_the_form_holds_csrf(world):
    from django.test import Client

    Environment.objects.create(name="Staging", slug="staging", order=1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    response = client.post(NEW, FORM | {"environment": "staging", "source": "http", "url": "http://a.example/"})
    assert response.status_code == 403 and not HealthCheck.objects.exists()


# --- the permission matrix of the health check pages, and hostile input ----------------------------------------------

ROLES = [("owner", 200, 302), ("outsider", 403, 403), ("staff", 200, 302), ("anonymous", 302, 302)]


@pytest.mark.parametrize(("role", "read", "write"), ROLES)
def test_who_may_add_change_and_delete_a_check(client, world, target, role, read, write):
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    Environment.objects.create(name="Production", slug="production", order=2)
    check = services.health_check_create(
        user=world.owner, service=world.service, environment=staging, url=target.url("/ok")
    )
    edit, delete = f"/monitoring/health-checks/{check.pk}/edit/", f"/monitoring/health-checks/{check.pk}/delete/"
    if role != "anonymous":
        client.force_login(getattr(world, role))

    for page in (NEW, edit, delete):
        response = client.get(page)
        assert response.status_code == read, page
        if role == "anonymous":
            assert response["Location"].startswith("/accounts/login/")
    allowed = role in ("owner", "staff")  # an anonymous write is a 302 too: to the sign-in page
    added = client.post(NEW, FORM | {"environment": "production", "source": "http", "url": "http://a.example/"})
    changed = client.post(edit, FORM | {"source": "http", "url": "http://b.example/"})
    assert (added.status_code, changed.status_code) == (write, write)
    assert HealthCheck.objects.filter(environment__slug="production").exists() is allowed
    check.refresh_from_db()
    assert (check.url == "http://b.example/") is allowed
    assert client.post(delete, {"confirmed": "yes"}).status_code == write
    assert HealthCheck.objects.filter(pk=check.pk).exists() is not allowed


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "http://a.example/\x00"},
        {"body_match": "ok\x00"},
        {"url": "http://" + "a" * 5000 + ".example/"},
        {"url": "http://\u202eelpmaxe.a/"},
        {"url": "http://[::1"},
        {"interval_seconds": "1e309"},
        {"timeout_ms": "-1"},
        {"expected_status": "2OO"},  # letters O, not zeros
        {"environment": "../../etc"},
        {"source": ["http", "replicas"]},
        {"metrics_path": "/" + "m" * 500},
        {"metrics_path": "/metrics?x=1"},
    ],
)
def test_hostile_input_is_a_form_error_and_nothing_is_saved(client, world, fields):
    Environment.objects.create(name="Staging", slug="staging", order=1)
    client.force_login(world.owner)
    response = client.post(
        NEW, FORM | {"environment": "staging", "source": "http", "url": "http://a.example/"} | fields
    )
    assert response.status_code == 200 and b"has-errors" in response.content
    assert not HealthCheck.objects.exists()


def test_unknown_services_and_checks_are_404s(client, world):
    client.force_login(world.staff)
    assert client.get("/monitoring/services/no-such-service/health-checks/new/").status_code == 404
    assert client.get("/monitoring/health-checks/999999/edit/").status_code == 404
    assert client.post("/monitoring/health-checks/999999/delete/", {"confirmed": "yes"}).status_code == 404
    assert client.get("/monitoring/health-checks/99999999999999999999/edit/").status_code == 404
