"""The audit log is append-only and written in the same transaction as the change it records."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction

from audit import services as audit
from audit.models import AuditEvent
from catalog import services as catalog_services
from catalog.models import Service

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_model_refuses_update_and_delete(world):
    event = AuditEvent.objects.filter(action="service.created").get()
    event.action = "service.forged"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "service.created"


@pytest.mark.postgres_only
def test_database_trigger_refuses_raw_update_and_delete(world):
    event_id = AuditEvent.objects.filter(action="service.created").values_list("pk", flat=True).get()
    table = AuditEvent._meta.db_table
    for statement in (f"UPDATE {table} SET action = 'forged' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event_id])
    assert AuditEvent.objects.get(pk=event_id).action == "service.created"


@pytest.mark.postgres_only
def test_database_trigger_refuses_truncate(world):
    """TRUNCATE fires no row trigger; a statement-level one refuses it, unless the session was told the test flush is
    running (test settings set `runway.audit_truncate`; here it is switched off for this transaction only)."""
    table = AuditEvent._meta.db_table
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL runway.audit_truncate = 'refuse'")
        cursor.execute(f"TRUNCATE {table}")
    assert AuditEvent.objects.filter(action="service.created").count() == 1


@pytest.mark.smoke
def test_queryset_update_is_refused_by_the_database_or_left_alone(world, is_postgres):
    """A bulk queryset update bypasses the model; on PostgreSQL the trigger still stops it."""
    if not is_postgres:
        assert AuditEvent.objects.filter(action="service.created").count() == 1
        return
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(action="service.created").update(action="forged")


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(world):
    with pytest.raises(RuntimeError, match="transaction"):
        audit.event_record(actor=None, action="service.poked", target=world.service)


@pytest.mark.smoke
def test_a_failed_change_leaves_no_audit_event(world):
    """service_update fails on a bad tag after saving the fields: the rollback takes the audit row with it."""
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError):
        catalog_services.service_update(
            service=world.service, updated_by=world.owner, description="new", tags=["Not A Tag!"]
        )
    assert AuditEvent.objects.count() == before
    assert Service.objects.get(pk=world.service.pk).description == ""


@pytest.mark.smoke
def test_update_records_only_changed_fields(world):
    catalog_services.service_update(
        service=world.service, updated_by=world.owner, description="Takes payments", tags=["pci"]
    )
    event = AuditEvent.objects.filter(action="service.updated").get()
    assert event.before == {"description": "", "tags": []}
    assert event.after == {"description": "Takes payments", "tags": ["pci"]}
    assert event.actor_repr == "olivia"
    assert event.service_id == world.service.pk


def test_audit_page_filters_by_service_and_action(client, world):
    other = catalog_services.service_create(created_by=None, owner=world.other_team, slug="search-api", name="Search")
    client.force_login(world.outsider)
    response = client.get("/audit/", {"service": world.service.pk, "action": "service."})
    events = list(response.context["page"].object_list)
    assert events and all(event.service_id == world.service.pk for event in events)
    assert other.pk not in {event.service_id for event in events}
