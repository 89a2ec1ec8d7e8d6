"""An ownership review in a real browser: a lead opens their team's review page, confirms two services at once,
hands the third to another team, whose lead accepts it; the catalog then shows the new owner and the verified date."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from catalog import services as catalog_services
from catalog.models import Service
from reviews import services as reviews
from reviews.models import Handover, Ownership
from teams import services as team_services
from teams.models import Membership

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"


@pytest.fixture
def organisation(transactional_db: None) -> None:
    payments = team_services.team_create(name="Payments", slug="payments", created_by=None)
    search = team_services.team_create(name="Search", slug="search", created_by=None)
    for username, team in (("lena", payments), ("sam", search)):
        user = User.objects.create_user(username=username, email=f"{username}@example.com", password=PASSWORD)
        team_services.membership_set(team=team, user=user, role=Membership.Role.LEAD, changed_by=None)
    for slug, name in (("payments-api", "Payments API"), ("ledger", "Ledger"), ("search-indexer", "Search Indexer")):
        catalog_services.service_create(created_by=None, owner=payments, slug=slug, name=name, lifecycle="production")
    admin = User.objects.create_user(username="stella", password=PASSWORD, is_staff=True)
    reviews.campaign_open(
        opened_by=admin, title="Q3 ownership review", scope={}, due_on=timezone.localdate() + timedelta(days=14)
    )


def _sign_in(page: Page, base: str, username: str, then: str) -> None:
    page.goto(f"{base}{then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}{then}")


def test_a_lead_confirms_two_services_and_hands_one_over(page: Page, live_server, organisation) -> None:  # type: ignore[no-untyped-def]
    base = live_server.url
    _sign_in(page, base, "lena", "/")
    page.get_by_role("link", name="Payments").first.click()
    expect(page.get_by_role("heading", name="Payments: ownership review")).to_be_visible()

    page.get_by_label("Still ours: Payments API").check()
    page.get_by_label("Still ours: Ledger").check()
    page.get_by_label("Comment (optional)").fill("checked with the team")
    page.get_by_role("button", name="All of the ticked services are still ours").click()
    expect(page.get_by_role("status")).to_contain_text("Confirmed ownership of 2 services.")
    today = timezone.localdate()
    row = page.get_by_role("row").filter(has_text="Ledger")
    expect(row).to_contain_text(f"{today.day} {today:%b %Y}")
    expect(row).to_contain_text("by lena")

    page.get_by_role("row").filter(has_text="Search Indexer").get_by_role("link", name=re.compile("due")).click()
    page.get_by_label("Hand it over to another team").check()
    page.get_by_label("Hand over to").select_option("search")
    page.get_by_role("button", name="Send the answer").click()
    expect(page.get_by_role("status")).to_contain_text("Answered for Search Indexer.")
    assert Service.objects.get(slug="search-indexer").owner.slug == "payments"  # nothing moves before acceptance

    page.context.clear_cookies()
    _sign_in(page, base, "sam", "/")
    page.get_by_role("link", name="Accept or decline Search Indexer").click()
    page.get_by_label("Note").fill("ours now")
    page.get_by_role("button", name="Accept: Search owns it").click()
    expect(page).to_have_url(f"{base}/catalog/services/search-indexer/")
    expect(page.get_by_role("status")).to_contain_text("Search now owns Search Indexer.")

    page.goto(f"{base}/catalog/?ordering=-verified")
    row = page.get_by_role("row").filter(has_text="Search Indexer")
    expect(row.get_by_role("link", name="Search", exact=True)).to_be_visible()
    expect(row).to_contain_text(f"{today.day} {today:%b %Y}")
    assert Handover.objects.get().status == Handover.Status.ACCEPTED
    assert Ownership.objects.get(service__slug="search-indexer").verified_by_repr == "sam"
