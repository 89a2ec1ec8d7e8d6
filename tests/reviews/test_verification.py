"""Verified ownership: the catalog filters and sorts by it, the service page and API show it, policies read it, and
beat opens a review for every service whose verification is past its period."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from reviews import services, tasks
from reviews.models import Campaign, Item, Ownership
from tests.factories import service_make

pytestmark = pytest.mark.django_db


def _verified(service: Service, days_ago: int | None, user=None) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now() - timedelta(days=days_ago) if days_ago is not None else None
    Ownership.objects.update_or_create(service=service, defaults={"verified_at": at, "verified_by": user})


@pytest.fixture
def aged(leads):  # type: ignore[no-untyped-def]
    """Services of Payments verified 10, 100 and 200 days ago, never (made a year ago), and never (made today)."""
    made = {
        "fresh": 10,
        "hundred": 100,
        "old": 200,
        "never-old": None,
        "never-new": None,
    }
    result = {}
    for slug, days in made.items():
        service = service_make(owner=leads.owner_team, slug=slug, tier=3)
        _verified(service, days)
        result[slug] = service
    Service.objects.filter(slug="never-old").update(created_at=timezone.now() - timedelta(days=365))
    Service.objects.filter(slug="payments-api").update(created_at=timezone.now() - timedelta(days=1))
    return result


def _catalog_slugs(client, **params) -> list[str]:  # type: ignore[no-untyped-def]
    response = client.get(reverse("api:service-list"), {**params, "page_size": 50})
    assert response.status_code == 200, response.content
    return [row["slug"] for row in response.json()["results"]]


def test_the_catalog_filters_and_sorts_by_verification(client, aged, leads):
    client.force_login(leads.owner)
    assert set(_catalog_slugs(client, verified="180")) == {"old", "never-old", "never-new", "payments-api"}
    assert set(_catalog_slugs(client, verified="never")) == {"never-old", "never-new", "payments-api"}
    assert set(_catalog_slugs(client, verified="due")) == {"old", "never-old"}
    assert set(_catalog_slugs(client, verified="recent")) == {"fresh", "hundred", "never-new", "payments-api"}
    oldest_first = _catalog_slugs(client, ordering="verified")
    assert oldest_first[-3:] == ["old", "hundred", "fresh"]  # never verified first, then oldest
    assert _catalog_slugs(client, ordering="-verified")[:3] == ["fresh", "hundred", "old"]
    page = client.get(reverse("catalog:service-list"), {"verified": "180"}).content.decode()
    assert "Not verified in 180 days" in page and "never-old" in page and ">fresh<" not in page


def test_the_service_page_api_and_facts_show_who_verified_and_when(client, leads):
    services.ownership_verify(service=leads.service, verified_by=leads.lead)
    client.force_login(leads.outsider)
    page = client.get(leads.service.get_absolute_url()).content.decode()
    assert "Verified" in page and "by lena" in page
    row = client.get(reverse("api:service-detail", args=[leads.service.slug])).json()
    assert row["ownership_verified_by"] == "lena" and row["ownership_verified_at"]
    assert row["orphaned_since"] is None


def test_beat_opens_one_item_per_service_past_its_period_in_a_rolling_team_campaign(aged, leads, settings):
    settings.REVIEWS = {**settings.REVIEWS, "VERIFICATION_DAYS": 180, "TIER_VERIFICATION_DAYS": {3: 90}}
    assert tasks.open_periodic_reviews() == 3  # tier 3's period is 90 days here: hundred, old, never-old
    assert tasks.open_periodic_reviews() == 0  # a second tick (or a second beat) opens nothing new
    campaign = Campaign.objects.get(kind=Campaign.Kind.PERIODIC, team=leads.owner_team)
    assert set(campaign.items.values_list("service__slug", flat=True)) == {"hundred", "old", "never-old"}
    assert set(campaign.items.values_list("due_on", flat=True)) == {timezone.localdate() + timedelta(days=14)}
    items = list(Item.objects.select_related("service", "campaign").filter(campaign=campaign))
    services.items_confirm(items=items, answered_by=leads.lead)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CLOSED  # a rolling campaign closes when everything is answered
    assert tasks.open_periodic_reviews() == 0  # all three verified just now
    _verified(aged["old"], 120)
    assert tasks.open_periodic_reviews() == 1
    assert Campaign.objects.filter(kind=Campaign.Kind.PERIODIC, team=leads.owner_team, status="open").count() == 1
