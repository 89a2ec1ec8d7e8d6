"""Break-glass in a real browser, with a real worker: during a freeze the starter policy refuses a production deploy
with its message; the owner asks for break-glass with a reason; a platform admin sees it in the approvals inbox
(the navigation counts it) and approves it; the deployment goes through its policy step and rolls out."""

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from catalog.models import Service
from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentEvent, Environment, State
from governance import sync
from teams import services as team_services
from teams.models import Membership
from tests.deployments.support import release_make, target_make
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in
from tests.factories import service_make
from tests.governance.support import freeze_in_force

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DEPLOY_MS = 60_000


@pytest.fixture
def frozen(transactional_db: None) -> Iterator[Deployment]:
    """payments-api (tier 1) with v2.0.1 already succeeded in staging, the starter policies, and a freeze in force:
    the owner's canary of v2.0.1 to production, refused by the freeze policy (driven by the real worker)."""
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    owner = User.objects.create_user(username="olivia", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    admin = User.objects.create_user(username="stella", password=PASSWORD, is_staff=True)
    service: Service = service_make(owner=team, slug="payments-api", name="Payments API", tier=1)
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    target_make(service, staging, canary_steps=[50])
    target_make(service, production, canary_steps=[50])
    release = release_make(service, "v2.0.1")
    Deployment.objects.create(
        release=release,
        service=service,
        environment=staging,
        strategy="canary",
        runtime="simulated",
        requested_by=owner,
        state=State.SUCCEEDED,
        finished_at=timezone.now() - timedelta(hours=2),
    )
    sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"])
    freeze_in_force(user=admin, name="Year-end freeze")
    with worker_running():
        refused = deployment_services.deployment_request(
            service=service, environment=production, user=owner, release=release
        )
        yield refused


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"break-glass-{name}.png"), full_page=True)


def state_badge(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#progress-heading + div .badge").first


def test_break_glass_through_a_freeze(page: Page, live_server, frozen: Deployment) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    # 1. The owner sees the production deploy refused with the freeze policy's message.
    sign_in(page, base, "olivia", frozen.get_absolute_url())
    expect(state_badge(page)).to_have_text("Cancelled", timeout=DEPLOY_MS)
    reason = page.locator("#live .form-errors")
    expect(reason).to_contain_text("Policy check refused the deployment: Production is frozen (Year-end freeze) until")
    expect(reason).to_contain_text("only a break-glass deploy may go ahead.")

    # 2. They ask for break-glass with a reason; the page asks for confirmation first.
    page.get_by_label("Why this cannot wait").fill("INC-812: card payments fail; v2.0.1 fixes it.")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Break glass").click()
    expect(page).not_to_have_url(re.compile(rf"/deployments/{frozen.pk}/$"))
    assert questions and questions[0].startswith("Break glass for v2.0.1 to Production?")
    emergency = Deployment.objects.exclude(pk=frozen.pk).get(service=frozen.service, environment=frozen.environment)
    expect(state_badge(page)).to_have_text("Awaiting approval")
    expect(page.get_by_role("heading", name="Break-glass Emergency deploy")).to_be_visible()
    expect(page.locator(".deployment-timeline")).to_contain_text("BREAK-GLASS: olivia asks for an emergency deploy")
    expect(page.get_by_role("button", name="Approve break-glass")).to_have_count(0)  # not their own
    screenshot(page, "requested")
    page.get_by_role("button", name="Sign out").click()

    # 3. A platform admin: the navigation counts the request; the inbox lists it; they approve (confirmed).
    sign_in(page, base, "stella", "/catalog/")
    expect(page.locator("#nav-approvals .nav-count")).to_have_text("1")
    page.locator("#nav-approvals a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Approvals")
    waiting = page.get_by_role("region", name="Waiting for you")
    expect(waiting).to_contain_text("INC-812: card payments fail")
    expect(waiting.locator(".badge-break-glass")).to_have_text("break-glass")
    screenshot(page, "inbox")
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    waiting.get_by_role("button", name="Approve break-glass").click()
    expect(page.get_by_role("region", name="Recently decided")).to_contain_text("Approved")
    assert questions[-1].startswith(f"Approve the break-glass deploy #{emergency.pk}")

    # 4. It goes through its policy step (break-glass lets the freeze through) and rolls out.
    page.goto(f"{base}{emergency.get_absolute_url()}")
    expect(state_badge(page)).to_have_text("Succeeded", timeout=DEPLOY_MS)
    expect(page.locator(".deployment-timeline")).to_contain_text("Break-glass approved by stella")
    # 5. The change-management evidence lists it as break-glass, with the admin's approval.
    page.goto(f"{base}/governance/evidence/?service=payments-api")
    row = page.locator("tr", has_text="v2.0.1").filter(has=page.locator(".badge", has_text="break-glass"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("stella")
    emergency.refresh_from_db()
    decision = emergency.policy_decision
    outcomes = {result["policy"]: result["outcome"] for result in decision.results}
    assert outcomes["no-production-deploys-in-a-freeze"] == "pass" and decision.facts["change"]["break_glass"]
    assert DeploymentEvent.objects.filter(
        deployment=emergency, level="error", message__startswith="BREAK-GLASS"
    ).exists()
