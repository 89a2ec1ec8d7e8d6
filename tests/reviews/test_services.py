"""Review campaigns from opening to closing, answers acting through the catalog's own functions, and handovers."""

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from catalog.models import CatalogSource, EntitySource, Service
from portal.errors import Conflict
from reviews import services
from reviews.models import Campaign, Handover, Item, Ownership
from techdocs.models import Runbook
from tests.factories import service_make

pytestmark = pytest.mark.django_db


def _item(campaign: Campaign, service: Service) -> Item:
    return Item.objects.select_related("service", "campaign").get(campaign=campaign, service=service)


def test_open_makes_one_item_per_service_in_scope_and_one_audit_event(leads):
    second = service_make(owner=leads.owner_team, slug="ledger")
    service_make(owner=leads.other_team, slug="search-api")  # out of scope
    service_make(owner=leads.owner_team, slug="old", lifecycle="deprecated")
    before = AuditEvent.objects.count()
    campaign = services.campaign_open(
        opened_by=leads.staff,
        title="Payments review",
        scope={"owner": "payments"},
        due_on=timezone.localdate() + timedelta(days=7),
    )
    slugs = set(campaign.items.values_list("service__slug", flat=True))
    assert slugs == {"payments-api", "ledger", "old"}
    assert set(campaign.items.values_list("team_id", flat=True)) == {leads.owner_team.pk}
    assert AuditEvent.objects.count() == before + 1
    assert AuditEvent.objects.latest("pk").action == "review.campaign_opened"
    assert campaign.scope_summary == "Owner: payments"
    assert second.pk in campaign.items.values_list("service_id", flat=True)


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ({"owner": "nobody"}, "scope"),
        ({"colour": "red"}, "scope"),
        ({"tier": "9"}, "scope"),
        ({"q": "a\x00b"}, "scope"),
        ({"q": "matches-nothing-at-all"}, "scope"),
    ],
)
def test_open_refuses_a_bad_scope_naming_the_field(leads, scope, field):
    with pytest.raises(ValidationError) as error:
        services.campaign_open(
            opened_by=leads.staff, title="x", scope=scope, due_on=timezone.localdate() + timedelta(days=1)
        )
    assert field in error.value.message_dict
    assert not Campaign.objects.exists()


def test_only_platform_admins_open_campaigns_and_not_in_the_past(leads):
    with pytest.raises(PermissionDenied):
        services.campaign_open(opened_by=leads.lead, title="x", scope={}, due_on=timezone.localdate())
    with pytest.raises(ValidationError) as error:
        services.campaign_open(
            opened_by=leads.staff, title="x", scope={}, due_on=timezone.localdate() - timedelta(days=1)
        )
    assert "due_on" in error.value.message_dict


def test_confirm_verifies_ownership_and_corrects_details_through_the_catalog(campaign, leads):
    item = _item(campaign, leads.service)
    Runbook.objects.create(service=leads.service, title="On call", slug="on-call", body="# On call")
    answer = services.Answer(
        ownership="confirm", details={"chat_channel": "#payments", "tier": 2}, runbooks_valid=True, comment="all good"
    )
    services.item_answer(item=item, answered_by=leads.lead, answer=answer)
    item.refresh_from_db()
    service = Service.objects.get(pk=leads.service.pk)
    assert item.status == Item.Status.ANSWERED and item.comment == "all good"
    assert (service.chat_channel, service.tier) == ("#payments", 2)
    ownership = Ownership.objects.get(service=service)
    assert ownership.verified_by == leads.lead and ownership.verified_at is not None
    assert Runbook.objects.get(service=service).last_reviewed_by == "lena"
    actions = set(AuditEvent.objects.filter(service_id=service.pk).values_list("action", flat=True))
    assert {"service.updated", "runbook.reviewed", "ownership.verified", "review.answered"} <= actions


def test_a_source_owned_field_is_recorded_with_its_file_not_written(campaign, leads):
    source = CatalogSource.objects.create(name="monorepo")
    EntitySource.objects.create(
        kind="Component",
        name="payments-api",
        source=source,
        path="services/payments-api/catalog-info.yaml",
        content_hash="x",
        content_type=ContentType.objects.get_for_model(Service),
        object_id=leads.service.pk,
        synced_at=timezone.now(),
    )
    item = _item(campaign, leads.service)
    services.item_answer(item=item, answered_by=leads.lead, answer=services.Answer(details={"tier": 3}))
    item.refresh_from_db()
    assert Service.objects.get(pk=leads.service.pk).tier == 1
    pending = [entry for entry in item.outcome if entry["kind"] == "pending"]
    assert pending and pending[0]["file"] == "services/payments-api/catalog-info.yaml"


def test_a_member_an_outsider_and_a_closed_campaign_cannot_answer(campaign, leads):
    item = _item(campaign, leads.service)
    for user in (leads.owner, leads.outsider, leads.other_lead):
        with pytest.raises(PermissionDenied):
            services.item_answer(item=item, answered_by=user, answer=services.Answer())
    services.campaign_close(campaign=campaign, closed_by=leads.staff)
    with pytest.raises(Conflict):
        services.item_answer(item=item, answered_by=leads.lead, answer=services.Answer())
    item.refresh_from_db()
    assert item.status == Item.Status.EXPIRED
    assert not Ownership.objects.filter(service=leads.service).exists()


def test_bulk_confirm_answers_the_allowed_items_and_reports_the_others(leads):
    mine = [service_make(owner=leads.owner_team, slug=f"pay-{n}") for n in range(3)]
    theirs = service_make(owner=leads.other_team, slug="search-api")
    campaign = services.campaign_open(
        opened_by=leads.staff, title="All", scope={}, due_on=timezone.localdate() + timedelta(days=7)
    )
    items = list(Item.objects.select_related("service", "campaign").filter(campaign=campaign))
    done, refused = services.items_confirm(items=items, answered_by=leads.lead, comment="still ours")
    assert {item.service_id for item in done} == {s.pk for s in [*mine, leads.service]}
    assert list(refused) == [Item.objects.get(campaign=campaign, service=theirs).pk]
    assert Ownership.objects.filter(verified_by=leads.lead).count() == 4
    done_again, refused_again = services.items_confirm(items=items, answered_by=leads.lead)
    assert not done_again and len(refused_again) == 5  # answered already, or not theirs


def test_handover_waits_for_the_receiving_lead_then_moves_the_service(campaign, leads):
    item = _item(campaign, leads.service)
    services.item_answer(
        item=item, answered_by=leads.lead, answer=services.Answer(ownership="handover", handover_to=leads.other_team)
    )
    handover = Handover.objects.get(service=leads.service)
    assert handover.status == Handover.Status.PROPOSED
    assert Service.objects.get(pk=leads.service.pk).owner == leads.owner_team  # nothing moved yet
    with pytest.raises(PermissionDenied):
        services.handover_accept(handover=handover, decided_by=leads.outsider)  # a member, not a lead
    services.handover_accept(handover=handover, decided_by=leads.other_lead, note="ours now")
    service = Service.objects.get(pk=leads.service.pk)
    assert service.owner == leads.other_team
    assert leads.other_lead.has_perm("catalog.change_service", service)
    assert Ownership.objects.get(service=service).verified_by == leads.other_lead
    with pytest.raises(Conflict):
        services.handover_decline(handover=handover, decided_by=leads.other_lead)


def test_a_declined_handover_leaves_the_owner_and_reopens_the_item(campaign, leads):
    item = _item(campaign, leads.service)
    services.item_answer(
        item=item, answered_by=leads.lead, answer=services.Answer(ownership="handover", handover_to=leads.other_team)
    )
    handover = Handover.objects.get(service=leads.service)
    services.handover_decline(handover=handover, decided_by=leads.other_lead, note="not ours either")
    item.refresh_from_db()
    assert Service.objects.get(pk=leads.service.pk).owner == leads.owner_team
    assert item.status == Item.Status.OPEN
    assert item.outcome[-1]["kind"] == "reopened"
    assert AuditEvent.objects.filter(action="handover.declined", actor=leads.other_lead).exists()


def test_not_ours_flags_the_service_orphaned_for_the_admins(campaign, leads):
    item = _item(campaign, leads.service)
    services.item_answer(item=item, answered_by=leads.lead, answer=services.Answer(ownership="not_ours"))
    assert Ownership.objects.get(service=leads.service).orphaned_since is not None
    admin_item = Item.objects.get(campaign__kind=Campaign.Kind.EVENT, service=leads.service)
    assert admin_item.audience == Item.Audience.ADMINS
    with pytest.raises(PermissionDenied):
        services.item_answer(item=admin_item, answered_by=leads.lead, answer=services.Answer())
    services.item_answer(
        item=admin_item,
        answered_by=leads.staff,
        answer=services.Answer(ownership="handover", handover_to=leads.other_team),
    )
    assert Service.objects.get(pk=leads.service.pk).owner == leads.other_team  # an admin transfers directly
    assert Ownership.objects.get(service=leads.service).orphaned_since is None


def test_retire_opens_the_decommission_request(campaign, leads):
    from deployments.models import Decommission

    item = _item(campaign, leads.service)
    services.item_answer(
        item=item,
        answered_by=leads.lead,
        answer=services.Answer(retire=True, retire_reason="Replaced by ledger v2 last quarter"),
    )
    decommission = Decommission.objects.get(service=leads.service)
    assert decommission.requested_by == leads.lead
    assert "Replaced by ledger" in decommission.reason
