"""Event-triggered reviews (last lead leaves or is deactivated, team emptied or merged → orphaned → admin review),
the orphan dashboard, reorganisations, and a catalog transfer becoming a handover proposal."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from catalog.models import Service
from reviews import reorganise
from reviews.models import Campaign, Handover, Item, Ownership
from teams import services as team_services
from teams.models import Membership, Team
from tests.factories import service_make

pytestmark = pytest.mark.django_db


def _orphaned(service: Service) -> bool:
    return Ownership.objects.filter(service=service, orphaned_since__isnull=False).exists()


def _admin_item(service: Service) -> Item:
    return Item.objects.get(service=service, audience=Item.Audience.ADMINS, status=Item.Status.OPEN)


def test_the_last_lead_leaving_orphans_the_services_for_the_admins(leads, client):
    membership = Membership.objects.get(team=leads.owner_team, user=leads.lead)
    team_services.membership_remove(membership=membership, removed_by=leads.staff)
    assert _orphaned(leads.service)
    item = _admin_item(leads.service)
    assert item.campaign.kind == Campaign.Kind.EVENT and "last lead left" in item.reason
    client.force_login(leads.owner)
    page = client.get(reverse("reviews:orphan-list")).content.decode()
    assert "Payments API" in page and "last lead left" in page


def test_a_member_leaving_while_a_lead_stays_orphans_nothing(leads):
    membership = Membership.objects.get(team=leads.owner_team, user=leads.owner)
    team_services.membership_remove(membership=membership, removed_by=leads.staff)
    assert not _orphaned(leads.service)


def test_demoting_the_last_lead_and_deactivating_the_last_lead_orphan(leads):
    team_services.membership_set(team=leads.owner_team, user=leads.lead, role="member", changed_by=leads.staff)
    assert _orphaned(leads.service)
    other = service_make(owner=leads.other_team, slug="search-api")
    leads.other_lead.is_active = False
    leads.other_lead.save()
    assert _orphaned(other) and "was deactivated" in _admin_item(other).reason
    leads.other_lead.save()  # saving an inactive user again is no new event
    assert Item.objects.filter(service=other).count() == 1


def test_the_last_member_leaving_orphans_a_team_that_never_had_a_lead(world):
    membership = Membership.objects.get(team=world.owner_team, user=world.owner)
    team_services.membership_remove(membership=membership, removed_by=world.staff)
    assert _orphaned(world.service)


def test_an_admin_answer_names_the_owner_and_clears_the_flag(leads):
    from reviews import services

    leads.lead.is_active = False
    leads.lead.save()
    item = Item.objects.select_related("service", "campaign").get(service=leads.service, audience="admins")
    services.item_answer(item=item, answered_by=leads.staff, answer=services.Answer(ownership="confirm"))
    assert not _orphaned(leads.service)
    assert Campaign.objects.get(pk=item.campaign_id).status == Campaign.Status.CLOSED  # nothing else waits


def test_merging_moves_everything_deletes_the_team_and_asks_the_admins(leads):
    extra = service_make(owner=leads.owner_team, slug="ledger")
    count = reorganise.team_merge(source=leads.owner_team, target=leads.other_team, merged_by=leads.staff)
    assert count == 2
    assert not Team.objects.filter(slug="payments").exists()
    for service in (leads.service, extra):
        service.refresh_from_db()
        assert service.owner == leads.other_team and _orphaned(service)
        assert leads.other_lead.has_perm("catalog.change_service", service)
    assert Membership.objects.filter(team=leads.other_team, user=leads.lead, role="lead").exists()
    assert AuditEvent.objects.filter(action="team.merged").count() == 1


def test_moving_many_services_is_one_audited_operation_for_admins_only(leads):
    moving = [leads.service, service_make(owner=leads.owner_team, slug="ledger")]
    with pytest.raises(Exception, match="platform admins"):
        reorganise.services_move(services_to_move=moving, to_team=leads.other_team, moved_by=leads.lead, reason="x")
    moved = reorganise.services_move(
        services_to_move=moving, to_team=leads.other_team, moved_by=leads.staff, reason="Ledger moves to Search"
    )
    assert moved == 2
    assert set(Service.objects.filter(owner=leads.other_team).values_list("slug", flat=True)) == {
        "payments-api",
        "ledger",
    }
    event = AuditEvent.objects.get(action="reorganisation.services_moved")
    assert event.after["services"] == ["payments-api", "ledger"]


@pytest.mark.parametrize(
    ("role", "expected", "moved", "proposed"),
    [("owner", 302, False, True), ("outsider", 403, False, False), ("staff", 302, True, False)],
)
def test_the_catalog_transfer_page_proposes_unless_an_admin_transfers(client, leads, role, expected, moved, proposed):
    client.force_login(getattr(leads, role))
    url = reverse("catalog:service-transfer", args=[leads.service.slug])
    response = client.post(url, {"new_owner": leads.other_team.slug, "note": "reorg"})
    assert response.status_code == expected
    assert (Service.objects.get(pk=leads.service.pk).owner_id == leads.other_team.pk) is moved
    assert Handover.objects.filter(service=leads.service, status="proposed").exists() is proposed


@pytest.mark.parametrize(("role", "expected"), [("lead", 200), ("staff", 200), ("owner", 403), ("anonymous", 302)])
def test_reorganise_and_orphan_pages(client, leads, role, expected):
    if role != "anonymous":
        client.force_login(getattr(leads, role))
    assert client.get(reverse("reviews:reorganise")).status_code == (403 if role in ("lead", "owner") else expected)
    assert client.get(reverse("reviews:orphan-list")).status_code == (302 if role == "anonymous" else 200)
    if role == "lead":
        response = client.post(
            reverse("reviews:reorganise"),
            {"operation": "merge", "source": "payments", "target": "search", "confirm": "on"},
        )
        assert response.status_code == 403 and Team.objects.filter(slug="payments").exists()
