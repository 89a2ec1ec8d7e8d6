"""The product's journey in a real browser: scaffold a service, deploy it to staging, then to production with a
canary, watch a broken release roll itself back, and decommission the service.

Everything is real: the wizard renders the stdlib-http-service golden path into a bare git repository, a Celery
worker (in a thread, on the configured broker) runs the scaffold and every deployment step, the local runtime starts
the replicas as processes under its own supervisord, the canary analysis sends them real HTTP, and the pages follow
it all through their htmx polls. Beat does not run in tests, so a thread plays the sweeper, as beat would every 5 s.
"""

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from deployments import services as deployment_services
from deployments import tasks as deployment_tasks
from deployments.models import Decommission, Deployment, DeployTarget, Environment, Placement, State
from deployments.runtimes import local
from deployments.runtimes.local import LocalRuntime
from monitoring import tasks as monitoring_tasks
from monitoring.models import HealthCheck
from scaffolder import publishers
from teams import services as team_services
from teams.models import Membership, Team
from tests.e2e.conftest import SCREENSHOTS, worker_running

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"
PATH_NAME = "stdlib-http-service"
SERVICE = "checkout-api"
DISPLAY_NAME = "Checkout API"
DESCRIPTION = "Takes the orders of the shop and hands them to payments."
DEPLOY_MS = 60_000  # generous: only a failing run waits this long
AUTHOR = {
    "GIT_AUTHOR_NAME": "Olivia Owner",
    "GIT_AUTHOR_EMAIL": "olivia@example.com",
    "GIT_COMMITTER_NAME": "Olivia Owner",
    "GIT_COMMITTER_EMAIL": "olivia@example.com",
}
# The rendered service's GET / answer, made to fail: a release that passes its health checks but errs on real work,
# which only the canary analysis can catch.
HEALTHY_ROOT = 'if path == "/":\n            return json_response(\n                HTTPStatus.OK,'
BROKEN_ROOT = 'if path == "/":\n            return json_response(\n                HTTPStatus.INTERNAL_SERVER_ERROR,'


@dataclass
class People:
    team: Team
    owner: User  # a member of the team: scaffolds, deploys, asks to decommission
    lead: User  # a lead of the same team: approves the decommission


@pytest.fixture
def people(transactional_db: None) -> People:
    team = team_services.team_create(name="Checkout", slug="checkout", created_by=None)
    owner = User.objects.create_user(username="olivia", email="olivia@example.com", password=PASSWORD)
    lead = User.objects.create_user(username="lena", email="lena@example.com", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    team_services.membership_set(team=team, user=lead, role=Membership.Role.LEAD, changed_by=None)
    # Before scaffolding, so the new service gets a deploy target in each (deployments.services.targets_default).
    deployment_services.environment_create(created_by=None, name="Staging", slug="staging", order=1)
    deployment_services.environment_create(
        created_by=None, name="Production", slug="production", order=2, protected=True
    )
    return People(team=team, owner=owner, lead=lead)


@pytest.fixture
def roots(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Repositories, releases and a supervisord of the test's own; only the golden path the journey uses."""
    golden_paths = tmp_path / "golden_paths"
    golden_paths.mkdir()
    (golden_paths / PATH_NAME).symlink_to(Path(settings.BASE_DIR) / "golden_paths" / PATH_NAME)
    settings.GOLDEN_PATHS_DIR = golden_paths
    settings.GIT_ROOT = tmp_path / "git"
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    try:
        yield tmp_path
    finally:
        local.supervisord_shutdown()  # and every replica with it


@pytest.fixture
def worker(roots: Path) -> Iterator[None]:
    """A real worker in a thread, plus the sweeper."""
    with worker_running(), sweeping():
        yield


@contextlib.contextmanager
def sweeping(every: float = 1.0) -> Iterator[None]:
    """Call the `deployments.sweep` task's body every second, as beat would: it ends bakes and planned waits."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while not stop.wait(every):
                try:
                    deployment_tasks.sweep()
                except Exception as error:  # recorded and raised in the test, not lost in a thread
                    errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="e2e-sweeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, f"the sweeper failed: {errors!r}"


# --- helpers -------------------------------------------------------------------------------------------------------


def sign_in(page: Page, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}{next_path}")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}{next_path}")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"deploy-journey-{name}.png"), full_page=True)


def mark_document(page: Page) -> None:
    """A flag a full page load would wipe: proves later that the page changed through htmx swaps alone."""
    page.evaluate("window.__runwayNoReload = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__runwayNoReload === true"))


def timeline(deployment_id: int) -> str:
    deployment = Deployment.objects.get(pk=deployment_id)
    lines = [f"#{deployment.pk} {deployment.state}: {deployment.failure_reason}"]
    lines += [f"  {e.at:%H:%M:%S.%f} {e.step}: {e.message}" for e in deployment.events.all()]
    return "\n".join(lines)


def deploy(page: Page, base_url: str, *, environment: str, ref: str, strategy: str = "", pick: bool = False) -> int:
    """From the service's page: Deploy, choose where and what, submit; returns the new deployment's id.

    With `pick`, the ref is chosen from the form's list of tags and recent commits instead of typed.
    """
    page.goto(f"{base_url}/catalog/services/{SERVICE}/")
    page.get_by_role("link", name="Deploy", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Deploy {DISPLAY_NAME}")
    # The ref field suggests the repository's tags and commits through its datalist.
    offered = page.locator("datalist#refs option").evaluate_all("options => options.map(o => o.value)")
    assert ref in offered, (ref, offered)
    page.get_by_label("Environment").select_option(label=environment)
    if pick:
        form_url = page.url
        page.get_by_role("region", name="Tags and recent commits").get_by_role("link", name=ref, exact=True).click()
        expect(page.get_by_label("Commit or tag")).to_have_value(ref)
        assert page.url == form_url, "picking a ref reloaded the form instead of filling the box"
        expect(page.get_by_label("Environment")).to_have_value(
            page.get_by_label("Environment").locator("option", has_text=environment).get_attribute("value") or ""
        )
    else:
        page.get_by_label("Commit or tag").fill(ref)
    if strategy:
        page.get_by_label("Strategy").select_option(label=strategy)
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base_url)}/deployments/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"→ {environment}")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def wait_until_finished(page: Page, deployment_id: int, outcome: str) -> None:
    """Watch the deployment page's live part until its state badge shows `outcome`, without a reload."""
    mark_document(page)
    badge = page.locator("#progress-heading + div .badge").first
    try:
        expect(badge).to_have_text(outcome, timeout=DEPLOY_MS)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{timeline(deployment_id)}") from None
    assert same_document(page), "the deployment page reloaded instead of swapping its live part"
    expect(page.locator("#live")).not_to_have_attribute("hx-trigger", re.compile("."))  # polling stopped


def posts_to(page: Page, fragment: str) -> list[str]:
    """Every POST the page sends to a URL containing `fragment`, from now on (a dismissed question sends none)."""
    sent: list[str] = []
    page.on(
        "request",
        lambda request: sent.append(request.url) if request.method == "POST" and fragment in request.url else None,
    )
    return sent


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1", **AUTHOR}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def push_broken_release(bare: Path, workdir: Path, tag: str) -> str:
    """Clone the service's repository, make GET / answer 500 (health stays fine), commit, tag and push."""
    workdir.parent.mkdir(parents=True, exist_ok=True)
    git(workdir.parent, "clone", "--quiet", str(bare), str(workdir))
    server = workdir / "app" / "server.py"
    text = server.read_text(encoding="utf-8")
    assert text.count(HEALTHY_ROOT) == 1, "the golden path's app/server.py changed: update BROKEN_ROOT"
    server.write_text(text.replace(HEALTHY_ROOT, BROKEN_ROOT), encoding="utf-8")
    git(workdir, "commit", "--quiet", "--all", "-m", "Answer 500 on / (broken on purpose)")
    git(workdir, "tag", tag)
    git(workdir, "push", "--quiet", "origin", "HEAD:main", f"refs/tags/{tag}")
    return git(workdir, "rev-parse", "HEAD")


# --- the journey ---------------------------------------------------------------------------------------------------


def test_scaffold_deploy_canary_roll_back_and_decommission(  # type: ignore[no-untyped-def]
    page: Page, live_server, people: People, roots: Path, worker: None
) -> None:
    base = live_server.url
    started = time.monotonic()

    # 1. The owner scaffolds a service from the golden path, in the wizard.
    sign_in(page, base, "olivia", "/create/")
    page.get_by_role("article").filter(has_text="Python standard library").get_by_role(
        "link", name="Use this path"
    ).click()
    page.get_by_label("Service name").fill(SERVICE)
    page.get_by_label("Display name").fill(DISPLAY_NAME)
    page.get_by_label("Description").fill(DESCRIPTION)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Greeting")).to_have_value("Hello")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Owner team")).to_have_value("checkout")  # the only team she is in
    # The preview is a dry run of the golden path (copier in a child process): seconds, more on a busy machine.
    page.get_by_role("button", name="Preview").click(timeout=DEPLOY_MS)
    expect(page.get_by_role("link", name="runway.yaml")).to_be_visible()
    page.get_by_role("button", name=f"Create {DISPLAY_NAME}").click()

    # The run's page follows the worker and lands on the new service once it succeeds.
    expect(page).to_have_url(f"{base}/catalog/services/{SERVICE}/", timeout=DEPLOY_MS)
    expect(page.get_by_role("heading", level=1)).to_contain_text(DISPLAY_NAME)
    deployments_card = page.locator("section", has=page.locator("#deployments-heading"))
    expect(deployments_card.locator("tbody tr")).to_have_count(2)
    expect(deployments_card.locator("tbody tr").nth(0)).to_contain_text("Staging")
    expect(deployments_card.locator("tbody tr").nth(0)).to_contain_text("Rolling · 2 × local processes")
    expect(deployments_card.locator("tbody tr").nth(1)).to_contain_text("Production")
    expect(deployments_card.locator("tbody tr").nth(1)).to_contain_text("Canary · 2 × local processes")

    # Only to keep the test fast: production bakes each canary step 1 s instead of the default 10 s. Replicas (2) and
    # canary steps (10, 25, 50 %) stay as targets_default made them.
    production = DeployTarget.objects.get(service__slug=SERVICE, environment__slug="production")
    assert (production.strategy, production.replicas, production.canary_steps) == ("canary", 2, [10, 25, 50])
    DeployTarget.objects.filter(pk=production.pk).update(bake_seconds=1)

    bare = Path(publishers.local_path(name=SERVICE))
    first = git(bare, "rev-parse", "main")
    first_version = first[:12]  # an untagged commit's release is named after its sha

    # 2. Staging, rolling (the environment's default), with the scaffolded commit.
    staging_id = deploy(page, base, environment="Staging", ref=first)
    wait_until_finished(page, staging_id, "Succeeded")
    expect(page.locator(".plan li.done")).to_have_count(len(Deployment.objects.get(pk=staging_id).plan) + 1)
    expect(page.locator(".deployment-timeline")).to_contain_text(f"{first_version} now runs in Staging on 2 replicas.")
    # Runway watches what it deployed: a check of the replicas, added once the success is committed.
    watched = time.monotonic() + 20
    while not HealthCheck.objects.filter(service__slug=SERVICE, environment__slug="staging").exists():
        assert time.monotonic() < watched, timeline(staging_id)
        time.sleep(0.1)
    page.reload()
    expect(page.locator(".deployment-timeline")).to_contain_text(
        f"Runway watches {DISPLAY_NAME} in Staging from now on: a health check of every deployed replica was added"
    )

    # 3. Production with a canary: three analysed steps, with the analysis chart and table.
    production_id = deploy(page, base, environment="Production", ref=first, strategy="Canary")
    wait_until_finished(page, production_id, "Succeeded")
    analysis = page.locator("section", has=page.locator("#analysis-heading"))
    expect(analysis.locator("figure.chart svg[role=img]")).to_have_count(2)
    expect(analysis.get_by_role("img", name=re.compile("^Latency p95"))).to_be_visible()
    rows = analysis.locator("tbody tr")
    expect(rows).to_have_count(3)
    for index, share in enumerate((10, 25, 50)):
        expect(rows.nth(index).locator("td").first).to_have_text(f"canary at {share} %")
        expect(rows.nth(index).locator(".badge")).to_have_text("pass")
    expect(page.get_by_role("button", name=f"Redeploy {first_version}")).to_be_visible()
    screenshot(page, "1-canary-succeeded")

    # 4. A broken release, pushed to the repository and deployed to production: the canary catches it.
    broken_sha = push_broken_release(bare, roots / "clone" / SERVICE, "v1.1.0")
    before = LocalRuntime().endpoints(SERVICE, "production")
    assert [(row["version"], row["state"]) for row in before] == [(first_version, "RUNNING")] * 2, before

    broken_id = deploy(page, base, environment="Production", ref="v1.1.0", strategy="Canary", pick=True)
    wait_until_finished(page, broken_id, "Rolled back")
    reason = page.get_by_role("alert")
    expect(reason).to_contain_text("Analysis failed (canary at 10 %): canary error rate")
    events = page.locator(".deployment-timeline li")
    expect(events.filter(has=page.locator(".badge", has_text="Failed"))).to_contain_text("Analysis failed")
    expect(events.filter(has=page.locator(".badge", has_text="Rolled back"))).to_contain_text(
        f"Rolled back: {first_version} serves all traffic again."
    )
    expect(page.locator("#analysis-heading ~ table .badge").first).to_have_text("fail")
    screenshot(page, "2-rolled-back")

    broken = Deployment.objects.get(pk=broken_id)
    assert broken.state == State.ROLLED_BACK and broken.release.commit_sha == broken_sha, timeline(broken_id)
    placement = Placement.objects.get(service__slug=SERVICE, environment__slug="production")
    assert placement.release is not None and placement.release.version == first_version
    # The previous release still serves: the same replicas, on the same ports, answer as the first version.
    after = LocalRuntime().endpoints(SERVICE, "production")
    assert after == before, (before, after)
    for row in after:
        answer = httpx.get(row["url"], timeout=5, trust_env=False)
        assert answer.status_code == 200
        assert answer.json() == {"message": f"Hello from {SERVICE}", "service": SERVICE, "version": first_version}

    # The checks Runway added probe every replica where it runs now (after a canary and a rollback, on new ports).
    HealthCheck.objects.update(next_run_at=timezone.now())
    assert monitoring_tasks.run_due_checks() == 2
    page.goto(f"{base}/catalog/services/{SERVICE}/#health")
    health = page.locator("section#health")
    for environment in ("Staging", "Production"):
        row = health.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=re.compile(environment)))
        expect(row.locator(".badge").first).to_have_text("Healthy")
        expect(row).to_contain_text("Every replica deployed here, at its release's health path")
    expect(page.locator("section#metrics")).to_contain_text("No metrics yet from the deployed replicas.")
    health.scroll_into_view_if_needed()
    screenshot(page, "2b-replicas-watched")

    # 5. Decommission: the owner asks, a lead of the team approves, workers stop, archive and revoke.
    page.goto(f"{base}/catalog/services/{SERVICE}/")
    page.get_by_role("link", name="Decommission", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Decommission {DISPLAY_NAME}")
    expect(page.get_by_role("list", name="Checks")).to_contain_text("No deployment is in flight.")
    page.get_by_label("Reason").fill("Checkout moved into the shop monolith; nothing calls this any more.")
    expect(page.get_by_label("Planned date")).to_have_value(timezone.localdate().isoformat())
    page.get_by_role("button", name="Ask to decommission").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/deployments/decommissions/\d+/$"))
    expect(page.get_by_role("status")).to_contain_text("Requested.")
    expect(page.locator("#progress-heading + .badge")).to_have_text("Awaiting approval")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)  # nobody approves their own request
    decommission_url = page.url
    screenshot(page, "3-decommission-requested")
    sign_out(page)

    sign_in(page, base, "lena", decommission_url.removeprefix(base))
    # Approving cannot be undone: the button asks first, and dismissing the question leaves the request as it was.
    asked: list[str] = []
    approvals = posts_to(page, "/approve/")
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#progress-heading + .badge")).to_have_text("Awaiting approval")
    assert asked and asked[0].startswith(f"Approve decommissioning {SERVICE}?"), asked
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved.")
    assert len(approvals) == 1, approvals  # the dismissed question sent nothing; only the accepted one did
    mark_document(page)
    expect(page.locator("#progress-heading + .badge")).to_have_text("Decommissioned", timeout=DEPLOY_MS)
    assert same_document(page), "the decommission page reloaded instead of polling its progress"
    expect(page.locator("#live")).not_to_have_attribute("hx-trigger", re.compile("."))
    expect(page.locator(".plan li")).to_have_count(5)
    expect(page.locator(".plan li.done")).to_have_count(5)
    timeline_list = page.locator(".deployment-timeline")
    expect(timeline_list).to_contain_text(
        "Stopped in production, staging. 2 health checks paused: nothing runs to probe."
    )
    expect(timeline_list).to_contain_text("Repository archived")
    expect(timeline_list).to_contain_text(f"{SERVICE} is decommissioned; its page stays as a read-only record.")
    screenshot(page, "4-decommissioned")

    assert LocalRuntime().endpoints(SERVICE, "production") == []
    assert LocalRuntime().endpoints(SERVICE, "staging") == []
    for row in after:  # the replicas are gone, not merely unlisted
        with pytest.raises(httpx.ConnectError):
            httpx.get(row["url"], timeout=2, trust_env=False)
    assert publishers.local_archived(name=SERVICE)
    assert Decommission.objects.get(service__slug=SERVICE).approved_by == people.lead

    page.get_by_role("link", name=SERVICE).first.click()
    expect(page).to_have_url(f"{base}/catalog/services/{SERVICE}/")
    notice = page.get_by_role("note").filter(has_text="Decommissioned")
    expect(notice).to_contain_text("This page is a read-only record of the service and its history.")
    expect(page.locator("h1 .badge").first).to_have_text("Decommissioned")
    for name in ("Deploy", "Edit", "Decommission", "Transfer ownership"):
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    screenshot(page, "5-service-decommissioned")

    elapsed = time.monotonic() - started
    print(f"journey took {elapsed:.1f} s")


def test_irreversible_controls_act_only_once_confirmed(  # type: ignore[no-untyped-def]
    page: Page, live_server, people: People
) -> None:
    """A production canary waiting in its analysis: Pause is the primary control; Promote now and Abort ask first,
    and only an accepted question acts (no worker runs here: the page and the database say what happened)."""
    from tests.deployments.support import release_make, step
    from tests.factories import service_make

    service = service_make(owner=people.team, slug="basket-api", name="Basket API")
    production = DeployTarget.objects.create(
        service=service, environment=Environment.objects.get(slug="production"), runtime="simulated",
        strategy="canary", bake_seconds=3600,
    )  # fmt: skip
    deployment = deployment_services.deployment_request(
        service=service, environment=production.environment, user=people.owner, release=release_make(service, "2.0.0")
    )
    while deployment.state != State.ANALYSING:
        deployment = step(deployment)

    sign_in(page, live_server.url, "olivia", deployment.get_absolute_url())
    controls = page.locator("section", has=page.locator("#controls-heading"))
    expect(controls.locator("button.primary")).to_have_text("Pause")
    expect(controls.get_by_role("button", name="Promote now")).not_to_have_class(re.compile("primary"))
    sent = posts_to(page, f"/deployments/{deployment.pk}/")

    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    controls.get_by_role("button", name="Promote now").click()
    expect(controls.get_by_role("button", name="Promote now")).to_be_visible()
    assert asked == [
        "Promote 2.0.0 to Production now? The remaining steps and their analyses are skipped, and it takes all traffic."
    ]
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    controls.get_by_role("button", name="Abort and roll back").click()
    expect(controls.get_by_role("button", name="Abort and roll back")).to_be_visible()
    assert len(asked) == 2 and asked[1].startswith(f"Abort deployment #{deployment.pk} of 2.0.0 to Production")
    assert sent == [], sent  # dismissed: nothing was sent
    assert Deployment.objects.get(pk=deployment.pk).state == State.ANALYSING

    page.once("dialog", lambda dialog: dialog.accept())
    controls.get_by_role("button", name="Abort and roll back").click()
    expect(page.get_by_role("status")).to_contain_text("Aborted.")
    assert sent == [f"{live_server.url}/deployments/{deployment.pk}/abort/"], sent
    assert Deployment.objects.get(pk=deployment.pk).state == State.FAILED
    screenshot(page, "6-aborted-after-confirming")
