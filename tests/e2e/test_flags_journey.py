"""Feature flags in a real browser: the owner creates a flag, targets the internal-staff segment, starts a 10 %
rollout and turns it on in staging, makes an SDK key; an OpenFeature client (the SDK with its OFREP provider, as a
service would run it) evaluates the flag against the live server; a real worker flushes the evaluation counts, and
the owner sees them move on the flag's page."""

import itertools
import re

import pytest
from django.contrib.auth.models import User
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from playwright.sync_api import Page, expect

from deployments.models import Environment
from flags import counts, services, tasks
from flags.models import EvaluationCount
from teams import services as team_services
from teams.models import Membership
from tests.e2e.conftest import SCREENSHOTS, worker_running
from tests.e2e.test_deploy_journey import PASSWORD, sign_in
from tests.factories import service_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
_domains = itertools.count()


@pytest.fixture
def shop(transactional_db: None) -> None:
    team = team_services.team_create(name="Checkout", slug="checkout", created_by=None)
    owner = User.objects.create_user(username="olivia", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    service_make(owner=team, slug="checkout-api", name="Checkout API")
    Environment.objects.create(name="Staging", slug="staging", order=1)
    Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    services.segment_save(  # segments are the organisation's: a platform admin made this one
        actor=None,
        slug="internal-staff",
        name="Internal staff",
        conditions=[{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
    )
    counts.take()
    counts.hash_drain()


def _client(base_url: str, key: str):  # type: ignore[no-untyped-def]
    domain = f"journey-{next(_domains)}"
    headers = {"Authorization": f"Bearer {key}"}
    api.set_provider(OFREPProvider(base_url=base_url, headers_factory=lambda: headers), domain)
    return api.get_client(domain)


def _flush() -> None:
    """What the beat does every minute, on a real worker: this process's counts to Redis, then Redis to the rows."""
    counts.push()
    tasks.flush_evaluation_counts.delay().get(timeout=30)


def test_an_owner_rolls_a_flag_out_and_sees_it_evaluated(page: Page, live_server, shop) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    sign_in(page, base, "olivia", "/flags/services/checkout-api/")
    page.get_by_role("link", name="New flag").first.click()
    page.get_by_label("Key").fill("new-checkout")
    page.get_by_label("Default variant").fill("off")
    page.get_by_label("Description").fill("The one-page checkout: staff first, then 10 % of shoppers.")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/flags/services/checkout-api/flags/new-checkout/$"))
    expect(page.locator("#evaluations-staging")).to_contain_text("Never evaluated here")

    staging = page.locator("#env-staging")
    staging.locator("#id_staging-rules").fill(
        '[{"name": "internal staff", "when": [{"op": "segment", "value": "internal-staff"}], "variant": "on"}]'
    )
    staging.locator("#id_staging-rollout").fill('{"on": 10, "off": 90}')
    staging.get_by_role("button", name="Save Staging").click()
    expect(page.locator(".message").first).to_contain_text("Saved new-checkout in Staging")
    page.locator("#env-staging").get_by_role("switch").click()  # staging is not protected: no confirmation
    expect(page.locator("#env-staging").get_by_role("switch")).to_have_attribute("aria-checked", "true")

    page.goto(f"{base}/flags/services/checkout-api/sdk-keys/")
    page.get_by_label("Environment").select_option("staging")
    page.get_by_label("Name").fill("checkout-web staging")
    page.get_by_role("button", name=re.compile("Create")).click()
    key = page.locator("#new-sdk-key").input_value()
    assert key.startswith("rwf_")

    with worker_running():
        client = _client(base, key)
        staff = client.get_boolean_details(
            "new-checkout", False, EvaluationContext("ada", {"email": "ada@example.com"})
        )
        assert (staff.value, staff.reason) == (True, "TARGETING_MATCH")
        shoppers = [
            client.get_boolean_value(
                "new-checkout", False, EvaluationContext(f"shopper-{n}", {"email": "x@mail.example"})
            )
            for n in range(200)
        ]
        assert 5 <= sum(shoppers) <= 40  # about 10 % of 200
        _flush()

        page.goto(f"{base}/flags/services/checkout-api/flags/new-checkout/")
        evaluations = page.locator("#evaluations-staging")
        expect(evaluations.locator(".evaluation-total")).to_have_text("201")
        expect(evaluations.locator('[data-variant="on"]')).to_have_text(str(sum(shoppers) + 1))
        expect(evaluations.locator('[data-variant="off"]')).to_have_text(str(200 - sum(shoppers)))
        expect(evaluations).to_contain_text("Last evaluated")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#env-staging").screenshot(path=str(SCREENSHOTS / "flags-counts.png"))

        for n in range(50):  # the same shoppers again: sticky, so the counts grow by the same split
            client.get_boolean_value(
                "new-checkout", False, EvaluationContext(f"shopper-{n}", {"email": "x@mail.example"})
            )
        _flush()
        page.reload()
        expect(page.locator("#evaluations-staging .evaluation-total")).to_have_text("251")
    assert sum(EvaluationCount.objects.values_list("count", flat=True)) == 251
