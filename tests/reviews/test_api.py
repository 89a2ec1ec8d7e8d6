"""The reviews API: the permission matrix of every route, answers and bulk answers, handovers, and bad input."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from reviews.models import Campaign, Handover, Item, Ownership

pytestmark = pytest.mark.django_db

DUE = (timezone.localdate() + timedelta(days=7)).isoformat()


def _as(api_client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))


@pytest.mark.parametrize(("role", "expected"), [("lead", 200), ("outsider", 200), ("staff", 200), ("anonymous", 401)])
def test_reads(api_client, campaign, leads, role, expected, django_assert_max_num_queries):
    _as(api_client, leads, role)
    item = Item.objects.get(campaign=campaign)
    with django_assert_max_num_queries(8):
        listed = api_client.get(reverse("api:review-item-list"), {"campaign": campaign.pk})
    assert listed.status_code == expected
    for url in (
        reverse("api:review-campaign-list"),
        reverse("api:review-campaign-detail", args=[campaign.pk]),
        reverse("api:review-item-detail", args=[item.pk]),
        reverse("api:handover-list"),
    ):
        assert api_client.get(url).status_code == expected
    if expected == 200:
        row = listed.json()["results"][0]
        assert row["service"] == "payments-api" and row["status"] == "open" and row["overdue"] is False
        assert "@" not in listed.content.decode()  # no email address in another team's view


@pytest.mark.parametrize(("role", "expected"), [("lead", 403), ("outsider", 403), ("staff", 201), ("anonymous", 401)])
def test_open_and_close_a_campaign(api_client, leads, role, expected):
    _as(api_client, leads, role)
    body = {"title": "Tier 1", "scope": {"tier": "1"}, "due_on": DUE, "questions": ["ownership", "runbooks"]}
    response = api_client.post(reverse("api:review-campaign-list"), body, format="json")
    assert response.status_code == expected
    if expected == 201:
        assert response.json()["items_total"] == 1 and response.json()["questions"] == ["ownership", "runbooks"]
        close = api_client.post(reverse("api:review-campaign-close", args=[response.json()["id"]]), format="json")
        assert close.status_code == 200 and close.json()["status"] == "closed"
        again = api_client.post(reverse("api:review-campaign-close", args=[response.json()["id"]]), format="json")
        assert again.status_code == 409
    else:
        assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "scope": {"owner": "nobody"}, "due_on": DUE}, "scope"),
        ({"title": "x", "scope": {"colour": "red"}, "due_on": DUE}, "scope"),
        ({"title": "x", "scope": {"q": "a\x00b"}, "due_on": DUE}, "scope"),
        ({"title": "x", "scope": [], "due_on": DUE}, "scope"),
        ({"title": "x", "scope": {}, "due_on": "2001-01-01"}, "due_on"),
        ({"title": "x", "scope": {}, "due_on": DUE, "questions": ["favourite colour"]}, "questions"),
        ({"title": "", "scope": {}, "due_on": DUE}, "title"),
    ],
)
def test_bad_campaigns_are_field_errors(api_client, leads, body, field):
    api_client.force_authenticate(leads.staff)
    response = api_client.post(reverse("api:review-campaign-list"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize(
    ("role", "expected"), [("lead", 200), ("owner", 403), ("outsider", 403), ("staff", 200), ("anonymous", 401)]
)
def test_answer(api_client, campaign, leads, role, expected):
    _as(api_client, leads, role)
    item = Item.objects.get(campaign=campaign)
    body = {"ownership": "confirm", "details": {"chat_channel": "#pay"}, "comment": "checked"}
    response = api_client.post(reverse("api:review-item-answer", args=[item.pk]), body, format="json")
    assert response.status_code == expected
    answered = expected == 200
    assert Item.objects.get(pk=item.pk).status == ("answered" if answered else "open")
    assert (Service.objects.get(pk=leads.service.pk).chat_channel == "#pay") is answered
    if answered:
        assert response.json()["answered_by"] == getattr(leads, role).username
        again = api_client.post(reverse("api:review-item-answer", args=[item.pk]), body, format="json")
        assert again.status_code == 409


def test_answer_errors_name_the_field(api_client, campaign, leads):
    api_client.force_authenticate(leads.lead)
    item = Item.objects.get(campaign=campaign)
    url = reverse("api:review-item-answer", args=[item.pk])
    assert "handover_to" in api_client.post(url, {"ownership": "handover"}, format="json").json()
    assert "details" in api_client.post(url, {"details": {"tier": 9}}, format="json").json()
    assert "handover_to" in api_client.post(url, {"handover_to": "no\x00pe"}, format="json").json()
    assert Item.objects.get(pk=item.pk).status == "open"


def test_bulk_confirm_reports_each_refused_item(api_client, campaign, leads):
    api_client.force_authenticate(leads.lead)
    item = Item.objects.get(campaign=campaign)
    response = api_client.post(
        reverse("api:review-item-confirm"), {"items": [item.pk, 999999], "comment": "ours"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"answered": [item.pk], "refused": {"999999": "No such item."}}
    assert Ownership.objects.get(service=leads.service).verified_by == leads.lead
    mine = api_client.get(reverse("api:review-item-list"), {"mine": "true"}).json()
    assert mine["count"] == 0


@pytest.mark.parametrize(
    ("role", "expected"), [("lead", 403), ("owner", 403), ("other_lead", 200), ("staff", 200), ("anonymous", 401)]
)
def test_handover_accept(api_client, leads, role, expected):
    api_client.force_authenticate(leads.owner)
    proposed = api_client.post(
        reverse("api:handover-list"), {"service": "payments-api", "to_team": "search"}, format="json"
    )
    assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
    api_client.force_authenticate(None)
    _as(api_client, leads, role)
    response = api_client.post(reverse("api:handover-accept", args=[proposed.json()["id"]]), {}, format="json")
    assert response.status_code == expected
    moved = Service.objects.get(pk=leads.service.pk).owner_id == leads.other_team.pk
    assert moved is (expected == 200)


def test_handover_proposal_needs_the_change_permission_and_decline_keeps_the_owner(api_client, leads):
    api_client.force_authenticate(leads.outsider)
    refused = api_client.post(
        reverse("api:handover-list"), {"service": "payments-api", "to_team": "search"}, format="json"
    )
    assert refused.status_code == 403
    api_client.force_authenticate(leads.lead)
    proposed = api_client.post(
        reverse("api:handover-list"), {"service": "payments-api", "to_team": "search"}, format="json"
    ).json()
    api_client.force_authenticate(leads.other_lead)
    declined = api_client.post(reverse("api:handover-decline", args=[proposed["id"]]), {"note": "no"}, format="json")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert Service.objects.get(pk=leads.service.pk).owner == leads.owner_team
    assert Handover.objects.get(pk=proposed["id"]).decided_by == leads.other_lead
