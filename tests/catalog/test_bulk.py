"""catalog.bulk: the import's inserts write the rows bulk_create would, and big writes leave the GIN indexes as set."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from catalog import bulk
from catalog.models import Dependency, Service
from techdocs.models import ADR, Runbook, RunbookVersion
from tests.factories import TeamFactory, service_make

pytestmark = pytest.mark.django_db


def _runbooks(service: Service, count: int) -> list[Runbook]:
    reviewed = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
    return [
        Runbook(
            service=service,
            slug=f"rb-{n}",
            title=f'Runbook {n} \t\\ "quoted"\nline',
            body="Body with a tab\tand a backslash \\ and ünïcode.",
            last_reviewed_at=reviewed if n % 2 else None,
            review_due_at=reviewed + dt.timedelta(days=90) if n % 2 else None,
        )
        for n in range(count)
    ]


def test_objects_insert_writes_what_bulk_create_writes_and_numbers_the_objects():
    service = service_make(owner=TeamFactory(), slug="ledger")
    inserted, created = _runbooks(service, 5), _runbooks(service_make(owner=service.owner, slug="web"), 5)

    bulk.objects_insert(Runbook, inserted)
    Runbook.objects.bulk_create(created)

    assert all(not r._state.adding for r in inserted)
    assert [r.pk for r in inserted] == sorted(r.pk for r in inserted)
    fields = [f.attname for f in Runbook._meta.concrete_fields if f.attname not in ("id", "service_id")]
    stored = list(Runbook.objects.filter(pk__in=[r.pk for r in inserted]).order_by("pk").values(*fields))
    expected = list(Runbook.objects.filter(pk__in=[r.pk for r in created]).order_by("pk").values(*fields))
    for row in stored + expected:  # set at insert time by each
        row.pop("created_at"), row.pop("updated_at")
    assert stored == expected
    # Objects inserted just before can be referred to at once, as after bulk_create.
    bulk.objects_insert(RunbookVersion, [RunbookVersion(runbook=r, number=1, title=r.title) for r in inserted])
    assert RunbookVersion.objects.filter(runbook__in=inserted).count() == 5


def test_objects_insert_prepares_json_dates_and_naive_datetimes_as_django_does(settings):
    settings.TIME_ZONE = "Europe/Paris"
    service = service_make(owner=TeamFactory(), slug="ledger")
    event = AuditEvent(action="x.y", object_type="t", object_id="1", after={"a": [1, "é"]}, service_id=service.pk)
    adr = ADR(service=service, number=7, title="T", date=dt.date(2025, 6, 1))
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        bulk.objects_insert(Runbook, [Runbook(service=service, slug="naive", last_reviewed_at=dt.datetime(2026, 1, 1))])
    bulk.objects_insert(AuditEvent, [event])
    bulk.objects_insert(ADR, [adr])

    assert AuditEvent.objects.get(pk=event.pk).after == {"a": [1, "é"]}
    assert AuditEvent.objects.get(pk=event.pk).before is None
    assert ADR.objects.get(pk=adr.pk).date == dt.date(2025, 6, 1)
    reviewed = Runbook.objects.get(slug="naive").last_reviewed_at
    assert reviewed == timezone.make_aware(dt.datetime(2026, 1, 1))  # in TIME_ZONE, not UTC


def test_rows_insert_skips_conflicting_rows_when_asked():
    owner = TeamFactory()
    a, b, c = (service_make(owner=owner, slug=slug) for slug in ("a", "b", "c"))
    now = timezone.now()
    Dependency.objects.create(source=a, target=b, kind="runtime")

    bulk.rows_insert(
        Dependency,
        ["source_id", "target_id", "kind", "created_at"],
        [
            (a.pk, b.pk, "runtime", now),
            (a.pk, c.pk, "build", now),
            (a.pk, c.pk, "build", now),
            (b.pk, c.pk, "data", now),
        ],
        ignore_conflicts=True,
    )
    bulk.rows_insert(Service.tags.through, ["service_id", "tag_id"], [])

    edges = sorted(Dependency.objects.values_list("source__slug", "target__slug", "kind"))
    assert edges == [("a", "b", "runtime"), ("a", "c", "build"), ("b", "c", "data")]


@pytest.mark.postgres_only
def test_a_large_write_leaves_the_trigram_indexes_as_they_were(monkeypatch):
    """They keep a small pending list (catalog/migrations/0017), which a bulk write leaves as it is; an index kept
    without one (fastupdate off) would have it switched on for the write and off again after."""
    monkeypatch.setattr(bulk, "GIN_BULK_ROWS", 2)
    owner = TeamFactory()
    services = [Service(slug=f"svc-{n}", name=f"Ledger {n}", owner=owner) for n in range(3)]

    with bulk.gin_bulk_writes(Service, rows=len(services)):
        bulk.objects_insert(Service, services)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reloptions FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'catalog_service'::regclass "
            "AND c.relname LIKE %s ORDER BY 1",
            ["%trgm"],
        )
        indexes = cursor.fetchall()
    small_list = ["fastupdate=on", "gin_pending_list_limit=64"]
    assert indexes == [
        ("catalog_service_description_trgm", small_list),
        ("catalog_service_name_trgm", small_list),
        ("catalog_service_slug_trgm", small_list),
    ]
    assert Service.objects.filter(name__icontains="ledger 1").get().slug == "svc-1"
