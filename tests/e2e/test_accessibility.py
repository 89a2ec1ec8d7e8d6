"""The main pages pass axe-core's WCAG 2.1 A/AA checks with no serious or critical violation, and fit a 390 px phone.

axe-core is vendored from the npm registry (tests/e2e/vendor/axe-core/, its README says which release and how it
was checked) and injected by Playwright into each page of the demo organisation that `make run` shows.
"""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from deployments.models import Deployment, State
from reviews.models import Campaign, Item
from techdocs.models import ADR, Runbook

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "e2e"
BLOCKING = ("serious", "critical")
# WCAG 2.0 and 2.1, levels A and AA: what the portal promises (static/css/runway.css), and axe's best practices.
RUN = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}
PHONE = {"width": 390, "height": 844}


def _pages() -> list[str]:
    runbook = Runbook.objects.select_related("service").order_by("pk").first()
    adr = ADR.objects.filter(service__isnull=False).select_related("service").order_by("pk").first()
    deployment = Deployment.objects.filter(environment__slug="production", state=State.ROLLED_BACK).first()
    assert runbook and adr and deployment, "the demo has runbooks, ADRs and a rolled back canary with charts"
    return [
        "/catalog/",
        "/catalog/services/payments-api/",
        "/catalog/systems/payments-platform/",
        "/teams/",
        "/teams/payments/",
        "/deployments/",
        deployment.get_absolute_url(),
        runbook.get_absolute_url(),
        adr.get_absolute_url(),
        "/create/",
        "/create/python-worker/step/1/",
        "/audit/",
        "/search/?q=payments",
        "/insights/",
        "/insights/teams/payments/",
        "/governance/policies/",
        "/",
        "/reviews/",
        Campaign.objects.get(title="Quarterly ownership review").get_absolute_url(),
        Item.objects.filter(campaign__title="Quarterly ownership review", status="open").first().get_absolute_url(),  # type: ignore[union-attr]
        "/reviews/teams/payments/",
        "/flags/services/checkout-api/",
        "/flags/services/checkout-api/flags/new-checkout/",
        "/flags/stale/",
    ]


def _signed_in(browser: Browser, base: str, viewport: dict[str, int]) -> Page:
    # axe is injected as a script of the page's own; the portal's Content-Security-Policy (rightly) refuses inline
    # scripts, so this context alone is told to let it in. What axe reads is the page as served.
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill("runway-demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Service catalog")).to_be_visible()
    return page


def _violations(page: Page) -> list[dict[str, object]]:
    page.add_script_tag(content=AXE)
    found = page.evaluate(
        """async (options) => (await axe.run(document, options)).violations.map((v) => ({
             id: v.id, impact: v.impact, help: v.help,
             nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary) }))""",
        RUN,
    )
    return [violation for violation in found if violation["impact"] in BLOCKING]


def test_main_pages_have_no_serious_accessibility_violations(browser: Browser, live_server, demo: None) -> None:  # type: ignore[no-untyped-def]
    page = _signed_in(browser, live_server.url, {"width": 1280, "height": 900})
    failures: dict[str, list[dict[str, object]]] = {}
    try:
        for path in _pages():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("networkidle")
            if violations := _violations(page):
                failures[path] = violations
    finally:
        page.context.close()
    assert not failures, "axe-core found serious or critical violations:\n" + json.dumps(failures, indent=2)


def test_main_pages_fit_a_phone(browser: Browser, live_server, demo: None) -> None:  # type: ignore[no-untyped-def]
    """At 390 px the navigation wraps instead of being cut off, and wide tables scroll inside their own box."""
    page = _signed_in(browser, live_server.url, PHONE)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    overflowing = {}
    try:
        for path in _pages():
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                overflowing[path] = width
        page.goto(f"{live_server.url}/catalog/")
        for name in ("Catalog", "Teams", "Create", "Deployments", "Insights", "Governance"):
            link = page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        page.screenshot(path=str(SCREENSHOTS / "catalog-390px.png"), full_page=True)
        page.goto(f"{live_server.url}/catalog/services/payments-api/")
        page.screenshot(path=str(SCREENSHOTS / "service-390px.png"), full_page=True)
    finally:
        page.context.close()
    assert not overflowing, f"pages wider than the phone (scrollWidth): {overflowing}"
