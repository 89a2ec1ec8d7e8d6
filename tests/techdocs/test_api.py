"""Runbook and ADR API: filters, permissions as on the pages, versions on every edit, reviews, superseding."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from techdocs import services
from techdocs.models import ADR, Runbook, RunbookVersion
from tests.factories import service_make

pytestmark = [pytest.mark.django_db]

RUNBOOKS = "/api/v1/runbooks/"
ADRS = "/api/v1/adrs/"


def _runbook(service, user, **fields) -> Runbook:  # type: ignore[no-untyped-def]
    fields.setdefault("title", "On-call")
    fields.setdefault("body", "Page the rota.")
    return services.runbook_create(service=service, created_by=user, **fields)


def _make_stale(runbook: Runbook) -> None:
    reviewed = timezone.now() - timedelta(days=runbook.review_interval_days + 10)
    Runbook.objects.filter(pk=runbook.pk).update(
        last_reviewed_at=reviewed, review_due_at=reviewed + timedelta(days=runbook.review_interval_days)
    )


def _slugs(response) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [(row["service"], row["slug"]) for row in response.json()["results"]]


# --- runbooks ---------------------------------------------------------------------------------------------------


def test_runbook_list_filters_by_service_and_staleness(api_client, world):
    other = service_make(owner=world.other_team, slug="search-api")
    stale = _runbook(world.service, world.owner, title="Stale one")
    _runbook(world.service, world.owner, title="Fresh one")
    _runbook(other, world.outsider, title="Elsewhere")
    _make_stale(stale)
    api_client.force_authenticate(world.outsider)

    assert len(_slugs(api_client.get(RUNBOOKS))) == 3
    assert _slugs(api_client.get(RUNBOOKS, {"service__slug": "payments-api"})) == [
        ("payments-api", "fresh-one"),
        ("payments-api", "stale-one"),
    ]
    stale_rows = api_client.get(RUNBOOKS, {"stale": "true"}).json()["results"]
    assert [(r["slug"], r["is_stale"]) for r in stale_rows] == [("stale-one", True)]
    assert _slugs(api_client.get(RUNBOOKS, {"stale": "false"})) == [
        ("payments-api", "fresh-one"),
        ("search-api", "elsewhere"),
    ]
    assert _slugs(api_client.get(RUNBOOKS, {"stale": "true", "service__slug": "search-api"})) == []


@pytest.mark.smoke
def test_owner_creates_a_runbook(api_client, world):
    api_client.force_authenticate(world.owner)

    response = api_client.post(
        RUNBOOKS, {"service": "payments-api", "title": "Disaster recovery", "body": "# DR", "review_interval_days": 30}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "disaster-recovery" and body["version"] == 1 and body["is_stale"] is False
    assert body["last_reviewed_by"] == "olivia"
    runbook = Runbook.objects.get(pk=body["id"])
    assert (runbook.service, runbook.review_interval_days) == (world.service, 30)
    assert RunbookVersion.objects.filter(runbook=runbook, number=1, author=world.owner).exists()
    assert AuditEvent.objects.filter(action="runbook.created", actor=world.owner).exists()


def test_runbook_can_be_created_without_a_body(api_client, world):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNBOOKS, {"service": "payments-api", "title": "To write"})
    assert response.status_code == 201, response.content
    assert Runbook.objects.get(slug="to-write").body == ""


@pytest.mark.smoke
def test_outsider_cannot_create_a_runbook_for_someone_elses_service(api_client, world):
    api_client.force_authenticate(world.outsider)
    response = api_client.post(RUNBOOKS, {"service": "payments-api", "title": "Mine now", "body": "x"})
    assert response.status_code == 403
    assert not Runbook.objects.exists()
    assert not AuditEvent.objects.filter(action="runbook.created").exists()


def test_anonymous_gets_401(api_client, world):
    assert api_client.get(RUNBOOKS).status_code == 401
    assert api_client.post(RUNBOOKS, {"service": "payments-api", "title": "x"}).status_code == 401
    assert api_client.get(ADRS).status_code == 401


def test_duplicate_runbook_slug_is_a_400(api_client, world):
    _runbook(world.service, world.owner)
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNBOOKS, {"service": "payments-api", "title": "On-call", "body": "again"})
    assert response.status_code == 400
    assert Runbook.objects.count() == 1


def test_patch_creates_a_new_version_listed_under_versions(api_client, world):
    runbook = _runbook(world.service, world.owner)
    api_client.force_authenticate(world.staff)

    response = api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"body": "Page the rota twice.", "note": "clearer"})

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2 and response.json()["title"] == "On-call"
    runbook.refresh_from_db()
    assert (runbook.version, runbook.body) == (2, "Page the rota twice.")
    versions = api_client.get(f"{RUNBOOKS}{runbook.pk}/versions/")
    assert versions.status_code == 200
    rows = versions.json()["results"]
    assert [(r["number"], r["author"], r["body"], r["note"]) for r in rows] == [
        (2, "stella", "Page the rota twice.", "clearer"),
        (1, "olivia", "Page the rota.", "created"),
    ]


def test_patch_without_changes_adds_no_version(api_client, world):
    runbook = _runbook(world.service, world.owner)
    api_client.force_authenticate(world.owner)
    response = api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"title": "On-call"})
    assert response.status_code == 200 and response.json()["version"] == 1
    assert RunbookVersion.objects.filter(runbook=runbook).count() == 1


def test_outsider_cannot_patch_or_review(api_client, world):
    runbook = _runbook(world.service, world.owner)
    api_client.force_authenticate(world.outsider)
    assert api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"body": "defaced"}).status_code == 403
    assert api_client.post(f"{RUNBOOKS}{runbook.pk}/review/").status_code == 403
    runbook.refresh_from_db()
    assert (runbook.version, runbook.body) == (1, "Page the rota.")
    assert not AuditEvent.objects.filter(action="runbook.reviewed").exists()


def test_the_service_of_a_runbook_cannot_be_moved(api_client, world):
    runbook = _runbook(world.service, world.owner)
    service_make(owner=world.owner_team, slug="ledger")
    api_client.force_authenticate(world.owner)
    response = api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"service": "ledger", "body": "moved?"})
    assert response.status_code == 200
    assert Runbook.objects.get(pk=runbook.pk).service == world.service


@pytest.mark.smoke
def test_imported_runbook_cannot_be_patched(api_client, world):
    runbook = _runbook(world.service, world.owner, source_path="payments-api/docs/runbook.md")
    api_client.force_authenticate(world.owner)

    response = api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"body": "edited here"})

    assert response.status_code == 400
    assert "payments-api/docs/runbook.md" in response.json()["source_path"][0]
    runbook.refresh_from_db()
    assert (runbook.version, runbook.body) == (1, "Page the rota.")
    # The source path itself is read-only.
    plain = _runbook(world.service, world.owner, title="Plain")
    api_client.patch(f"{RUNBOOKS}{plain.pk}/", {"source_path": "x.md"})
    assert Runbook.objects.get(pk=plain.pk).source_path == ""


def test_review_endpoint_records_a_review(api_client, world):
    runbook = _runbook(world.service, world.owner)
    _make_stale(runbook)
    api_client.force_authenticate(world.staff)

    response = api_client.post(f"{RUNBOOKS}{runbook.pk}/review/")

    assert response.status_code == 200
    assert response.json()["is_stale"] is False and response.json()["last_reviewed_by"] == "stella"
    runbook.refresh_from_db()
    assert not runbook.is_stale and runbook.version == 1
    assert AuditEvent.objects.filter(action="runbook.reviewed", actor=world.staff).count() == 1


def test_runbook_list_queries_do_not_grow(api_client, world, django_assert_max_num_queries):
    api_client.force_authenticate(world.owner)
    counts = []
    for total in (3, 30):
        while Runbook.objects.count() < total:
            _runbook(world.service, world.owner, title=f"Runbook {Runbook.objects.count()}")
        with django_assert_max_num_queries(4) as captured:
            response = api_client.get(RUNBOOKS)
        assert response.status_code == 200 and response.json()["count"] == total
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


# --- ADRs -------------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_adr_create_with_supersedes_by_number(api_client, world):
    old = services.adr_create(created_by=world.owner, service=world.service, title="Use MySQL", status="accepted")
    api_client.force_authenticate(world.owner)

    response = api_client.post(
        ADRS, {"service": "payments-api", "title": "Use PostgreSQL", "status": "accepted", "supersedes": 1}
    )

    assert response.status_code == 201, response.content
    assert response.json()["number"] == 2 and response.json()["superseded_by"] is None
    old.refresh_from_db()
    assert old.status == ADR.Status.SUPERSEDED
    assert old.superseded_by.number == 2
    listed = api_client.get(ADRS, {"service__slug": "payments-api"}).json()["results"]
    assert [(a["number"], a["status"], a["superseded_by"]) for a in listed] == [
        (1, "superseded", 2),
        (2, "accepted", None),
    ]
    assert [a["number"] for a in api_client.get(ADRS, {"status": "superseded"}).json()["results"]] == [1]


def test_adr_numbers_follow_on_per_service(api_client, world):
    other = service_make(owner=world.other_team, slug="search-api")
    services.adr_create(created_by=None, service=other, title="Elsewhere")
    api_client.force_authenticate(world.owner)
    numbers = [api_client.post(ADRS, {"service": "payments-api", "title": f"D{i}"}).json()["number"] for i in range(3)]
    assert numbers == [1, 2, 3]


def test_adr_supersedes_an_unknown_number_is_a_400(api_client, world):
    api_client.force_authenticate(world.owner)
    response = api_client.post(ADRS, {"service": "payments-api", "title": "Orphan", "supersedes": 9})
    assert response.status_code == 400
    assert "supersedes" in response.json()
    assert not ADR.objects.exists()


def test_adr_cannot_supersede_another_services_adr(api_client, world):
    other = service_make(owner=world.other_team, slug="search-api")
    foreign = services.adr_create(created_by=None, service=other, title="Elsewhere")
    api_client.force_authenticate(world.owner)
    # The number is looked up within the new ADR's own service, which has no ADR 1.
    response = api_client.post(ADRS, {"service": "payments-api", "title": "Sneaky", "supersedes": 1})
    assert response.status_code == 400
    foreign.refresh_from_db()
    assert foreign.superseded_by is None and not ADR.objects.filter(service=world.service).exists()


def test_superseded_status_cannot_be_set_directly(api_client, world):
    adr = services.adr_create(created_by=world.owner, service=world.service, title="One")
    api_client.force_authenticate(world.owner)

    created = api_client.post(ADRS, {"service": "payments-api", "title": "Two", "status": "superseded"})
    patched = api_client.patch(f"{ADRS}{adr.pk}/", {"status": "superseded"})

    assert created.status_code == 400 and "status" in created.json()
    assert patched.status_code == 400 and "status" in patched.json()
    adr.refresh_from_db()
    assert adr.status == ADR.Status.PROPOSED
    assert ADR.objects.count() == 1


def test_adr_permissions_and_imported_adrs(api_client, world):
    adr = services.adr_create(created_by=world.owner, service=world.service, title="One")
    imported = services.adr_create(
        created_by=None, service=world.service, title="Imported", source_path="payments-api/docs/adr/0002-imported.md"
    )
    api_client.force_authenticate(world.outsider)
    assert api_client.post(ADRS, {"service": "payments-api", "title": "Nope"}).status_code == 403
    assert api_client.patch(f"{ADRS}{adr.pk}/", {"title": "Nope"}).status_code == 403

    api_client.force_authenticate(world.owner)
    response = api_client.patch(f"{ADRS}{imported.pk}/", {"title": "Changed"})
    assert response.status_code == 400 and "source_path" in response.json()
    ok = api_client.patch(f"{ADRS}{adr.pk}/", {"status": "accepted"})
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"
    assert ADR.objects.get(pk=imported.pk).title == "Imported"
    assert ADR.objects.count() == 2


def test_adr_list_queries_do_not_grow(api_client, world, django_assert_max_num_queries):
    api_client.force_authenticate(world.owner)
    counts = []
    for total in (3, 30):
        while ADR.objects.count() < total:
            previous = ADR.objects.order_by("-number").first()
            services.adr_create(created_by=None, service=world.service, title="Decision", supersedes=previous)
        with django_assert_max_num_queries(4) as captured:
            response = api_client.get(ADRS)
        assert response.status_code == 200 and response.json()["count"] == total
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_catalog_api_filters_services_with_stale_runbooks(api_client, world):
    runbook = _runbook(world.service, world.owner)
    service_make(owner=world.other_team, slug="search-api")
    api_client.force_authenticate(world.outsider)
    assert [s["slug"] for s in api_client.get("/api/v1/services/", {"stale": "yes"}).json()["results"]] == []
    _make_stale(runbook)
    assert [s["slug"] for s in api_client.get("/api/v1/services/", {"stale": "yes"}).json()["results"]] == [
        "payments-api"
    ]
    assert [s["slug"] for s in api_client.get("/api/v1/services/", {"stale": "no"}).json()["results"]] == ["search-api"]
