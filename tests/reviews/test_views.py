"""The permission matrix of every review page, and the pages people use: list, campaign, answer, bulk, handover."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from reviews import services
from reviews.models import Campaign, Handover, Item, Ownership

pytestmark = pytest.mark.django_db

ROLES = ["lead", "owner", "outsider", "other_lead", "staff", "anonymous"]
LOGIN = "/accounts/login/"


def _login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


def _item(campaign: Campaign) -> Item:
    return Item.objects.get(campaign=campaign)


@pytest.mark.parametrize("role", ROLES)
def test_reading_pages_is_open_to_signed_in_people(client, campaign, leads, role):
    _login(client, leads, role)
    item = _item(campaign)
    for url in (
        reverse("reviews:campaign-list"),
        campaign.get_absolute_url(),
        item.get_absolute_url(),
    ):
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and response["Location"].startswith(LOGIN)
        else:
            assert response.status_code == 200, url
            assert b"Payments API" in response.content or url == reverse("reviews:campaign-list")


@pytest.mark.parametrize(
    ("role", "expected"),
    [("lead", 403), ("owner", 403), ("outsider", 403), ("other_lead", 403), ("staff", 302), ("anonymous", 302)],
)
def test_opening_a_campaign(client, leads, role, expected):
    _login(client, leads, role)
    url = reverse("reviews:campaign-new")
    due = (timezone.localdate() + timedelta(days=10)).isoformat()
    data = {"title": "Tier 1 review", "due_on": due, "questions": ["ownership", "details"], "scope-tier": "1"}
    response = client.post(url, data)
    assert response.status_code == expected
    opened = Campaign.objects.filter(title="Tier 1 review").first()
    assert (opened is not None) is (role == "staff")
    if opened:
        assert response["Location"] == opened.get_absolute_url()
        assert opened.scope == {"tier": "1"} and opened.items.count() == 1
        assert client.get(url).status_code == 200


def test_the_campaign_form_reports_a_scope_that_matches_nothing(client, leads):
    client.force_login(leads.staff)
    due = (timezone.localdate() + timedelta(days=10)).isoformat()
    response = client.post(reverse("reviews:campaign-new"), {"title": "Empty", "due_on": due, "scope-tier": "4"})
    assert response.status_code == 200
    assert b"No service" in response.content
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("role", "expected"),
    [("lead", 403), ("owner", 403), ("outsider", 403), ("other_lead", 403), ("staff", 302), ("anonymous", 302)],
)
def test_closing_a_campaign(client, campaign, leads, role, expected):
    _login(client, leads, role)
    response = client.post(reverse("reviews:campaign-close", args=[campaign.pk]))
    assert response.status_code == expected
    campaign.refresh_from_db()
    assert (campaign.status == Campaign.Status.CLOSED) is (role == "staff")


@pytest.mark.parametrize(
    ("role", "expected"),
    [("lead", 302), ("owner", 403), ("outsider", 403), ("other_lead", 403), ("staff", 302), ("anonymous", 302)],
)
def test_answering_an_item(client, campaign, leads, role, expected):
    _login(client, leads, role)
    item = _item(campaign)
    data = {"ownership": "confirm", "tier": "1", "lifecycle": "experimental", "on_call_url": "", "chat_channel": ""}
    response = client.post(item.get_absolute_url(), data)
    assert response.status_code == expected
    item.refresh_from_db()
    assert (item.status == Item.Status.ANSWERED) is (role in ("lead", "staff"))
    if role in ("lead", "staff"):
        assert response["Location"] == campaign.get_absolute_url()


def test_an_answer_form_error_names_the_field(client, campaign, leads):
    client.force_login(leads.lead)
    item = _item(campaign)
    data = {"ownership": "handover", "tier": "1", "lifecycle": "experimental", "on_call_url": "not a url"}
    response = client.post(item.get_absolute_url(), data)
    assert response.status_code == 200
    assert b"Choose the team to hand the service over to." in response.content
    assert b"Enter a valid URL." in response.content
    item.refresh_from_db()
    assert item.status == Item.Status.OPEN


@pytest.mark.parametrize(
    ("role", "answered"),
    [("lead", True), ("owner", False), ("outsider", False), ("staff", True), ("anonymous", False)],
)
def test_bulk_confirm(client, campaign, leads, role, answered):
    _login(client, leads, role)
    item = _item(campaign)
    response = client.post(reverse("reviews:items-confirm", args=[campaign.pk]), {"items": [item.pk]})
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status == Item.Status.ANSWERED) is answered
    assert Ownership.objects.filter(service=leads.service, verified_at__isnull=False).exists() is answered


@pytest.mark.parametrize(
    ("role", "expected", "moved"),
    [
        ("lead", 403, False),
        ("owner", 403, False),
        ("outsider", 403, False),
        ("other_lead", 302, True),
        ("staff", 302, True),
        ("anonymous", 302, False),
    ],
)
def test_accepting_a_handover(client, leads, role, expected, moved):
    handover = services.handover_propose(service=leads.service, to_team=leads.other_team, proposed_by=leads.lead)
    _login(client, leads, role)
    assert client.get(handover.get_absolute_url()).status_code == (302 if role == "anonymous" else 200)
    response = client.post(handover.get_absolute_url(), {"decision": "accept", "note": "welcome"})
    assert response.status_code == expected
    assert (Service.objects.get(pk=leads.service.pk).owner_id == leads.other_team.pk) is moved
    handover.refresh_from_db()
    assert (handover.status == Handover.Status.ACCEPTED) is moved


def test_a_lead_sees_a_handover_waiting_for_their_team_and_can_decline_it(client, leads):
    handover = services.handover_propose(service=leads.service, to_team=leads.other_team, proposed_by=leads.lead)
    client.force_login(leads.other_lead)
    page = client.get(reverse("reviews:campaign-list"))
    assert handover.get_absolute_url().encode() in page.content
    response = client.post(handover.get_absolute_url(), {"decision": "decline", "note": "not ours"})
    assert response.status_code == 302
    handover.refresh_from_db()
    assert handover.status == Handover.Status.DECLINED
    assert Service.objects.get(pk=leads.service.pk).owner == leads.owner_team


def test_the_campaign_page_shows_progress_overdue_and_the_burn_up(client, campaign, leads):
    Campaign.objects.filter(pk=campaign.pk).update(due_on=timezone.localdate() - timedelta(days=1))
    campaign.items.update(due_on=timezone.localdate() - timedelta(days=1))
    client.force_login(leads.lead)
    page = client.get(campaign.get_absolute_url()).content.decode()
    assert "0 of 1 answered" in page
    assert 'id="overdue-head"' in page
    assert "<svg" in page and "Items answered, day by day" in page
    assert 'name="items"' in page  # the lead may tick it for the bulk answer
