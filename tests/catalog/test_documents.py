"""Stored service documents (catalog/documents.py): after any sequence of writes, through any path, every service's
document is what a fresh serialisation says; a write that fails leaves row and document as they were; the API's reads
from them cost a fixed number of queries; cursors walk the catalog and refuse what they did not give out."""

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIRequestFactory
from rest_framework.utils.urls import remove_query_param, replace_query_param

from catalog import documents, services, sync
from catalog.api import pagination
from catalog.api.serializers import ServiceSerializer
from catalog.models import Service, ServiceDocument, Tag
from deployments import decommission
from reviews import services as review_services
from scaffolder import drift
from scaffolder.models import GoldenPathUpdate
from tests.catalog.test_sync import component, document, write_documents
from tests.factories import TeamFactory, UserFactory, service_make

pytestmark = [pytest.mark.django_db]

SERVICES_URL = "/api/v1/services/"


def fresh(service: Service) -> dict:
    """What the API's serializer says about the service now, without the request-dependent URL."""
    request = APIRequestFactory().get(SERVICES_URL)
    service = Service.objects.select_related("owner", "system", "ownership").prefetch_related("tags").get(pk=service.pk)
    data = json.loads(json.dumps(ServiceSerializer(service, context={"request": request}).data))
    data.pop("url")
    return data


def assert_documents_current() -> None:
    stored = dict(ServiceDocument.objects.values_list("service_id", "document"))
    for service in Service.objects.all():
        assert service.pk in stored, f"{service.slug} has no stored document"
        assert json.loads(stored[service.pk]) == fresh(service), service.slug


WORDS = st.sampled_from(["ledger", "billing", "search", "Über", "naïve", "x" * 40, ""])
TAGS = st.lists(st.sampled_from(["python", "go", "pci", "edge"]), max_size=3)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), WORDS, st.integers(1, 4), TAGS),
        st.tuples(st.just("update"), st.integers(0, 20), WORDS, st.sampled_from(["production", "deprecated"]), TAGS),
        st.tuples(st.just("transfer"), st.integers(0, 20)),
        st.tuples(st.just("tag_reverse"), st.sampled_from(["python", "rust"]), st.integers(0, 20)),
        st.tuples(st.just("system"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("retire"), st.integers(0, 20)),
        st.tuples(st.just("merge"), st.integers(0, 20)),
        st.tuples(st.just("import_"), st.integers(0, 3), WORDS, TAGS),
        st.tuples(st.just("verify"), st.integers(0, 20)),
        st.tuples(st.just("orphan"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=8,
)


class Writes:
    """Runs one kind of write at a time on a small catalog, the way the product does it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.alpha = TeamFactory(name="Alpha", slug="alpha")
        self.beta = TeamFactory(name="Beta", slug="beta")
        self.user = UserFactory(is_staff=True)
        self.counter = 0

    def pick(self, index: int) -> Service | None:
        services_ = list(Service.objects.exclude(lifecycle__in=Service.RETIRING).order_by("pk"))
        return services_[index % len(services_)] if services_ else None

    def run(self, operation: tuple) -> None:
        kind, *args = operation
        try:
            getattr(self, kind)(*args)
        except ValidationError:  # refused (an imported service's fields): a failed write must change nothing either
            pass

    def create(self, word: str, tier: int, tags: list[str]) -> None:
        self.counter += 1
        service_make(owner=self.alpha, slug=f"svc-{self.counter}", name=f"{word} {self.counter}", tier=tier, tags=tags)

    def update(self, index: int, word: str, lifecycle: str, tags: list[str]) -> None:
        if (service := self.pick(index)) is not None:
            services.service_update(
                service=service, updated_by=self.user, description=word, lifecycle=lifecycle, tags=tags
            )

    def transfer(self, index: int) -> None:
        if (service := self.pick(index)) is not None:
            new = self.beta if service.owner_id == self.alpha.pk else self.alpha
            services.service_transfer(service=service, new_owner=new, transferred_by=self.user)

    def tag_reverse(self, name: str, index: int) -> None:
        if (service := self.pick(index)) is not None:
            tag, _ = Tag.objects.get_or_create(name=name)
            tag.services.add(service) if index % 2 else tag.services.clear()

    def system(self, index: int, delete: bool) -> None:
        if (service := self.pick(index)) is None:
            return
        self.counter += 1
        system = services.system_create(created_by=None, owner=self.alpha, slug=f"sys-{self.counter}", name="Sys")
        services.service_update(service=service, updated_by=self.user, system=system)
        if delete:
            system.delete()  # clears the services' system without saving them

    def retire(self, index: int) -> None:
        if (service := self.pick(index)) is not None:
            with transaction.atomic():
                decommission._lifecycle_set(service, Service.Lifecycle.DECOMMISSIONING, actor=None)

    def merge(self, index: int) -> None:
        if (service := self.pick(index)) is None:
            return
        self.counter += 1
        update = GoldenPathUpdate.objects.create(
            service=service,
            golden_path="stdlib",
            from_version="1.0.0",
            to_version=f"1.{self.counter}.0",
            requested_by=self.user,
        )
        with transaction.atomic():
            drift._record_merged(update, self.user)

    def verify(self, index: int) -> None:
        if (service := self.pick(index)) is not None:
            with transaction.atomic():
                review_services.ownership_verify(service=service, verified_by=self.user)

    def orphan(self, index: int) -> None:
        if (service := self.pick(index)) is not None:
            with transaction.atomic():
                review_services.services_orphan(services=[service], reason="team gone", actor=None)

    def import_(self, number: int, word: str, tags: list[str]) -> None:
        write_documents(
            self.root,
            "org.yaml",
            document("Group", "alpha", {"type": "team", "profile": {"displayName": "Alpha"}}),
        )
        extra = {"metadata": {"description": word, "tags": tags}} if word else {"metadata": {"tags": tags}}
        write_documents(self.root, f"c{number}/catalog-info.yaml", component(f"imported-{number}", **extra))
        sync.catalog_import(root=self.root, source_name="docs-test")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_every_kind_of_write_keeps_the_stored_documents_equal_to_a_fresh_serialisation(tmp_path_factory, operations):
    # Hypothesis runs every example inside this one test's transaction: each starts from an empty catalog and is
    # rolled back to it.
    try:
        with transaction.atomic():
            writes = Writes(tmp_path_factory.mktemp("tree"))
            for operation in operations:
                writes.run(operation)
                assert_documents_current()
            raise _Rollback
    except _Rollback:
        pass


class _Rollback(Exception):
    pass


def test_a_write_that_fails_between_row_and_document_leaves_both_as_they_were(world, monkeypatch):
    before_row = Service.objects.get(pk=world.service.pk).description
    before_document = ServiceDocument.objects.get(pk=world.service.pk).document

    def broken(_documents: dict) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(documents, "store", broken)
    with pytest.raises(RuntimeError):
        services.service_update(service=world.service, updated_by=world.owner, description="Half-written")
    assert Service.objects.get(pk=world.service.pk).description == before_row
    assert ServiceDocument.objects.get(pk=world.service.pk).document == before_document
    monkeypatch.undo()
    assert_documents_current()


def test_documents_hold_exactly_the_fields_every_reader_may_see(world):
    stored = json.loads(ServiceDocument.objects.get(pk=world.service.pk).document)
    assert set(stored) | {"url"} == set(ServiceSerializer.Meta.fields)  # the open catalog's public fields, no more
    assert "annotations" not in stored and "links" not in stored


def test_a_service_written_around_the_model_is_still_served_whole(api_client, world):
    Service.objects.bulk_create([Service(owner=world.owner_team, slug="bulk-made", name="Bulk made")])
    api_client.force_authenticate(world.outsider)
    body = api_client.get(f"{SERVICES_URL}bulk-made/").json()
    assert body == {**fresh(Service.objects.get(slug="bulk-made")), "url": f"http://testserver{SERVICES_URL}bulk-made/"}
    assert documents.rebuild_outdated() == 1
    assert_documents_current()


@pytest.mark.parametrize("size", [3, 30])
def test_api_reads_cost_the_same_queries_whatever_the_catalog_size(
    api_client, world, settings, size, django_assert_num_queries
):
    settings.CATALOG_API_CACHE = False
    system = services.system_create(created_by=None, owner=world.owner_team, slug="core", name="Core")
    for index in range(size):
        service_make(owner=world.owner_team, slug=f"s-{index:03d}", tags=["python"], system=system)
    api_client.force_authenticate(world.outsider)
    with django_assert_num_queries(1):  # the stored document
        assert api_client.get(f"{SERVICES_URL}s-001/").json()["system"] == "core"
    for query in ({}, {"owner": "payments"}, {"lifecycle": "experimental", "tier": "3"}, {"q": "s-00"}):
        # The count and the page, the owner's slug looked up inside them; a text search on PostgreSQL first asks
        # whether its words match and how many the planner expects (catalog/text_search.py's probe): the order.
        probe = "q" in query and connection.vendor == "postgresql"
        with django_assert_num_queries(2 if probe else 1):
            body = api_client.get(SERVICES_URL, query).json()
        assert body["count_exact"] is True and len(body["results"]) == body["count"], query


def test_counts_past_the_threshold_are_estimates_and_say_so(
    api_client, world, settings, is_postgres, django_assert_num_queries
):
    settings.CATALOG_API_CACHE = False
    settings.CATALOG_EXACT_COUNT_UP_TO = 5
    for index in range(12):
        service_make(owner=world.owner_team, slug=f"s-{index:03d}")
    api_client.force_authenticate(world.outsider)
    with django_assert_num_queries(1):  # the estimate is asked inside the page's statement
        body = api_client.get(SERVICES_URL, {"page_size": 5}).json()
    assert body["count_exact"] is (not is_postgres)
    assert body["count"] >= 6 if is_postgres else body["count"] == 13
    assert api_client.get(SERVICES_URL, {"owner": "search"}).json()["count_exact"] is True


def test_a_cursor_walks_every_service_once_in_order(api_client, world, settings):
    settings.CATALOG_API_CACHE = False
    for index in range(11):
        service_make(owner=world.owner_team, slug=f"s-{index:03d}", name=f"{'AbC'[index % 3]} {index}")
    api_client.force_authenticate(world.outsider)
    for ordering in ("", "-name", "tier", "-updated", "owner"):
        url, seen = f"{SERVICES_URL}?page_size=4&cursor=&ordering={ordering}", []
        while url:
            body = api_client.get(url).json()
            seen += [row["slug"] for row in body["results"]]
            assert body["previous"] is None
            url = body["next"]
        expected = [
            row["slug"]
            for row in api_client.get(SERVICES_URL, {"ordering": ordering, "page_size": 50}).json()["results"]
        ]
        assert seen == expected and len(seen) == 12, ordering


def test_a_cursor_is_bound_to_the_filters_and_order_and_not_to_other_parameters(api_client, world, settings):
    """A parameter that chooses no services (a client's cache-buster) neither changes the cursor a page gives nor
    makes the cursor foreign; a filter or an order does."""
    settings.CATALOG_API_CACHE = False
    for index in range(4):
        service_make(owner=world.owner_team, slug=f"s-{index:03d}")
    api_client.force_authenticate(world.outsider)
    cursor = api_client.get(SERVICES_URL, {"page_size": 2}).json()["next_cursor"]
    assert api_client.get(SERVICES_URL, {"page_size": 2, "nocache": "81"}).json()["next_cursor"] == cursor
    second = api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor}).json()["results"]
    walked = api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor, "nocache": "82"})
    assert walked.status_code == 200 and walked.json()["results"] == second and len(second) == 2
    for other in ({"ordering": "-name"}, {"lifecycle": "production"}):
        refused = api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor, **other})
        assert refused.status_code == 400 and "cursor" in refused.json(), other


def test_forged_foreign_or_expired_cursors_are_refused(api_client, world, settings, monkeypatch):
    settings.CATALOG_API_CACHE = False
    for index in range(4):
        service_make(owner=world.owner_team, slug=f"s-{index:03d}")
    api_client.force_authenticate(world.outsider)
    cursor = api_client.get(SERVICES_URL, {"page_size": 2}).json()["next_cursor"]
    assert api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor}).status_code == 200
    forged = signing.Signer(key="not-the-secret", salt=pagination.CURSOR_SALT).sign_object({"q": "0" * 16, "k": [1]})
    for bad in (cursor[:-2] + "xx", forged, "\u202e", "a" * 5000):
        response = api_client.get(SERVICES_URL, {"cursor": bad})
        assert response.status_code == 400 and "cursor" in response.json(), bad
    foreign = api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor, "owner": "payments"})
    assert foreign.status_code == 400 and "other filters" in foreign.json()["cursor"][0]
    unordered = api_client.get(SERVICES_URL, {"cursor": "", "ordering": "verified"})
    assert unordered.status_code == 400 and "use pages" in unordered.json()["cursor"][0]
    assert api_client.get(SERVICES_URL, {"ordering": "verified", "page_size": 2}).json()["next_cursor"] is None
    monkeypatch.setattr(pagination, "CURSOR_MAX_AGE", -1)
    expired = api_client.get(SERVICES_URL, {"page_size": 2, "cursor": cursor})
    assert expired.status_code == 400 and "expired" in expired.json()["cursor"][0]


def test_the_browsable_api_pages_the_same_way(client, world, settings):
    settings.CATALOG_API_CACHE = False
    client.force_login(world.outsider)
    response = client.get(SERVICES_URL, {"format": "api"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"next_cursor" in response.content


@given(
    query=st.lists(
        st.tuples(st.text(max_size=12), st.text(max_size=12)).map(lambda pair: f"{quote(pair[0])}={quote(pair[1])}")
        | st.text(max_size=20),
        max_size=6,
    ).map("&".join),
    name=st.sampled_from(["page", "cursor", "q", "a b"]),
    value=st.none() | st.text(max_size=20),
)
def test_page_links_are_drfs_to_the_byte(query: str, name: str, value: str | None) -> None:
    """pagination.url_with quotes only what needs it, and must give what DRF's replace_query_param and
    remove_query_param give for any query string (unicode, separators, blanks, percent signs)."""
    url = f"https://portal.example/api/v1/services/?{query}"
    expected = remove_query_param(url, name) if value is None else replace_query_param(url, name, value)
    assert pagination.url_with(url, name, value) == expected


@pytest.mark.parametrize("host", ["testserver", "portal.example:8443", "[::1]:8000", "xn--bcher-kva.example"])
@pytest.mark.parametrize("secure", [False, True])
def test_a_documents_url_is_the_one_build_absolute_uri_gives(settings, host: str, secure: bool) -> None:
    """documents_joined keeps a URL's two ends per host: they must be what request.build_absolute_uri makes."""
    from django.test import RequestFactory
    from django.urls import reverse

    from catalog.api.views import documents_joined

    settings.ALLOWED_HOSTS = ["*"]
    request = RequestFactory().get("/api/v1/services/", HTTP_HOST=host, secure=secure)
    for slug in ("payments-api", "café-api"):
        joined = json.loads(documents_joined(request, [(1, slug, '{"id":1}')]))
        expected = request.build_absolute_uri(reverse("api:service-detail", kwargs={"slug": slug}))
        assert joined == {"url": expected, "id": 1}, (host, slug)
