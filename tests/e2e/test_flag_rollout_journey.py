"""A progressive flag rollout in a real browser, with a real worker and the service's /metrics over real HTTP: the
owner starts it from the flag's page, watches the worker take the first step on the live timeline, pauses it, and
then, once the new variant errs, resumes it and watches the analysis roll it back."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from deployments.models import Environment
from flags import services
from flags.models import FlagRollout, FlagSetting
from teams import services as team_services
from teams.models import Membership
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in
from tests.factories import service_make
from tests.flags.test_rollouts import metrics  # noqa: F401 - the fixture: a service's /metrics over HTTP

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
STEP_MS = 30_000


def test_the_owner_starts_pauses_and_watches_a_rollout_roll_back(page: Page, live_server, metrics) -> None:  # noqa: F811
    served, url = metrics
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    owner = User.objects.create_user(username="olivia", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    service = service_make(owner=team, slug="checkout-api", name="Checkout API", tier=2)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    flag = services.flag_create(actor=None, service=service, key="new-checkout", default_variant="off")
    path = f"/flags/services/{service.slug}/flags/{flag.key}/"

    with worker_running():
        sign_in(page, live_server.url, "olivia", path)
        section = page.get_by_role("region", name="Progressive rollouts")
        section.get_by_text("Start a progressive rollout").click()
        section.get_by_label("Environment").select_option("staging")
        section.get_by_label("Variant").select_option("on")
        section.get_by_label("Steps").fill("10, 50, 100")
        section.get_by_label("Seconds per step").fill("5")
        section.get_by_label("Metrics URL").fill(url)
        section.get_by_role("button", name="Start the rollout").click()
        timeline = page.locator(".rollout").first
        expect(timeline).to_contain_text("Step 1 of 3: 10 % get on", timeout=STEP_MS)  # the worker, polled live
        expect(timeline).to_contain_text("variant on at 10 %")
        timeline.get_by_role("button", name="Pause").click()
        expect(timeline).to_contain_text("Paused at 10 %.")
        assert FlagRollout.objects.get().state == "paused"

        served.add("on", "200", 160)
        served.add("on", "500", 40)
        served.add("off", "200", 1440)
        timeline.get_by_role("button", name="Resume").click()
        expect(timeline).to_contain_text("Rolled back (off): canary error rate 20.0 %", timeout=STEP_MS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "flag-rollout-rolled-back.png"), full_page=True)
    assert not FlagSetting.objects.get(flag=flag, environment=staging).enabled
