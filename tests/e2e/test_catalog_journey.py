"""The catalog in a real browser: sign in, search as you type, filter, open a service, edit it.

Everything is real: the live server, the vendored htmx it serves from /static/, the permissions granted by
service_create, and the audit event written by service_update.
"""

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from catalog import services as catalog_services
from catalog.models import Service
from teams import services as team_services
from teams.models import Membership, Team

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"


@dataclass
class Catalog:
    team: Team
    user: User


@pytest.fixture
def catalog(transactional_db: None) -> Catalog:
    """One team with one member and a handful of services in several lifecycles, all made as the product makes them."""
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    user = User.objects.create_user(username="maya", email="maya@example.com", password=PASSWORD)
    team_services.membership_set(team=team, user=user, role=Membership.Role.MEMBER, changed_by=None)
    for slug, name, lifecycle in [
        ("payments-api", "Payments API", "production"),
        ("payments-ledger", "Payments Ledger", "production"),
        ("search-indexer", "Search Indexer", "experimental"),
        ("notification-hub", "Notification Hub", "deprecated"),
        ("legacy-billing", "Legacy Billing", "deprecated"),
    ]:
        catalog_services.service_create(
            created_by=user, owner=team, slug=slug, name=name, lifecycle=lifecycle, description=f"The {name}."
        )
    return Catalog(team=team, user=user)


def _sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/catalog/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/catalog/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/catalog/")
    expect(page.get_by_role("heading", name="Service catalog")).to_be_visible()
    # The vendored htmx was served by the live server and has processed the page.
    assert page.evaluate("typeof window.htmx === 'object' && typeof window.htmx.version === 'string'")


def _mark_document(page: Page) -> None:
    """Set a flag on window that a full page load would wipe, to prove later that only a fragment was swapped."""
    page.evaluate("window.__runwayNoReload = true")


def _still_same_document(page: Page) -> bool:
    return page.evaluate("window.__runwayNoReload === true")


def _result_names(page: Page) -> list[str]:
    return page.locator("#results tbody td:first-child a").all_inner_texts()


def test_search_open_edit_and_save_a_service(page: Page, live_server, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server.url, "maya")
    results = page.locator("#results tbody tr")
    expect(results).to_have_count(5)
    expect(page.get_by_role("link", name="Search Indexer")).to_be_visible()

    _mark_document(page)
    page.get_by_role("searchbox", name="Search services").press_sequentially("payments", delay=20)

    expect(page).to_have_url(re.compile(r"/catalog/\?q=payments(&|$)"))
    expect(results).to_have_count(2)
    expect(page.get_by_role("link", name="Search Indexer")).to_have_count(0)
    expect(page.locator("#results .count")).to_have_text("2 services")
    assert _result_names(page) == ["Payments API", "Payments Ledger"]
    assert _still_same_document(page), "the search reloaded the whole page instead of swapping the results"

    page.get_by_role("link", name="Payments Ledger").click()
    expect(page).to_have_url(f"{live_server.url}/catalog/services/payments-ledger/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Payments Ledger")

    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/catalog/services/payments-ledger/edit/")
    new_description = "Double-entry ledger for every card payment, reconciled nightly."
    page.get_by_label("Description").fill(new_description)
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(f"{live_server.url}/catalog/services/payments-ledger/")
    expect(page.get_by_role("status")).to_contain_text("Payments Ledger was saved.")
    expect(page.locator(".prose")).to_have_text(new_description)

    service = Service.objects.get(slug="payments-ledger")
    assert service.description == new_description
    event = AuditEvent.objects.get(action="service.updated", service_id=service.pk)
    assert event.actor_id == catalog.user.pk
    assert event.before == {"description": "The Payments Ledger."}
    assert event.after == {"description": new_description}
    assert event.request_id, "the browser request's id was not stamped on the audit event"
    # The other services were left alone.
    assert Service.objects.get(slug="payments-api").description == "The Payments API."


def test_lifecycle_filter_swaps_the_results_without_a_reload(page: Page, live_server, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server.url, "maya")
    expect(page.locator("#results tbody tr")).to_have_count(5)
    _mark_document(page)

    page.get_by_label("Lifecycle").select_option("deprecated")

    expect(page).to_have_url(re.compile(r"/catalog/\?.*lifecycle=deprecated"))
    expect(page.locator("#results tbody tr")).to_have_count(2)
    assert _result_names(page) == ["Legacy Billing", "Notification Hub"]
    expect(page.get_by_role("link", name="Payments API")).to_have_count(0)
    assert _still_same_document(page), "the filter reloaded the whole page instead of swapping the results"
    # The filter form itself was not replaced: the choice is still selected.
    expect(page.get_by_label("Lifecycle")).to_have_value("deprecated")

    page.get_by_label("Lifecycle").select_option("experimental")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    assert _result_names(page) == ["Search Indexer"]
    assert _still_same_document(page)
