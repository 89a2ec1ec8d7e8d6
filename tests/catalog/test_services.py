"""Catalog writes: ownership grants, transfers, dependencies and their invariants."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from guardian.shortcuts import get_perms

from audit.models import AuditEvent
from catalog import services
from catalog.models import Dependency, Service
from tests.factories import TeamFactory, service_make

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]
User = get_user_model()


def test_create_grants_the_owner_team_its_permissions(world):
    perms = set(get_perms(world.owner_team.group, world.service))
    assert perms == {"change_service", "deploy_service", "decommission_service"}
    owner = User.objects.get(pk=world.owner.pk)  # guardian caches permissions per user object
    assert owner.has_perm("catalog.deploy_service", world.service)
    outsider = User.objects.get(pk=world.outsider.pk)
    assert not outsider.has_perm("catalog.change_service", world.service)


def test_only_members_or_staff_can_register_for_a_team(world):
    with pytest.raises(PermissionDenied):
        services.service_create(created_by=world.outsider, owner=world.owner_team, slug="nope", name="Nope")
    assert not Service.objects.filter(slug="nope").exists()
    created = services.service_create(created_by=world.staff, owner=world.owner_team, slug="yes", name="Yes")
    assert created.owner == world.owner_team


def test_duplicate_slug_is_a_field_error_and_writes_nothing(world):
    count = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as error:
        services.service_create(created_by=world.owner, owner=world.owner_team, slug="payments-api", name="Again")
    assert "slug" in error.value.message_dict
    assert Service.objects.count() == 1 and AuditEvent.objects.count() == count


def test_tier_out_of_range_is_refused(world):
    with pytest.raises(ValidationError) as error:
        services.service_create(created_by=world.owner, owner=world.owner_team, slug="t7", name="T7", tier=7)
    assert "tier" in error.value.message_dict


def test_transfer_moves_grants_and_records_both_owners(world):
    services.service_transfer(
        service=world.service, new_owner=world.other_team, transferred_by=world.owner, note="search owns it now"
    )
    assert get_perms(world.owner_team.group, world.service) == []
    assert set(get_perms(world.other_team.group, world.service)) == {
        "change_service",
        "deploy_service",
        "decommission_service",
    }
    event = AuditEvent.objects.get(action="service.transferred")
    assert event.before == {"owner": "payments"}
    assert event.after == {"owner": "search", "note": "search owns it now"}


def test_transfer_to_the_current_owner_is_refused(world):
    with pytest.raises(ValidationError):
        services.service_transfer(service=world.service, new_owner=world.owner_team, transferred_by=world.owner)


def test_self_dependency_and_duplicates_are_refused_but_cycles_are_allowed(world):
    other = service_make(owner=world.owner_team, slug="ledger")
    with pytest.raises(ValidationError) as error:
        services.dependency_add(source=world.service, target=world.service, kind="runtime", added_by=world.owner)
    assert "target" in error.value.message_dict
    services.dependency_add(source=world.service, target=other, kind="runtime", added_by=world.owner)
    with pytest.raises(ValidationError):
        services.dependency_add(source=world.service, target=other, kind="runtime", added_by=world.owner)
    services.dependency_add(source=other, target=world.service, kind="runtime", added_by=world.owner)
    assert Dependency.objects.count() == 2


def test_tags_are_normalised_and_shared(world):
    services.service_update(service=world.service, updated_by=world.owner, tags=["PCI", " python ", "pci"])
    second = service_make(owner=TeamFactory(), tags=["python"])
    assert sorted(world.service.tags.values_list("name", flat=True)) == ["pci", "python"]
    assert second.tags.get().pk == world.service.tags.get(name="python").pk


def test_a_slug_with_a_trailing_newline_is_refused(world):
    """A regex ending in $ matches before a final newline; the validators use \\Z so that "api\\n" is refused."""
    with pytest.raises(ValidationError) as error:
        services.service_create(created_by=world.owner, owner=world.owner_team, slug="orders-api\n", name="Orders")
    assert "slug" in error.value.message_dict
