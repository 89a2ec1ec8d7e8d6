"""A policy-gated production flag change in a real browser: the owner turns a tier 1 service's flag on in
production (confirming first); the starter two-person rule holds it; a lead of the team sees it counted in the
navigation, finds it in the approvals inbox, approves it on the flag's page, and the flag is on."""

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from deployments.models import Environment
from flags import services
from flags.models import FlagChange, FlagSetting
from governance import sync
from teams import services as team_services
from teams.models import Membership
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_deploy_journey import PASSWORD, sign_in, sign_out
from tests.factories import service_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_production_flag_change_waits_for_a_lead(page: Page, live_server) -> None:
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    for username, role in (("olivia", Membership.Role.MEMBER), ("lena", Membership.Role.LEAD)):
        user = User.objects.create_user(username=username, password=PASSWORD)
        team_services.membership_set(team=team, user=user, role=role, changed_by=None)
    service = service_make(owner=team, slug="payments-api", name="Payments API", tier=1)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    flag = services.flag_create(actor=None, service=service, key="new-checkout", default_variant="off")
    services.setting_update(actor=None, flag=flag, environment=staging, enabled=True)
    assert not sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"]).errors
    path = f"/flags/services/{service.slug}/flags/{flag.key}/"

    sign_in(page, live_server.url, "olivia", path)
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("switch", name="new-checkout in Production: off. Turn it on").click()
    expect(page.get_by_role("region", name="Changes held by policy")).to_contain_text("asked by olivia")
    assert questions == ["Turn new-checkout on in Production? Its users see the change at their next poll."]
    expect(page.get_by_text("Waiting for approval: payments-api is tier 1: a lead of payments")).to_be_visible()
    assert not FlagSetting.objects.get(flag=flag, environment=production).enabled
    sign_out(page)

    sign_in(page, live_server.url, "lena", "/")
    expect(page.locator("#nav-approvals .nav-count")).to_have_text("1")
    page.locator("#nav-approvals a").click()
    page.get_by_role("link", name="Feature flag new-checkout of payments-api in Production").click()
    held = page.get_by_role("region", name="Changes held by policy")
    expect(held).to_contain_text("1 approval from a lead of the owning team: none yet")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "flag-change-held.png"), full_page=True)
    held.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Approved by lena; applied.").first).to_be_visible()
    assert FlagSetting.objects.get(flag=flag, environment=production).enabled
    assert FlagChange.objects.get().status == "applied"
