"""The main pages pass axe-core's WCAG 2.1 A/AA checks with no serious or critical violation, and fit a 390 px phone.

axe-core is vendored from the npm registry (tests/e2e/vendor/axe-core/, its README says which release and how it
was checked) and injected by Playwright into each page of the demo organisation that `make run` shows.
"""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from catalog.models import Api
from deployments.models import Deployment, State
from incidents.models import Incident
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
    api = Api.objects.exclude(definition="").order_by("pk").first()
    incident = Incident.objects.filter(postmortem__isnull=False).order_by("pk").first()
    assert api and incident, "the demo has an API with its definition and an incident with a postmortem"
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
        f"/catalog/apis/{api.slug}/",
        "/insights/services/payments-api/",
        "/governance/freezes/",
        "/governance/evidence/",
        "/scorecards/",
        "/scorecards/initiatives/",
        "/incidents/",
        incident.get_absolute_url(),
        f"{incident.get_absolute_url()}postmortem/",
        "/flags/segments/",
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


# What axe does not judge: chart type drawn too small to read once the SVG is scaled into its box, row headers that
# hold a sentence set in capitals, a sidebar form squeezing two fields side by side (a select cut to "Productio"),
# and an item of the top bar broken over two lines.
READABILITY = """() => {
  const found = [];
  for (const text of document.querySelectorAll("svg text")) {
    if (!text.getClientRects().length) continue;
    const shown = parseFloat(getComputedStyle(text).fontSize) * text.getScreenCTM().a;
    if (shown < 10) found.push(`chart text "${text.textContent.trim()}" drawn at ${shown.toFixed(1)} px`);
  }
  for (const cell of document.querySelectorAll("tbody th")) {
    if (cell.textContent.trim().length > 40 && getComputedStyle(cell).textTransform === "uppercase")
      found.push(`row header in capitals: "${cell.textContent.trim().slice(0, 40)}"`);
  }
  for (const form of document.querySelectorAll("aside form.form")) {
    const width = form.getBoundingClientRect().width;
    for (const control of form.querySelectorAll("input:not([type=hidden]), select, textarea")) {
      const box = control.getBoundingClientRect();
      if (box.width && box.width < width * 0.6)
        found.push(`${control.name} in a sidebar form: ${box.width.toFixed(0)} of ${width.toFixed(0)} px`);
    }
  }
  for (const item of document.querySelectorAll(".topbar .account > *")) {
    const box = item.getBoundingClientRect(), line = parseFloat(getComputedStyle(item).lineHeight) || 24;
    if (box.height > line * 1.6)
      found.push(`"${item.textContent.trim()}" in the top bar wraps (${box.height.toFixed(0)} px high)`);
  }
  return found;
}"""


def test_main_pages_have_no_serious_accessibility_violations(browser: Browser, live_server, demo: None) -> None:  # type: ignore[no-untyped-def]
    page = _signed_in(browser, live_server.url, {"width": 1280, "height": 900})
    failures: dict[str, list[dict[str, object]]] = {}
    unreadable: dict[str, list[str]] = {}
    try:
        for path in _pages():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("networkidle")
            if found := page.evaluate(READABILITY):
                unreadable[path] = found
            if violations := _violations(page):
                failures[path] = violations
        # Between the phone's layout and a wide screen the top bar wraps; it ran 250 px off a 1,024 px window.
        page.set_viewport_size({"width": 1024, "height": 768})
        page.goto(f"{live_server.url}/catalog/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    finally:
        page.context.close()
    assert not failures, "axe-core found serious or critical violations:\n" + json.dumps(failures, indent=2)
    assert not unreadable, json.dumps(unreadable, indent=2)


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
