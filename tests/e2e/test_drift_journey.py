"""Golden path drift in a real browser: a service made from stdlib-http-service 1.0.0, the path bumped to 1.1.0, the
owner asks for the update on the service page, watches a real worker make the branch, reviews the diff and merges.
"""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from catalog.models import Service
from scaffolder import registry, services, tasks
from scaffolder.models import GoldenPathUpdate
from teams import services as team_services
from teams.models import Membership
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PATH_NAME = "stdlib-http-service"
NEW_HEALTHCHECK = "HEALTHCHECK --interval=10s"


@pytest.fixture
def made(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """ledger-api, made from a copy of stdlib-http-service 1.0.0 that is then released as 1.1.0."""
    folder = tmp_path / "golden_paths" / PATH_NAME
    shutil.copytree(Path(settings.BASE_DIR) / "golden_paths" / PATH_NAME, folder)
    settings.GOLDEN_PATHS_DIR = folder.parent
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    registry._all.cache_clear()
    team = team_services.team_create(name="Ledgers", slug="ledgers", created_by=None)
    owner = User.objects.create_user(username="olivia", email="olivia@example.com", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    path = registry.golden_path_get(PATH_NAME)
    assert path is not None
    run = services.scaffold_request(
        path=path,
        answers={"name": "ledger-api", "description": "Keeps the ledger of every payment."},
        owner=team,
        system=None,
        requested_by=owner,
    )
    tasks.run_scaffold(run.pk)

    spec = folder / "template.yaml"
    spec.write_text(spec.read_text().replace("version: 1.0.0", "version: 1.1.0", 1))
    docker = folder / "template" / "Dockerfile"
    docker.write_text(docker.read_text().replace("HEALTHCHECK --interval=15s", NEW_HEALTHCHECK))
    registry._all.cache_clear()
    try:
        yield settings.GIT_ROOT / "ledger-api.git"
    finally:
        registry._all.cache_clear()


def test_an_owner_updates_a_service_from_its_golden_path(page: Page, live_server, made: Path) -> None:
    base = live_server.url
    with worker_running():
        sign_in(page, base, "olivia", "/catalog/services/ledger-api/")
        expect(page.get_by_text("behind: 1.1.0 is out")).to_be_visible()
        page.get_by_role("button", name="Update from golden path").click()

        expect(page.get_by_role("heading", name="Update Ledger API to stdlib-http-service 1.1.0")).to_be_visible()
        expect(page.get_by_text("Ready to merge")).to_be_visible(timeout=60_000)  # the page polls the worker
        expect(page.get_by_role("link", name="Dockerfile")).to_be_visible()
        expect(page.locator(".diff-add", has_text=NEW_HEALTHCHECK)).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "drift-journey-review.png"), full_page=True)

        page.get_by_role("button", name="Merge into main").click()
        expect(page).to_have_url(f"{base}/catalog/services/ledger-api/")
        expect(page.get_by_text("Merged into main: Ledger API is now on stdlib-http-service 1.1.0.")).to_be_visible()
        expect(page.get_by_text("up to date")).to_be_visible()

    assert Service.objects.get(slug="ledger-api").golden_path_version == "1.1.0"
    assert GoldenPathUpdate.objects.get().status == GoldenPathUpdate.Status.MERGED
    dockerfile = subprocess.run(
        ["git", f"--git-dir={made}", "show", "main:Dockerfile"], capture_output=True, text=True, check=True
    ).stdout
    assert NEW_HEALTHCHECK in dockerfile
