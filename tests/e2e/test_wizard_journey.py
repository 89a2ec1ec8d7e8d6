"""The wizard in a real browser, once per shipped golden path: pick the path, answer its steps, preview, create, watch
the run on a real worker, and land on the new service's page with its repository, runbook and ADRs."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from catalog.models import Service
from scaffolder import registry
from teams import services as team_services
from teams.models import Membership
from techdocs.models import ADR, Runbook
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
RUN_MS = 60_000  # generous: only a failing run waits this long


@pytest.fixture
def owner(settings, tmp_path: Path) -> Iterator[User]:  # type: ignore[no-untyped-def]
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    team = team_services.team_create(name="Ledgers", slug="ledgers", created_by=None)
    user = User.objects.create_user(username="olivia", email="olivia@example.com", password=PASSWORD)
    team_services.membership_set(team=team, user=user, role=Membership.Role.MEMBER, changed_by=None)
    with worker_running():
        yield user


@pytest.mark.parametrize("name", ["stdlib-http-service", "python-http-service", "python-worker"])
def test_create_a_service_from_a_golden_path(page: Page, live_server, owner: User, name: str) -> None:  # type: ignore[no-untyped-def]
    path = registry.golden_path_get(name)
    assert path is not None
    base, service = live_server.url, f"ledger-{name.split('-')[-1]}"

    sign_in(page, base, "olivia", "/create/")
    page.get_by_role("article").filter(has_text=path.title).get_by_role("link", name="Use this path").click()
    page.get_by_label("Service name").fill(service)
    page.get_by_label("Description").fill("Keeps the ledger of every payment, for the finance team.")
    for _step in path.steps:  # every later step's defaults are fine
        page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Owner team")).to_have_value("ledgers")
    page.get_by_role("button", name="Preview").click(timeout=RUN_MS)
    expect(page.get_by_role("link", name="catalog-info.yaml")).to_be_visible()
    page.get_by_role("button", name=f"Create {service}").click()

    expect(page.locator("#timeline .badge").first).to_have_text("Succeeded", timeout=RUN_MS)
    page.locator("#timeline").get_by_role("link", name=service).click()
    expect(page).to_have_url(f"{base}/catalog/services/{service}/")
    made = Service.objects.get(slug=service)
    assert (made.golden_path, made.golden_path_version, made.owner.slug) == (name, path.version, "ledgers")
    runbook = Runbook.objects.filter(service=made).first()
    assert runbook is not None and ADR.objects.filter(service=made).count() >= 1
    expect(page.get_by_role("link", name=runbook.title)).to_be_visible()
    expect(page.get_by_role("link", name=ADR.objects.filter(service=made).first().title)).to_be_visible()
    expect(page.locator(".file-list")).to_contain_text("catalog-info.yaml")  # the repository panel, from git
    expect(page.locator(".file-list")).to_contain_text("docs/adr/0001-record-architecture-decisions.md")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"wizard-{name}.png"), full_page=True)
