"""The service page's Health section in Chromium, from real probes of a local HTTP server written by the runner."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from catalog import services as catalog_services
from deployments.models import Environment
from monitoring import services, tasks
from monitoring.models import HealthCheck
from teams import services as team_services
from teams.models import Membership
from tests.monitoring.conftest import target  # noqa: F401 - the local HTTP server the probes read

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"


def test_the_service_page_shows_health_per_environment_in_chromium(live_server, target, page: Page):  # noqa: F811
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    user = User.objects.create_user(username="maya", password=PASSWORD)
    team_services.membership_set(team=team, user=user, role=Membership.Role.MEMBER, changed_by=None)
    service = catalog_services.service_create(created_by=user, owner=team, slug="payments-api", name="Payments API")
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2)
    services.health_check_create(user=user, service=service, environment=staging, url=target.url("/ok"))
    services.health_check_create(user=user, service=service, environment=production, url=target.url("/elsewhere"))
    HealthCheck.objects.update(next_run_at=HealthCheck.objects.first().created_at)
    assert tasks.run_due_checks() == 2

    page.goto(f"{live_server.url}/accounts/login/?next=/catalog/services/payments-api/")
    page.get_by_label("Username").fill("maya")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    health = page.locator("#health")
    expect(health.get_by_role("heading", name="Health")).to_be_visible()
    staging_row = health.get_by_role("row", name="Staging")
    expect(staging_row).to_contain_text("Healthy")
    expect(staging_row).to_contain_text("100\u00a0%")
    production_row = health.get_by_role("row", name="Production")
    expect(production_row).to_contain_text("Down")
    expect(production_row).to_contain_text("redirected to another host (localhost)")
    # The redirect's target was never requested.
    assert [path for path, _host in target.hits].count("/ok") == 1
