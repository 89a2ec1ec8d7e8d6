"""The wizard in a real browser, once per shipped golden path: pick the path, answer its steps (a taken name is refused
as it is typed), preview the answers as a person reads them, create, watch the run on a real worker, and land on the
new service's page, titled by its display name, with its repository, runbook and ADRs."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from catalog.models import Service
from scaffolder import registry
from teams import services as team_services
from teams.models import Membership, Team
from techdocs.models import ADR, Runbook
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in
from tests.factories import service_make

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

    service_make(owner=Team.objects.get(slug="ledgers"), slug="ledger-taken", name="Ledger (taken)")
    display = f"Ledger {name.split('-')[-1].capitalize()}"

    sign_in(page, base, "olivia", "/create/")
    page.get_by_role("article").filter(has_text=path.title).get_by_role("link", name="Use this path").click()
    page.get_by_label("Service name").fill("ledger-taken")
    expect(page.locator("#errors-name")).to_have_text(
        "A service called ledger-taken already exists; choose another name."
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"wizard-taken-name-{name}.png"), full_page=True)
    page.get_by_label("Service name").fill(service)
    expect(page.locator("#errors-name")).to_have_text("")
    # Left empty, the display name would be the one made from the name as it was typed, as its help says.
    expect(page.locator("#display-name-default")).to_have_text(f"“Ledger {name.split('-')[-1]}”")
    page.get_by_label("Display name").fill(display)
    page.get_by_label("Description").fill("Keeps the ledger of every payment, for the finance team.")
    for _step in path.steps:  # every later step's defaults are fine
        page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Owner team")).to_have_value("ledgers")
    page.get_by_role("button", name="Preview").click(timeout=RUN_MS)
    expect(page.get_by_role("link", name="catalog-info.yaml")).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text(display)
    expect(facts).to_contain_text("Ledgers")  # the team's name, not its slug
    expect(facts).not_to_contain_text("False")
    expect(facts).not_to_contain_text("True")
    for key in path.properties:  # labelled by the path's titles, not by parameter keys
        if path.properties[key].get("title"):
            expect(facts.locator("dt", has_text=path.properties[key]["title"])).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"wizard-preview-{name}.png"), full_page=True)
    page.get_by_role("button", name=f"Create {display}").click()

    # The run's page follows the worker, and lands on the new service once it succeeds.
    expect(page).to_have_url(f"{base}/catalog/services/{service}/", timeout=RUN_MS)
    expect(page.get_by_role("heading", level=1)).to_contain_text(display)
    expect(page.get_by_text(f"{display} is in the catalog, owned by Ledgers")).to_be_visible()
    made = Service.objects.get(slug=service)
    assert (made.golden_path, made.golden_path_version, made.owner.slug) == (name, path.version, "ledgers")
    assert made.name == display
    runbook = Runbook.objects.filter(service=made).first()
    assert runbook is not None and ADR.objects.filter(service=made).count() >= 1
    expect(page.get_by_role("link", name=runbook.title)).to_be_visible()
    expect(page.get_by_role("link", name=ADR.objects.filter(service=made).first().title)).to_be_visible()
    expect(page.locator(".file-list")).to_contain_text("catalog-info.yaml")  # the repository panel, from git
    expect(page.locator(".file-list")).to_contain_text("docs/adr/0001-record-architecture-decisions.md")
    page.screenshot(path=str(SCREENSHOTS / f"wizard-{name}.png"), full_page=True)
