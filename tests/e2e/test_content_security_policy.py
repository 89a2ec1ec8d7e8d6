"""Every page is served with a Content-Security-Policy, and the portal keeps working under it: Chromium reports no
violation on the main pages (htmx, the charts, the wizard, the API docs), and the pages' scripts still run."""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from deployments.models import Deployment, State
from techdocs.models import Runbook

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Collected before any of the page's own scripts run, from the browser's own report of each blocked resource.
VIOLATIONS_INIT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
                              `(${event.sourceFile || ""}:${event.lineNumber || ""}) ${event.sample || ""}`);
});
"""


class Watch:
    """The CSP headers of every document the page loads, and every violation Chromium reports, as console or event."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.policies: dict[str, str] = {}
        page.add_init_script(VIOLATIONS_INIT)
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message) -> None:  # type: ignore[no-untyped-def]
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def _response(self, response) -> None:  # type: ignore[no-untyped-def]
        if response.request.resource_type == "document":
            self.policies[response.url] = response.headers.get("content-security-policy", "")

    def violations(self) -> list[str]:
        return [*self.console, *self.page.evaluate("window.__cspViolations || []")]

    def visit(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        assert self.policies.get(url), f"no Content-Security-Policy on {url}"
        assert "script-src 'self'" in self.policies[url] and "unsafe-inline" not in _directive(
            self.policies[url], "script-src"
        )
        assert self.violations() == [], f"CSP violations on {url}"


def _directive(policy: str, name: str) -> str:
    return next((part for part in policy.split(";") if part.strip().startswith(f"{name} ")), "")


def test_the_main_pages_report_no_csp_violation(page: Page, live_server, demo: None) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    watch = Watch(page)
    watch.visit(f"{base}/accounts/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("runway-demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Service catalog")).to_be_visible()
    assert page.evaluate("window.htmx.config.includeIndicatorStyles") is False
    assert page.locator("head style").count() == 0  # htmx added no inline style of its own

    # The catalog, searched as you type: htmx swaps the results in.
    watch.visit(f"{base}/catalog/")
    page.evaluate("window.__sameDocument = true")
    page.locator("#catalog-q").fill("pay")
    expect(page.locator("#results")).to_contain_text(re.compile("pay", re.I))
    assert page.evaluate("window.__sameDocument === true")
    assert watch.violations() == []

    runbook = Runbook.objects.select_related("service").order_by("pk").first()
    assert runbook is not None
    watch.visit(f"{base}/catalog/services/{runbook.service.slug}/")
    watch.visit(f"{base}/docs/services/{runbook.service.slug}/runbooks/{runbook.slug}/")

    watch.visit(f"{base}/deployments/")
    analysed = Deployment.objects.filter(environment__slug="production", state=State.ROLLED_BACK).first()
    assert analysed is not None, "the demo's rolled back canary, with its analysis charts"
    watch.visit(f"{base}/deployments/{analysed.pk}/")
    expect(page.locator("figure.chart svg").first).to_be_visible()
    watch.visit(f"{base}/deployments/{Deployment.objects.filter(state=State.SUCCEEDED).first().pk}/")

    watch.visit(f"{base}/create/")
    page.locator("a[href='/create/python-worker/step/1/']").first.click()
    page.wait_for_load_state("networkidle")
    assert watch.violations() == []
    name = page.get_by_label(re.compile("Service name", re.I))
    name.fill("x")  # inline validation, through htmx
    expect(page.locator("#errors-name")).not_to_be_empty()
    assert watch.violations() == []

    watch.visit(f"{base}/audit/")
    watch.visit(f"{base}/teams/")
    watch.visit(f"{base}/teams/payments/")

    watch.visit(f"{base}/accounts/tokens/")
    page.get_by_label("Name").fill("csp check")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("New token")
    secret.click()  # selects the whole token (static/js/runway.js), no inline handler
    assert page.evaluate(
        "(() => { const e = document.activeElement;"
        " return e.value.startsWith('rwy_') && e.selectionStart === 0 && e.selectionEnd === e.value.length; })()"
    )
    assert watch.violations() == []

    watch.visit(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Runway API")
    expect(page.locator(".opblock").first).to_be_visible()
    assert watch.violations() == []

    watch.visit(f"{base}/api/v1/")
    watch.visit(f"{base}/no-such-page/")
    watch.visit(f"{base}/admin/")
    assert User.objects.filter(username="admin", is_staff=True).exists()
