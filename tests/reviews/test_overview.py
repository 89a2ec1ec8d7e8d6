"""The team ownership review page and the personal home page: what they show, and a query count that does not grow
with the team's size."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import services
from reviews.models import Item, Ownership
from techdocs.models import Runbook
from tests.factories import service_make

pytestmark = pytest.mark.django_db


def _queries(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_team_page_costs_the_same_queries_for_3_or_30_services(client, leads):
    for n in range(2):
        service_make(owner=leads.owner_team, slug=f"small-{n}")
    services.campaign_open(
        opened_by=leads.staff, title="All", scope={}, due_on=timezone.localdate() + timedelta(days=3)
    )
    client.force_login(leads.lead)
    url = reverse("reviews:team-review", args=["payments"])
    client.get(url)  # warm per-process caches (content types, sessions)
    small = _queries(client, url)
    for n in range(27):
        service = service_make(owner=leads.owner_team, slug=f"big-{n}")
        Runbook.objects.create(service=service, title="On call", slug="on-call", review_due_at=timezone.now())
        Ownership.objects.create(service=service, verified_at=timezone.now(), verified_by_repr="lena")
    services.campaign_open(
        opened_by=leads.staff,
        title="More",
        scope={"owner": "payments"},
        due_on=timezone.localdate() + timedelta(days=5),
    )
    assert _queries(client, url) == small


def test_the_team_page_shows_what_waits_and_confirms_in_bulk(client, leads):
    Runbook.objects.create(
        service=leads.service,
        title="Disaster recovery",
        slug="dr",
        last_reviewed_at=timezone.now() - timedelta(days=400),
    )
    ledger = service_make(owner=leads.owner_team, slug="ledger")
    services.handover_propose(service=ledger, to_team=leads.other_team, proposed_by=leads.lead)
    campaign = services.campaign_open(
        opened_by=leads.staff, title="Q3", scope={"owner": "payments"}, due_on=timezone.localdate() + timedelta(days=3)
    )
    client.force_login(leads.lead)
    url = reverse("reviews:team-review", args=["payments"])
    assert f'href="{url}"' in client.get(reverse("teams:team-detail", args=["payments"])).content.decode()
    page = client.get(url).content.decode()
    assert "Disaster recovery" in page and "Handovers waiting on other teams" in page
    assert 'id="confirm-payments-api"' in page and "never" in page
    item = Item.objects.get(campaign=campaign, service=leads.service)
    response = client.post(reverse("reviews:team-confirm", args=["payments"]), {"items": [item.pk]})
    assert response.status_code == 302
    assert Ownership.objects.get(service=leads.service).verified_by == leads.lead
    client.force_login(leads.outsider)  # another team reads the page, with no controls and no address
    page = client.get(url).content.decode()
    assert 'name="items"' not in page and "@example.com" not in page
    client.post(reverse("reviews:team-confirm", args=["payments"]), {"items": [item.pk]})
    assert Item.objects.get(campaign=campaign, service=ledger).status == "open"


def test_home_shows_my_services_my_items_and_my_approvals(client, leads):
    services.campaign_open(
        opened_by=leads.staff, title="Q3", scope={"owner": "payments"}, due_on=timezone.localdate() + timedelta(days=3)
    )
    services.handover_propose(
        service=service_make(owner=leads.owner_team, slug="ledger"), to_team=leads.other_team, proposed_by=leads.lead
    )
    client.force_login(leads.lead)
    page = client.get("/").content.decode()
    assert "Review Payments API" in page and "Your teams' services" in page
    client.force_login(leads.other_lead)
    page = client.get("/").content.decode()
    assert "Accept or decline ledger" in page
    assert "Review Payments API" not in page


@pytest.mark.parametrize("role", ["lead", "outsider", "staff", "anonymous"])
def test_pages_need_a_signed_in_person(client, leads, role):
    if role != "anonymous":
        client.force_login(getattr(leads, role))
    for url in ("/", reverse("reviews:team-review", args=["payments"])):
        response = client.get(url)
        assert response.status_code == (302 if role == "anonymous" else 200)
    assert client.get(reverse("reviews:team-review", args=["no-such-team"])).status_code == (
        302 if role == "anonymous" else 404
    )
