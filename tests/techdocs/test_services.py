"""TechDocs writes: runbook versions and reviews, ADR numbering and superseding, each with its audit trail."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from catalog import selectors as catalog_selectors
from catalog.models import Service
from techdocs import selectors, services
from techdocs.models import ADR, Runbook, RunbookVersion
from tests.factories import SystemFactory, service_make

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def _runbook(world, **fields) -> Runbook:  # type: ignore[no-untyped-def]
    fields.setdefault("title", "On-call")
    fields.setdefault("body", "Page the payments rota.\nCheck the ledger.")
    return services.runbook_create(service=world.service, created_by=world.owner, **fields)


def _make_stale(runbook: Runbook, days_overdue: int = 10) -> None:
    """Last reviewed longer ago than its interval (written with update(), as save() recomputes the due date)."""
    reviewed = timezone.now() - timedelta(days=runbook.review_interval_days + days_overdue)
    Runbook.objects.filter(pk=runbook.pk).update(
        last_reviewed_at=reviewed, review_due_at=reviewed + timedelta(days=runbook.review_interval_days)
    )


def _actions(**filters: object) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("pk").values_list("action", flat=True))


# --- runbooks ---------------------------------------------------------------------------------------------------


def test_runbook_create_writes_version_1_and_an_audit_event(world):
    runbook = _runbook(world)

    runbook.refresh_from_db()
    assert runbook.version == 1
    assert runbook.slug == "on-call"
    assert runbook.last_reviewed_by == "olivia"
    assert runbook.review_due_at == runbook.last_reviewed_at + timedelta(days=90)
    assert not runbook.is_stale
    (version,) = RunbookVersion.objects.filter(runbook=runbook)
    assert (version.number, version.title, version.body) == (1, "On-call", runbook.body)
    assert version.author == world.owner and version.author_repr == "olivia"
    event = AuditEvent.objects.get(action="runbook.created")
    assert event.actor == world.owner
    assert event.service_id == world.service.pk
    assert event.object_id == str(runbook.pk)
    assert event.after == {"title": "On-call", "slug": "on-call"}


def test_runbook_update_adds_version_2_and_keeps_version_1(world):
    runbook = _runbook(world)
    v1 = RunbookVersion.objects.get(runbook=runbook, number=1)

    updated = services.runbook_update(
        runbook=runbook, updated_by=world.staff, title="On-call", body="Page the payments rota.", note="trimmed"
    )

    assert updated.version == 2
    assert Runbook.objects.get(pk=runbook.pk).version == 2
    versions = {v.number: v for v in RunbookVersion.objects.filter(runbook=runbook)}
    assert set(versions) == {1, 2}
    # Version 1 is untouched: its text, author and time are what they were.
    assert versions[1].body == "Page the payments rota.\nCheck the ledger."
    assert versions[1].author == world.owner and versions[1].created_at == v1.created_at
    assert versions[2].body == "Page the payments rota."
    assert versions[2].author == world.staff and versions[2].author_repr == "stella"
    assert versions[2].note == "trimmed"
    assert versions[2].created_at >= versions[1].created_at
    event = AuditEvent.objects.get(action="runbook.updated")
    assert event.actor == world.staff and event.after == {"version": 2, "note": "trimmed"}
    # An edit counts as a review.
    assert updated.last_reviewed_by == "stella"


def test_runbook_update_without_changes_writes_nothing(world):
    runbook = _runbook(world)
    before = Runbook.objects.get(pk=runbook.pk)
    events = AuditEvent.objects.count()

    same = services.runbook_update(
        runbook=runbook, updated_by=world.staff, title=runbook.title, body=runbook.body, note="nothing really"
    )

    assert same.version == 1
    after = Runbook.objects.get(pk=runbook.pk)
    assert (after.version, after.updated_at, after.last_reviewed_at) == (1, before.updated_at, before.last_reviewed_at)
    assert RunbookVersion.objects.filter(runbook=runbook).count() == 1
    assert AuditEvent.objects.count() == events


def test_runbook_update_rejects_invalid_interval_and_keeps_state(world):
    runbook = _runbook(world)
    with pytest.raises(ValidationError) as error:
        services.runbook_update(runbook=runbook, updated_by=world.owner, title="x", body="y", review_interval_days=0)
    assert "review_interval_days" in error.value.message_dict
    assert Runbook.objects.get(pk=runbook.pk).version == 1
    assert RunbookVersion.objects.filter(runbook=runbook).count() == 1
    assert _actions().count("runbook.updated") == 0


def test_runbook_slug_is_unique_per_service(world):
    _runbook(world)
    with pytest.raises(ValidationError):
        _runbook(world)
    assert Runbook.objects.count() == 1
    # Another service may use the same slug.
    other = service_make(owner=world.other_team, slug="search-api")
    services.runbook_create(service=other, title="On-call", body="", created_by=world.outsider)
    assert Runbook.objects.filter(slug="on-call").count() == 2


def test_runbook_past_its_review_date_is_stale(world):
    runbook = _runbook(world)
    _make_stale(runbook)
    runbook.refresh_from_db()

    assert runbook.is_stale
    assert list(selectors.runbook_list_stale()) == [runbook]
    fresh_service = service_make(owner=world.owner_team, slug="ledger")
    marked = catalog_selectors.services_mark_stale([world.service, fresh_service])
    assert [s.has_stale_runbook for s in marked] == [True, False]
    stale_services = Service.objects.filter(catalog_selectors.stale_runbook_exists())
    assert list(stale_services) == [world.service]


def test_fresh_runbook_is_not_stale(world):
    runbook = _runbook(world)
    assert not runbook.is_stale
    assert list(selectors.runbook_list_stale()) == []
    (marked,) = catalog_selectors.services_mark_stale([world.service])
    assert marked.has_stale_runbook is False
    assert not Service.objects.filter(catalog_selectors.stale_runbook_exists()).exists()


def test_mark_reviewed_records_the_review_and_unstales(world):
    runbook = _runbook(world)
    _make_stale(runbook)
    runbook.refresh_from_db()
    old_review = runbook.last_reviewed_at

    reviewed = services.runbook_mark_reviewed(runbook=runbook, reviewed_by=world.staff)

    stored = Runbook.objects.get(pk=runbook.pk)
    assert stored.last_reviewed_by == "stella"
    assert stored.last_reviewed_at > old_review
    assert stored.review_due_at == stored.last_reviewed_at + timedelta(days=stored.review_interval_days)
    assert not stored.is_stale and not reviewed.is_stale
    assert stored.version == 1  # a review is not an edit
    assert RunbookVersion.objects.filter(runbook=runbook).count() == 1
    event = AuditEvent.objects.get(action="runbook.reviewed")
    assert event.actor == world.staff
    assert event.service_id == world.service.pk
    assert event.before == {"last_reviewed_at": old_review.isoformat()}
    assert event.after == {"last_reviewed_at": stored.last_reviewed_at.isoformat()}


def test_version_diff_lists_added_and_removed_lines(world):
    runbook = _runbook(world, body="keep\nold line\n")
    services.runbook_update(runbook=runbook, updated_by=world.owner, title="On-call", body="keep\nnew line\n")
    older, newer = (RunbookVersion.objects.get(runbook=runbook, number=n) for n in (1, 2))

    diff = selectors.version_diff(older=older, newer=newer)

    assert ("del", "-old line") in diff
    assert ("add", "+new line") in diff
    assert ("same", " keep") in diff
    assert ("file", "--- version 1") in diff and ("file", "+++ version 2") in diff


# --- ADRs -------------------------------------------------------------------------------------------------------


def test_adr_numbers_are_the_next_free_number_per_service(world):
    numbers = [
        services.adr_create(created_by=world.owner, service=world.service, title=f"D{i}").number for i in range(3)
    ]
    other = service_make(owner=world.other_team, slug="search-api")
    first_of_other = services.adr_create(created_by=world.outsider, service=other, title="Elastic")

    assert numbers == [1, 2, 3]
    assert first_of_other.number == 1
    assert services.adr_next_number(service=world.service) == 4
    assert _actions(action="adr.created") == ["adr.created"] * 4


def test_adr_numbers_per_system_are_separate_from_services(world):
    system = SystemFactory(owner=world.owner_team)
    services.adr_create(created_by=world.owner, service=world.service, title="Service decision")
    first = services.adr_create(created_by=world.owner, system=system, title="System decision")
    second = services.adr_create(created_by=world.owner, system=system, title="Another")

    assert (first.number, second.number) == (1, 2)
    assert first.service is None and first.system == system
    assert services.adr_next_number(service=world.service) == 2


def test_adr_needs_a_service_or_a_system(world):
    with pytest.raises(ValidationError):
        services.adr_create(created_by=world.owner, title="Orphan")
    assert not ADR.objects.exists()


def test_supersedes_marks_the_old_adr_superseded(world):
    old = services.adr_create(created_by=world.owner, service=world.service, title="Use MySQL", status="accepted")

    new = services.adr_create(created_by=world.owner, service=world.service, title="Use PostgreSQL", supersedes=old)

    old.refresh_from_db()
    assert old.status == ADR.Status.SUPERSEDED
    assert old.superseded_by == new
    assert list(new.supersedes.all()) == [old]
    assert new.status == ADR.Status.PROPOSED
    event = AuditEvent.objects.get(action="adr.superseded")
    assert event.object_id == str(old.pk)
    assert event.before == {"status": "accepted"}
    assert event.after == {"status": "superseded", "superseded_by": 2}


def test_superseding_an_adr_of_another_service_writes_nothing(world):
    other = service_make(owner=world.other_team, slug="search-api")
    foreign = services.adr_create(created_by=world.outsider, service=other, title="Elastic", status="accepted")
    events = AuditEvent.objects.count()

    with pytest.raises(ValidationError) as error:
        services.adr_create(created_by=world.owner, service=world.service, title="Sneaky", supersedes=foreign)

    assert "supersedes" in error.value.message_dict
    # The new ADR and its audit event were rolled back with the failed supersede.
    assert not ADR.objects.filter(service=world.service).exists()
    assert AuditEvent.objects.count() == events
    foreign.refresh_from_db()
    assert foreign.status == ADR.Status.ACCEPTED and foreign.superseded_by is None


def test_an_adr_cannot_supersede_itself_or_loop(world):
    first = services.adr_create(created_by=world.owner, service=world.service, title="One")
    second = services.adr_create(created_by=world.owner, service=world.service, title="Two", supersedes=first)

    with pytest.raises(ValidationError):
        services.adr_supersede(old=second, new=second, by=world.owner)
    first.refresh_from_db()
    with pytest.raises(ValidationError):
        services.adr_supersede(old=second, new=first, by=world.owner)
    second.refresh_from_db()
    assert second.status == ADR.Status.PROPOSED and second.superseded_by is None


def test_adr_update_audits_changes_and_cannot_renumber(world):
    adr = services.adr_create(created_by=world.owner, service=world.service, title="One")

    services.adr_update(adr=adr, updated_by=world.owner, status="accepted")
    event = AuditEvent.objects.get(action="adr.updated")
    assert event.before == {"status": "proposed"} and event.after == {"status": "accepted"}

    with pytest.raises(ValueError, match="number"):
        services.adr_update(adr=adr, updated_by=world.owner, number=7)
    assert ADR.objects.get(pk=adr.pk).number == 1
