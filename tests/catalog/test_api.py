"""The catalog API: services (list, filters, paging, bad input, ownership), dependencies, and environments."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from catalog.models import Dependency, Service, Tag
from deployments.models import Environment
from tests.factories import EnvironmentFactory, SystemFactory, TeamFactory, service_make

pytestmark = pytest.mark.django_db

SERVICES_URL = reverse("api:service-list")
DEPENDENCIES_URL = reverse("api:dependency-list")
ENVIRONMENTS_URL = reverse("api:environment-list")


def _slugs(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [row["slug"] for row in response.json()["results"]]


def _fresh(user):  # type: ignore[no-untyped-def]
    """The user re-read from the database: guardian caches permissions on the instance."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def catalog(world):  # type: ignore[no-untyped-def]
    """Six services in two teams and two systems. Sorted by name the slugs read:
    card-vault, edge-proxy-7 (Front Door), ledger, payments-api, query-gateway, search-indexer."""
    payments, search = world.owner_team, world.other_team
    checkout = SystemFactory(slug="checkout", name="Checkout", owner=payments)
    discovery = SystemFactory(slug="discovery", name="Discovery", owner=search)
    service_make(
        owner=payments,
        slug="ledger",
        name="Ledger",
        tier=2,
        lifecycle="production",
        system=checkout,
        tags=["python", "pci"],
        description="Double-entry bookkeeping",
    )
    service_make(
        owner=payments,
        slug="card-vault",
        name="Card Vault",
        tier=1,
        lifecycle="production",
        system=checkout,
        tags=["pci", "go"],
    )
    service_make(owner=search, slug="search-indexer", name="Search Indexer", tier=3, system=discovery, tags=["python"])
    service_make(
        owner=search,
        slug="query-gateway",
        name="Query Gateway",
        tier=4,
        lifecycle="deprecated",
        description="Routes search queries to the ledger replicas",
    )
    service_make(
        owner=search,
        slug="edge-proxy-7",
        name="Front Door",
        tier=3,
        lifecycle="production",
        system=discovery,
        tags=["go"],
    )
    return world


def test_list_is_paginated(api_client, world):
    Service.objects.bulk_create(
        Service(owner=world.owner_team, slug=f"bulk-{n:03d}", name=f"Bulk {n:03d}") for n in range(204)
    )
    api_client.force_authenticate(world.outsider)
    body = api_client.get(SERVICES_URL).json()
    assert set(body) == {"count", "count_exact", "next", "previous", "next_cursor", "results"}
    assert body["count"] == 205
    assert body["count_exact"] is True
    assert len(body["results"]) == 50
    assert body["previous"] is None
    assert "page=2" in body["next"]

    last = api_client.get(SERVICES_URL, {"page": 3, "page_size": 100}).json()
    assert len(last["results"]) == 5
    assert last["next"] is None
    assert last["previous"] is not None


def test_page_size_is_capped_at_200(api_client, world):
    Service.objects.bulk_create(
        Service(owner=world.owner_team, slug=f"bulk-{n:03d}", name=f"Bulk {n:03d}") for n in range(204)
    )
    api_client.force_authenticate(world.owner)
    body = api_client.get(SERVICES_URL, {"page_size": 10000}).json()
    assert body["count"] == 205
    assert len(body["results"]) == 200
    assert body["next"] is not None


def test_list_shape(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    row = next(r for r in api_client.get(SERVICES_URL).json()["results"] if r["slug"] == "ledger")
    assert row["owner"] == "payments"
    assert row["system"] == "checkout"
    assert row["tags"] == ["pci", "python"]
    assert row["tier"] == 2
    assert row["url"].endswith(reverse("api:service-detail", args=["ledger"]))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["card-vault", "edge-proxy-7", "ledger", "payments-api", "query-gateway", "search-indexer"]),
        ({"owner": "payments"}, ["card-vault", "ledger", "payments-api"]),
        ({"owner": "search"}, ["edge-proxy-7", "query-gateway", "search-indexer"]),
        ({"lifecycle": "production"}, ["card-vault", "edge-proxy-7", "ledger"]),
        ({"lifecycle": "deprecated"}, ["query-gateway"]),
        ({"lifecycle": "decommissioned"}, []),
        ({"tier": 1}, ["card-vault", "payments-api"]),
        ({"tier": 3}, ["edge-proxy-7", "search-indexer"]),
        ({"system": "checkout"}, ["card-vault", "ledger"]),
        ({"system": "discovery"}, ["edge-proxy-7", "search-indexer"]),
        ({"tag": "pci"}, ["card-vault", "ledger"]),
        ({"tag": "python"}, ["ledger", "search-indexer"]),
        ({"tag": "go"}, ["card-vault", "edge-proxy-7"]),
        ({"q": "vault"}, ["card-vault"]),  # name
        ({"q": "proxy"}, ["edge-proxy-7"]),  # slug only: its name is Front Door
        ({"q": "bookkeeping"}, ["ledger"]),  # description only
        ({"q": "ledger"}, ["ledger", "query-gateway"]),  # name, and another's description
        ({"q": "LEDGER"}, ["ledger", "query-gateway"]),  # case-insensitive
        ({"q": "search queries"}, ["query-gateway"]),  # every word must match
        ({"q": "nothing-like-this"}, []),
        ({"owner": "payments", "tag": "pci", "tier": 1}, ["card-vault"]),
        ({"lifecycle": "production", "system": "discovery"}, ["edge-proxy-7"]),
    ],
)
def test_filters(api_client, catalog, params, expected):
    api_client.force_authenticate(catalog.outsider)
    assert _slugs(api_client.get(SERVICES_URL, params)) == expected


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["card-vault", "edge-proxy-7", "ledger", "payments-api", "query-gateway", "search-indexer"]),
        ("-name", ["search-indexer", "query-gateway", "payments-api", "ledger", "edge-proxy-7", "card-vault"]),
        # ties keep creation order (the primary key), so that pages never overlap
        ("-tier", ["query-gateway", "search-indexer", "edge-proxy-7", "ledger", "payments-api", "card-vault"]),
        ("tier,-name", ["payments-api", "card-vault", "ledger", "search-indexer", "edge-proxy-7", "query-gateway"]),
        ("owner", ["payments-api", "ledger", "card-vault", "search-indexer", "query-gateway", "edge-proxy-7"]),
        ("-owner", ["search-indexer", "query-gateway", "edge-proxy-7", "payments-api", "ledger", "card-vault"]),
        (
            "lifecycle,name",
            ["query-gateway", "payments-api", "search-indexer", "card-vault", "edge-proxy-7", "ledger"],
        ),
    ],
)
def test_ordering(api_client, catalog, ordering, expected):
    api_client.force_authenticate(catalog.owner)
    assert _slugs(api_client.get(SERVICES_URL, {"ordering": ordering})) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"owner": "nobody"}, "owner"),
        ({"system": "nowhere"}, "system"),
        ({"tag": "no-such-tag"}, "tag"),
        ({"lifecycle": "bogus"}, "lifecycle"),
        ({"tier": 9}, "tier"),
        ({"ordering": "password"}, "ordering"),
    ],
)
def test_unknown_filter_value_is_a_400_field_error(api_client, catalog, params, field):
    api_client.force_authenticate(catalog.owner)
    response = api_client.get(SERVICES_URL, params)
    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert "Select a valid choice" in response.json()[field][0]


def test_api_filter_sets_share_their_form_class_but_never_a_filter_or_a_request():
    """The API's filter set is built cheaply (shared form fields, shallow copies of the filters); each one still
    filters and validates on its own, with its methods bound to itself."""
    from django.http import QueryDict

    from catalog.filters import ServiceApiFilterSet

    first = ServiceApiFilterSet(QueryDict("q=vault&lifecycle=production"), Service.objects.all())
    second = ServiceApiFilterSet(QueryDict("lifecycle=bogus"), Service.objects.all())
    assert first.form.__class__ is second.form.__class__
    for name, spec in ServiceApiFilterSet.base_filters.items():
        assert first.filters[name] is not spec and first.filters[name] is not second.filters[name]
        assert first.filters[name].parent is first and second.filters[name].parent is second
    assert first.filters["q"].filter.method == first.search  # bound to its own filter set, not the class's
    assert first.is_valid() and not second.is_valid()
    assert set(second.errors) == {"lifecycle"} and first.form.cleaned_data["q"] == "vault"


@pytest.mark.postgres_only  # elsewhere the count and the page are two statements
def test_owner_system_and_tag_are_looked_up_inside_the_page_statement(
    api_client, catalog, settings, django_assert_num_queries
):
    """No lookup before the page: the owner's, system's and tag's ids are subqueries of its one statement, and a
    value that names nothing is still a field error (asked only once nothing matched)."""
    settings.CATALOG_API_CACHE = False
    api_client.force_authenticate(catalog.owner)
    owner = catalog.owner_team.slug
    with django_assert_num_queries(1):
        body = api_client.get(SERVICES_URL, {"owner": owner, "system": "checkout", "tag": "pci"}).json()
    assert [row["slug"] for row in body["results"]] == ["card-vault", "ledger"] and body["count"] == 2
    with django_assert_num_queries(1):
        assert _slugs(api_client.get(SERVICES_URL, {"tag": "go", "ordering": "-name"})) == [
            "edge-proxy-7",
            "card-vault",
        ]
    with django_assert_num_queries(3):  # nothing matched: do the owner and the system name something? Yes.
        body = api_client.get(SERVICES_URL, {"owner": owner, "system": "discovery"}).json()
    assert (body["count"], body["results"]) == (0, [])
    response = api_client.get(SERVICES_URL, {"owner": owner, "tag": "no-such-tag"})
    assert response.status_code == 400 and set(response.json()) == {"tag"}
    browsable = api_client.get(SERVICES_URL, {"owner": "nobody"}, HTTP_ACCEPT="text/html")
    assert browsable.status_code == 400 and b"Select a valid choice" in browsable.content


def _services_with_tags_and_systems(count: int) -> None:
    teams = [TeamFactory() for _ in range(3)]
    systems = [SystemFactory(owner=team) for team in teams]
    for n in range(count):
        service_make(owner=teams[n % 3], system=systems[n % 3], tags=[f"tag-{n % 4}", f"lang-{n % 5}"])


def test_list_queries_do_not_grow_with_the_catalog(api_client, world, django_assert_max_num_queries, settings):
    settings.CATALOG_API_CACHE = False  # a miss: on by default with Redis
    api_client.force_authenticate(world.owner)
    counts = []
    for total in (5, 40):
        _services_with_tags_and_systems(total - Service.objects.count())
        # The page and its count: one statement on PostgreSQL, two elsewhere.
        with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 2) as captured:
            body = api_client.get(SERVICES_URL, {"page_size": 200}).json()
        assert body["count"] == total
        assert all(row["tags"] and row["system"] for row in body["results"] if row["slug"] != "payments-api")
        counts.append(len(captured))
    assert counts[0] == counts[1]


@pytest.mark.postgres_only  # elsewhere the count and the page are two statements
def test_page_and_count_are_one_statement_and_agree_with_the_pages(
    api_client, world, settings, django_assert_num_queries
):
    """The count read with the page (portal.pagination.count_capped_with) is the count, exact or estimated (the
    planner's estimate asked inside the same statement); an empty page still says how many match, and a page past the
    end is a 404."""
    settings.CATALOG_API_CACHE = False  # a miss: on by default with Redis
    _services_with_tags_and_systems(11)
    api_client.force_authenticate(world.owner)
    body = api_client.get(SERVICES_URL, {"page_size": 5, "page": 3}).json()
    assert (body["count"], body["count_exact"], len(body["results"])) == (12, True, 2)
    assert body["next"] is None and body["previous"].endswith("page=2&page_size=5")
    assert api_client.get(SERVICES_URL, {"page_size": 5, "page": 4}).status_code == 404
    assert api_client.get(SERVICES_URL, {"page_size": 5, "page": "last"}).json()["results"] == body["results"]
    empty = api_client.get(SERVICES_URL, {"q": "nothing-matches-this"}).json()
    assert (empty["count"], empty["count_exact"], empty["results"], empty["next"]) == (0, True, [], None)
    settings.CATALOG_EXACT_COUNT_UP_TO = 4
    with django_assert_num_queries(1):
        walked = api_client.get(SERVICES_URL, {"page_size": 5, "page": 2}).json()
    assert len(walked["results"]) == 5
    if connection.vendor == "postgresql":
        assert walked["count_exact"] is False and walked["count"] >= 5  # the planner's estimate, past the limit
        assert api_client.get(SERVICES_URL, {"page": "last"}).status_code == 404  # no last page of an estimate


def test_retrieve_by_slug(api_client, catalog, django_assert_max_num_queries):
    api_client.force_authenticate(catalog.outsider)
    with django_assert_max_num_queries(2):
        response = api_client.get(reverse("api:service-detail", args=["card-vault"]))
    assert response.status_code == 200
    assert response.json()["tags"] == ["go", "pci"]
    assert api_client.get(reverse("api:service-detail", args=["no-such-service"])).status_code == 404


def test_anonymous_gets_401(api_client, world):
    assert api_client.get(SERVICES_URL).status_code == 401
    assert api_client.get(reverse("api:service-detail", args=[world.service.slug])).status_code == 401


VALID = {"slug": "refunds", "name": "Refunds", "owner": "payments", "tier": 2, "lifecycle": "production"}


def test_member_creates_a_service_for_their_team(api_client, world):
    api_client.force_authenticate(world.owner)
    response = api_client.post(SERVICES_URL, {**VALID, "tags": ["python", "pci"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "refunds"
    service = Service.objects.get(slug="refunds")
    assert service.owner == world.owner_team
    assert sorted(service.tags.values_list("name", flat=True)) == ["pci", "python"]
    event = AuditEvent.objects.get(action="service.created", service_id=service.pk)
    assert event.actor_id == world.owner.pk
    assert _fresh(world.owner).has_perm("catalog.change_service", service)
    assert not _fresh(world.outsider).has_perm("catalog.change_service", service)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "payments-api"}, "slug"),  # taken
        ({"slug": "Not A Slug"}, "slug"),
        ({"name": "x" * 101}, "name"),
        ({"name": ""}, "name"),
        ({"tier": 7}, "tier"),
        ({"tier": 0}, "tier"),
        ({"owner": "no-such-team"}, "owner"),
        ({"lifecycle": "bogus"}, "lifecycle"),
        ({"system": "no-such-system"}, "system"),
        ({"tags": ["Not A Tag!"]}, "tags"),
        ({"tags": ["fine", "Not A Tag!"]}, "tags"),  # nothing of a half-good list is written either
        ({"tags": [f"t{n}" for n in range(31)]}, "tags"),
        ({"repository_url": "not a url"}, "repository_url"),
    ],
)
def test_bad_input_is_a_400_on_the_field_and_writes_nothing(api_client, world, change, field):
    api_client.force_authenticate(world.owner)
    counts = Service.objects.count(), AuditEvent.objects.count(), Tag.objects.count()
    response = api_client.post(SERVICES_URL, {**VALID, **change}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {field}, response.json()
    assert (Service.objects.count(), AuditEvent.objects.count(), Tag.objects.count()) == counts


def test_creating_for_a_team_you_are_not_in_is_403(api_client, world):
    api_client.force_authenticate(world.outsider)
    counts = Service.objects.count(), AuditEvent.objects.count()
    response = api_client.post(SERVICES_URL, VALID, format="json")
    assert response.status_code == 403
    assert (Service.objects.count(), AuditEvent.objects.count()) == counts


def test_staff_may_create_for_any_team_and_the_team_gets_the_grants(api_client, world):
    api_client.force_authenticate(world.staff)
    response = api_client.post(SERVICES_URL, {**VALID, "owner": "search"}, format="json")
    assert response.status_code == 201, response.content
    service = Service.objects.get(slug="refunds")
    assert service.owner == world.other_team
    member = _fresh(world.outsider)  # a member of search
    for perm in ("catalog.change_service", "catalog.deploy_service", "catalog.decommission_service"):
        assert member.has_perm(perm, service)
    assert not _fresh(world.owner).has_perm("catalog.change_service", service)
    assert AuditEvent.objects.get(action="service.created", service_id=service.pk).actor_id == world.staff.pk


def test_anonymous_cannot_create(api_client, world):
    assert api_client.post(SERVICES_URL, VALID, format="json").status_code == 401
    assert not Service.objects.filter(slug="refunds").exists()


@pytest.mark.parametrize("role", ["owner", "staff"])
def test_patch_cannot_move_the_owner_or_rename_the_slug(api_client, world, role):
    api_client.force_authenticate(getattr(world, role))
    url = reverse("api:service-detail", args=[world.service.slug])
    response = api_client.patch(url, {"owner": "search", "slug": "renamed", "description": "patched"}, format="json")
    assert response.status_code == 200
    assert response.json()["owner"] == "payments"
    service = Service.objects.get(pk=world.service.pk)
    assert (service.owner_id, service.slug, service.description) == (world.owner_team.pk, "payments-api", "patched")
    assert _fresh(world.owner).has_perm("catalog.change_service", service)
    assert not _fresh(world.outsider).has_perm("catalog.change_service", service)


def test_patch_with_bad_input_is_a_field_error(api_client, world):
    api_client.force_authenticate(world.owner)
    url = reverse("api:service-detail", args=[world.service.slug])
    events = AuditEvent.objects.count()
    response = api_client.patch(url, {"tier": 7}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"tier"}
    assert Service.objects.get(pk=world.service.pk).tier == 1
    assert AuditEvent.objects.count() == events


def test_owner_moves_only_through_transfer(api_client, world):
    """An owner's transfer is a proposal (202) until a lead of the receiving team accepts it; an admin's is done."""
    api_client.force_authenticate(world.owner)
    url = reverse("api:service-transfer", args=[world.service.slug])
    response = api_client.post(url, {"new_owner": "search"}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "proposed" and response.json()["to_team"] == "search"
    assert Service.objects.get(pk=world.service.pk).owner == world.owner_team
    api_client.force_authenticate(world.staff)
    assert api_client.post(url, {"new_owner": "search"}, format="json").status_code == 200  # admins move it at once
    accepted = api_client.post(reverse("api:handover-accept", args=[response.json()["id"]]), {}, format="json")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"  # nothing left to move
    service = Service.objects.get(pk=world.service.pk)
    assert service.owner == world.other_team
    assert _fresh(world.outsider).has_perm("catalog.change_service", service)
    assert not _fresh(world.owner).has_perm("catalog.change_service", service)


def test_owner_of_the_source_adds_a_dependency(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    response = api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": "search-indexer"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "runtime"
    dependency = Dependency.objects.get(source__slug="payments-api", target__slug="search-indexer")
    event = AuditEvent.objects.get(action="dependency.added")
    assert (event.object_id, event.service_id, event.actor_id) == (
        str(dependency.pk),
        catalog.service.pk,
        catalog.owner.pk,
    )


def test_outsider_cannot_add_a_dependency_to_a_service_they_do_not_own(api_client, catalog):
    api_client.force_authenticate(catalog.outsider)
    response = api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": "search-indexer"}, format="json")
    assert response.status_code == 403
    assert not Dependency.objects.exists()
    assert not AuditEvent.objects.filter(action="dependency.added").exists()


def test_anonymous_cannot_add_a_dependency(api_client, catalog):
    response = api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": "ledger"}, format="json")
    assert response.status_code == 401
    assert not Dependency.objects.exists()


def test_a_service_cannot_depend_on_itself(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    response = api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": "payments-api"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"target"}
    assert not Dependency.objects.exists()


def test_a_duplicate_dependency_is_a_400(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    edge = {"source": "payments-api", "target": "ledger", "kind": "runtime"}
    assert api_client.post(DEPENDENCIES_URL, edge, format="json").status_code == 201
    response = api_client.post(DEPENDENCIES_URL, edge, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"target"}
    assert Dependency.objects.count() == 1
    # the same pair with another kind is a different edge
    assert api_client.post(DEPENDENCIES_URL, {**edge, "kind": "build"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [({"target": "no-such-service"}, "target"), ({"source": "no-such-service"}, "source"), ({"kind": "bogus"}, "kind")],
)
def test_dependency_bad_input(api_client, catalog, change, field):
    api_client.force_authenticate(catalog.owner)
    response = api_client.post(
        DEPENDENCIES_URL, {"source": "payments-api", "target": "ledger", **change}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert not Dependency.objects.exists()


def test_a_cycle_is_allowed(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    forward = {"source": "payments-api", "target": "search-indexer"}
    assert api_client.post(DEPENDENCIES_URL, forward, format="json").status_code == 201
    api_client.force_authenticate(catalog.outsider)  # a member of search, which owns search-indexer
    backward = {"source": "search-indexer", "target": "payments-api"}
    assert api_client.post(DEPENDENCIES_URL, backward, format="json").status_code == 201
    assert Dependency.objects.count() == 2


def test_owner_removes_a_dependency_and_an_outsider_cannot(api_client, catalog):
    api_client.force_authenticate(catalog.owner)
    created = api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": "ledger"}, format="json")
    url = reverse("api:dependency-detail", args=[created.json()["id"]])

    api_client.force_authenticate(catalog.outsider)
    assert api_client.delete(url).status_code == 403
    assert Dependency.objects.count() == 1

    api_client.force_authenticate(catalog.owner)
    assert api_client.delete(url).status_code == 204
    assert not Dependency.objects.exists()
    assert AuditEvent.objects.filter(action="dependency.removed", actor_id=catalog.owner.pk).count() == 1


def test_dependency_list_filters(api_client, catalog, django_assert_max_num_queries):
    api_client.force_authenticate(catalog.owner)
    for target in ("ledger", "card-vault"):
        api_client.post(DEPENDENCIES_URL, {"source": "payments-api", "target": target}, format="json")
    api_client.force_authenticate(catalog.outsider)
    api_client.post(DEPENDENCIES_URL, {"source": "query-gateway", "target": "ledger"}, format="json")
    with django_assert_max_num_queries(3):
        rows = api_client.get(DEPENDENCIES_URL, {"target": "ledger"}).json()["results"]
    assert sorted(row["source"] for row in rows) == ["payments-api", "query-gateway"]
    rows = api_client.get(DEPENDENCIES_URL, {"source": "payments-api"}).json()["results"]
    assert sorted(row["target"] for row in rows) == ["card-vault", "ledger"]


@pytest.mark.parametrize("role", ["owner", "outsider", "staff"])
def test_any_signed_in_user_reads_environments(api_client, world, role):
    EnvironmentFactory(slug="staging", name="Staging", order=1)
    EnvironmentFactory(slug="production", name="Production", order=2, protected=True)
    api_client.force_authenticate(getattr(world, role))
    response = api_client.get(ENVIRONMENTS_URL)
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["staging", "production"]
    assert api_client.get(reverse("api:environment-detail", args=["production"])).json()["protected"] is True


def test_anonymous_cannot_read_environments(api_client, world):
    assert api_client.get(ENVIRONMENTS_URL).status_code == 401


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 201), ("anonymous", 401)])
def test_only_staff_create_environments(api_client, world, role, expected):
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    response = api_client.post(ENVIRONMENTS_URL, {"slug": "qa", "name": "QA", "order": 3}, format="json")
    assert response.status_code == expected
    assert Environment.objects.filter(slug="qa").exists() is (expected == 201)
    assert AuditEvent.objects.filter(action="environment.created").exists() is (expected == 201)


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("staff", 200)])
def test_only_staff_change_environments(api_client, world, role, expected):
    EnvironmentFactory(slug="staging", name="Staging")
    api_client.force_authenticate(getattr(world, role))
    response = api_client.patch(reverse("api:environment-detail", args=["staging"]), {"protected": True})
    assert response.status_code == expected
    assert Environment.objects.get(slug="staging").protected is (expected == 200)


@pytest.mark.smoke
def test_cached_list_follows_every_kind_of_catalog_write(api_client, world, django_assert_max_num_queries, settings):
    """The list is served from cache until the catalog changes: an edit, a new service, a tag or a delete."""
    from catalog import cache as catalog_cache

    settings.CATALOG_API_CACHE = True  # on by default only with Redis; one test process shares any cache
    api_client.force_authenticate(world.owner)
    url = reverse("api:service-list")
    first = api_client.get(url).json()
    with django_assert_max_num_queries(0):  # force_authenticate: no session or token lookup either
        assert api_client.get(url).json() == first
    before = catalog_cache.version()
    api_client.patch(reverse("api:service-detail", args=[world.service.slug]), {"description": "edited"}, format="json")
    assert catalog_cache.version() > before
    assert api_client.get(url).json()["results"][0]["description"] == "edited"
    service_make(owner=world.owner_team, slug="zz-new", tags=["fresh"])
    body = api_client.get(url).json()
    assert body["count"] == 2 and body["results"][-1]["tags"] == ["fresh"]
    Service.objects.filter(slug="zz-new").delete()
    assert api_client.get(url).json()["count"] == 1


@pytest.mark.parametrize("accept", ["application/json", "application/json; indent=4", "*/*"])
def test_cached_list_is_the_list_rendered_afresh(api_client, world, settings, accept):
    _services_with_tags_and_systems(30)
    api_client.force_authenticate(world.owner)
    params = {"page": 2, "page_size": 10, "ordering": "-tier"}
    settings.CATALOG_API_CACHE = False
    fresh = api_client.get(SERVICES_URL, params, HTTP_ACCEPT=accept)
    settings.CATALOG_API_CACHE = True
    for _ in range(2):  # the first fills the cache, the second is served from it
        cached = api_client.get(SERVICES_URL, params, HTTP_ACCEPT=accept)
        assert (cached.status_code, cached.content) == (fresh.status_code, fresh.content)
        assert [cached[name] for name in ("Content-Type", "Vary", "Allow")] == [
            fresh[name] for name in ("Content-Type", "Vary", "Allow")
        ]


def test_cached_count_is_shared_by_pages_and_follows_writes(api_client, world, settings, django_assert_num_queries):
    settings.CATALOG_API_CACHE = True
    _services_with_tags_and_systems(12)
    api_client.force_authenticate(world.owner)
    assert api_client.get(SERVICES_URL, {"page_size": 5}).json()["count"] == 13
    # Another page of the same question: its rows, and the count from the cache (no COUNT query).
    with django_assert_num_queries(1):  # the page of stored documents
        assert api_client.get(SERVICES_URL, {"page_size": 5, "page": 2}).json()["count"] == 13
    service_make(owner=world.owner_team, slug="one-more")
    assert api_client.get(SERVICES_URL, {"page_size": 5, "page": 3}).json()["count"] == 14


def test_the_lean_read_by_name_answers_as_drf_does_and_counts_each_request_once(world, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """`GET /api/v1/services/<slug>/` with a token is answered without DRF's dispatch when it can be
    (catalog.api.views._lean): the same status, bytes and headers as DRF's, whatever is asked, and a request
    that DRF answers after all (a 404, a bad token, another media type) is counted against the limit once."""
    from types import SimpleNamespace

    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache
    from rest_framework.test import APIClient

    from accounts import services as accounts
    from accounts import throttling
    from catalog.api import views

    # One fixed minute, so that the window cannot roll over mid-test (the count is per minute).
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))
    _token, plain = accounts.token_create(user=world.owner, name="script", lifetime_days=30)
    lean_answers = []
    real = views._by_name_answer

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        answer = real(*args, **kwargs)
        lean_answers.append(answer is not None)
        return answer

    def both(path: str, **extra: str) -> tuple[tuple, tuple]:  # type: ignore[type-arg]
        answers = []
        for lean in (True, False):
            monkeypatch.setattr(views, "_by_name_answer", watched if lean else lambda *args, **kwargs: None)
            response = APIClient().get(path, **{"HTTP_AUTHORIZATION": f"Bearer {plain}", **extra})
            answers.append((response.status_code, response.content, sorted(response.headers.items())))
        return answers[0], answers[1]

    detail = reverse("api:service-detail", args=[world.service.slug])
    cases = [
        (detail, {}),
        (detail, {"HTTP_ACCEPT": "application/json"}),
        (reverse("api:service-detail", args=["ünïcode-😀"]), {}),
        (reverse("api:service-detail", args=["no-such-service"]), {}),
        (detail, {"HTTP_ACCEPT": "text/html"}),
        (detail + "?format=json", {}),
        (detail, {"HTTP_AUTHORIZATION": "Bearer rwy_nope_nope"}),
        (detail, {"HTTP_AUTHORIZATION": "Basic abc"}),
    ]
    for path, extra in cases:
        lean, drf = both(path, **extra)
        if extra.get("HTTP_ACCEPT") == "text/html":  # the browsable API: a fresh CSRF token and nonce every time
            lean, drf = (lean[0], dict(lean[2])["Content-Type"]), (drf[0], dict(drf[2])["Content-Type"])
        assert lean == drf, path
        assert lean[0] in (200, 401, 404)
    on_redis = isinstance(caches["default"], RedisCache)  # elsewhere the count is the throttle's: DRF answers all
    assert lean_answers == [on_redis, on_redis, False, False, False]  # neither HTML, ?format= nor Basic is asked

    settings.API_TOKEN_RATE_LIMIT = 4
    _token, plain = accounts.token_create(user=world.owner, name="limited", lifetime_days=30)
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {plain}")
    missing = reverse("api:service-detail", args=["no-such-service"])
    statuses = [client.get(path).status_code for path in (missing, detail, missing, detail, detail)]
    assert statuses == [404, 200, 404, 200, 429]


def test_the_lean_list_answers_as_drf_does(catalog, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """The list without DRF's dispatch (catalog.api.views._lean): the same status, bytes and headers as DRF's for
    pages, filters, cursors and every refusal, with the catalog caches on and off."""
    from types import SimpleNamespace

    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache
    from rest_framework.test import APIClient

    from accounts import services as accounts
    from accounts import throttling
    from catalog.api import views

    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))
    _token, plain = accounts.token_create(user=catalog.owner, name="script", lifetime_days=30)
    real = views._list_answer
    answered_lean = []

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        answer = real(*args, **kwargs)
        answered_lean.append(answer is not None and answer.status_code == 200)
        return answer

    def both(params: dict[str, str]) -> tuple[tuple, tuple]:  # type: ignore[type-arg]
        answers = []
        for lean in (True, False):
            monkeypatch.setattr(views, "_list_answer", watched if lean else lambda *args, **kwargs: None)
            response = APIClient().get(SERVICES_URL, params, HTTP_AUTHORIZATION=f"Bearer {plain}")
            answers.append((response.status_code, response.content, sorted(response.headers.items())))
        return answers[0], answers[1]

    cases = [
        {},
        {"owner": catalog.owner_team.slug},
        {"owner": "no-such-team"},
        {"q": "pay"},
        {"lifecycle": "production", "tier": "1", "ordering": "-name"},
        {"page": "2", "page_size": "1"},
        {"page": "999"},
        {"cursor": ""},
        {"cursor": "forged"},
        {"tier": "not-a-tier"},
        {"q": "a\x00b"},
    ]
    statuses = set()
    for cache_on in (False, True):
        settings.CATALOG_API_CACHE = cache_on
        for params in cases:
            lean, drf = both(params)
            assert lean == drf, params
            statuses.add(lean[0])
    assert statuses == {200, 400, 404}
    if isinstance(caches["default"], RedisCache):  # elsewhere the count is the throttle's: DRF answers all
        assert answered_lean[:2] == [True, True] and answered_lean.count(True) >= 12
