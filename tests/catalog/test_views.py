"""Catalog pages: htmx fragments, filters in the URL, bounded queries, forms with field errors."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog import services
from catalog.models import Dependency, Service
from tests.factories import SystemFactory, TeamFactory, service_make

pytestmark = [pytest.mark.django_db]

CATALOG = reverse("catalog:service-list")


def _populate(team, count: int) -> None:  # type: ignore[no-untyped-def]
    system = SystemFactory(owner=team)
    for i in range(count):
        service_make(owner=team, slug=f"bulk-{count}-{i}", system=system, tags=["python", f"t{i % 3}"])


@pytest.mark.smoke
def test_htmx_request_gets_only_the_results_fragment(client, world):
    client.force_login(world.outsider)
    full = client.get(CATALOG, {"q": "payments"})
    fragment = client.get(CATALOG, {"q": "payments"}, headers={"HX-Request": "true"})
    assert b"<html" in full.content and b"<html" not in fragment.content
    assert b"Payments API" in fragment.content
    assert "HX-Request" in fragment["Vary"]


def test_filters_narrow_the_table(client, world):
    other = service_make(
        owner=world.other_team, slug="search-api", name="Search API", lifecycle="deprecated", tier=3, tags=["java"]
    )
    client.force_login(world.outsider)

    def slugs(**params: str) -> set[str]:
        return {s.slug for s in client.get(CATALOG, params).context["services"]}

    assert slugs() == {"payments-api", "search-api"}
    assert slugs(owner="search") == {"search-api"}
    assert slugs(lifecycle="deprecated") == {"search-api"}
    assert slugs(tier="1") == {"payments-api"}
    assert slugs(tag="java") == {"search-api"}
    assert slugs(q="search api") == {"search-api"}
    assert [s.slug for s in client.get(CATALOG, {"ordering": "-tier"}).context["services"]] == [
        other.slug,
        world.service.slug,
    ]


def test_unknown_filter_value_is_reported_not_ignored(client, world):
    client.force_login(world.outsider)
    response = client.get(CATALOG, {"owner": "no-such-team"})
    assert response.status_code == 200
    assert "owner" in response.context["filterset"].errors
    assert b"Select a valid choice" in response.content


@pytest.mark.parametrize("count", [3, 30])
def test_catalog_page_query_count_does_not_grow(client, world, django_assert_max_num_queries, count):
    _populate(TeamFactory(), count)
    client.force_login(world.outsider)
    # The user, the capped count, one statement for the page's rows (stored documents, names, stale runbooks) and
    # one for every filter's choices (owners, systems and tags together).
    with django_assert_max_num_queries(4):
        response = client.get(CATALOG)
    assert len(response.context["services"]) == count + 1
    with django_assert_max_num_queries(4):  # a filter's value is one more lookup
        response = client.get(CATALOG, {"tag": "python"}, headers={"HX-Request": "true"})
    assert len(response.context["services"]) == count


def test_catalog_rows_are_drawn_from_stored_documents(client, world):
    """Each row shows what its service's stored document says, with its owner's and system's names."""
    from reviews.models import Ownership

    system = SystemFactory(owner=world.owner_team, name="Money <& co>", slug="money")
    service_make(owner=world.owner_team, slug="ledger", name="Ledger <b>", system=system, tags=["java", "a-b"], tier=2)
    ledger = Service.objects.get(slug="ledger")
    Ownership.objects.create(service=ledger, verified_at=datetime(2026, 3, 4, 23, 30, tzinfo=UTC))
    client.force_login(world.outsider)
    page = client.get(CATALOG, {"q": "ledger"}).content.decode()
    assert '<a href="/catalog/services/ledger/" class="strong">Ledger &lt;b&gt;</a>' in page
    assert f'<a href="{world.owner_team.get_absolute_url()}">{world.owner_team.name}</a>' in page
    assert '<a href="/catalog/systems/money/">Money &lt;&amp; co&gt;</a>' in page
    assert '<a class="tag" href="?tag=a-b">a-b</a><a class="tag" href="?tag=java">java</a>' in page
    assert '<time datetime="2026-03-04T23:30:00+00:00" class="small">4 Mar 2026</time>' in page
    assert '<span class="tier tier-2" title="Tier 2 — high">T2</span>' in page
    assert f'<span id="health-{ledger.pk}" class="muted">' in page


def test_catalog_page_estimates_large_counts_and_says_so(client, world, settings):
    settings.CATALOG_PAGE_CACHE = False
    settings.CATALOG_EXACT_COUNT_UP_TO = 3
    _populate(world.owner_team, 6)
    client.force_login(world.outsider)
    counted = client.get(CATALOG, {"q": "bulk-6-1"}).content.decode()
    assert "1 service</p>" in counted
    page = client.get(CATALOG).content.decode()
    if connection.vendor == "postgresql":  # the planner's estimate, labelled as one
        assert re.search(r"About \d+ services", page) and "7 services</p>" not in page
    else:
        assert "7 services</p>" in page


def test_filter_choices_read_together_are_the_fields_own(world):
    """listing.filter_options gives each filter the same <option>s as the form field would, in one query."""
    from catalog.filters import CatalogPageFilterSet
    from catalog.listing import filter_options
    from portal.templatetags.portal_tags import select_options

    SystemFactory(owner=world.other_team, name="Zeta & <Alpha>", slug="zeta")
    SystemFactory(owner=world.other_team, name="alpha", slug="alpha")
    service_make(owner=world.other_team, slug="tagged", tags=["b-tag", "a-tag"])
    fields = list(CatalogPageFilterSet(None, queryset=Service.objects.all()).form)
    with CaptureQueriesContext(connection) as queries:
        options = filter_options(fields)
    assert len(queries) == 1
    assert options == {field.name: select_options(field) for field in fields}
    assert options["tag"][1:] == (("a-tag", "a-tag", "a-tag"), ("b-tag", "b-tag", "b-tag"))
    assert ("zeta", "zeta", "Zeta &amp; &lt;Alpha&gt;") in options["system"]


@pytest.mark.parametrize("count", [2, 25])
def test_service_page_query_count_does_not_grow(client, world, django_assert_max_num_queries, count):
    team = TeamFactory()
    for i in range(count):
        dependency = service_make(owner=team, slug=f"dep-{i}")
        services.dependency_add(source=world.service, target=dependency, kind="runtime", added_by=None)
        services.dependency_add(source=dependency, target=world.service, kind="data", added_by=None)
    client.force_login(world.owner)
    # The user; the service and its tags; which of its lists are not empty (one statement: catalog.selectors.
    # service_page_parts); dependencies (both ways in one query) and cycles; permissions (one query); audit. Each
    # list the service has adds its query: the source, runbooks, ADRs, APIs and resources (one), deploy targets (and
    # then what runs and what is in flight), deployments (and insights' figures), a decommission, checks (read once
    # for the health, metrics and SLO sections), SLOs, flags, scorecards, an open review item, a handover; a service
    # with neither SLOs nor checks has no anomaly to look for, and one in no trouble reads none of the dependency graph.
    with django_assert_max_num_queries(8):
        response = client.get(world.service.get_absolute_url())
    assert len(response.context["outgoing"]) == count and len(response.context["incoming"]) == count
    assert response.context["cycle_ids"] == {d.target_id for d in response.context["outgoing"]}


def test_service_page_lists_interfaces_and_documents_in_bounded_queries(client, world, django_assert_max_num_queries):
    """APIs provided and consumed and resources used are one query, each list by name; runbooks and ADRs are read
    without their text, and a superseding ADR's link (which names its service) costs no query of its own."""
    from catalog.models import Api, Resource
    from techdocs.models import ADR, Runbook

    other = service_make(owner=world.other_team, slug="ledger", name="Ledger")
    for name, kind in (("Zeta feed", "asyncapi"), ("Alpha rpc", "grpc")):
        Api.objects.create(slug=name.lower().replace(" ", "-"), name=name, type=kind, owner=world.owner_team)
    Api.objects.get(slug="zeta-feed").providers.add(world.service)
    Api.objects.get(slug="alpha-rpc").providers.add(world.service)
    Api.objects.create(slug="ledger-api", name="Ledger API", owner=world.other_team).consumers.add(world.service)
    world.service.resources.add(
        Resource.objects.create(slug="orders-db", name="Orders DB", type="database", owner=world.owner_team)
    )
    Runbook.objects.create(service=world.service, slug="restart", title="Restart it", body="# Long text")
    newer = [
        ADR.objects.create(service=s, number=1, title=f"Use {s.slug}", status="accepted")
        for s in (world.service, other)
    ]
    for number, superseding in ((2, newer[0]), (3, newer[1])):
        ADR.objects.create(
            service=world.service, number=number, title=f"Old {number}", status="superseded", superseded_by=superseding
        )
    client.force_login(world.outsider)
    with django_assert_max_num_queries(21):
        content = client.get(world.service.get_absolute_url()).content.decode()
    assert re.search(
        r"Alpha rpc</a> <span class=\"badge\">gRPC</span><br>.*Zeta feed</a> <span class=\"badge\">AsyncAPI", content
    )
    assert "Ledger API</a>" in content and 'Orders DB <span class="muted small">database</span>' in content
    assert "Restart it</a>" in content
    assert f'href="{newer[0].get_absolute_url()}">ADR-0001</a>' in content
    assert f'href="{newer[1].get_absolute_url()}">ADR-0001</a>' in content  # another service's decision


def test_service_page_parts_say_what_a_service_has_in_one_statement(client, world, django_assert_num_queries):
    """The page reads no list the presence statement says is empty; the statement finds every kind it names, the
    registered apps' included, and a service with them shows them."""
    from catalog.models import Api
    from catalog.selectors import service_page_parts
    from deployments.models import Decommission
    from flags.models import Flag
    from monitoring.models import HealthCheck
    from reviews.models import Handover
    from techdocs.models import ADR, Runbook
    from tests.factories import EnvironmentFactory

    with django_assert_num_queries(1):
        assert service_page_parts(service=world.service) == frozenset()
    Runbook.objects.create(service=world.service, slug="restart", title="Restart it")
    ADR.objects.create(service=world.service, number=1, title="Use queues", status="accepted")
    Api.objects.create(slug="feed", name="Feed", owner=world.other_team).consumers.add(world.service)
    _source_owned(world.service)
    Decommission.objects.create(service=world.service, reason="Replaced", planned_for="2030-01-01", state="cancelled")
    HealthCheck.objects.create(service=world.service, environment=EnvironmentFactory(), url="http://a.test/")
    Flag.objects.create(service=world.service, key="new-checkout", variants={"on": True, "off": False})
    Handover.objects.create(service=world.service, from_team=world.owner_team, to_team=world.other_team)
    with django_assert_num_queries(1):
        parts = service_page_parts(service=world.service)
    assert parts == {"runbooks", "adrs", "interfaces", "source", "health_checks", "flags", "handovers"}
    client.force_login(world.outsider)
    content = client.get(world.service.get_absolute_url()).content.decode()
    assert "Restart it</a>" in content and "Use queues</a>" in content and "Feed</a>" in content
    assert "Described in" in content and "GET http://a.test/" in content and "new-checkout</a>" in content
    assert "Handover to Search</a>" in content
    assert "Decommission #" not in content  # a cancelled one is no part of the page


def test_service_page_parts_count_only_what_the_sections_would_show(world):
    """Deploy targets, deployments, a decommission under way, SLOs, scores on enabled scorecards, open review items
    in open campaigns: each is found; a cancelled decommission, a disabled scorecard's score, an item of a closed
    campaign and a declined handover are not, as their sections would not show them."""
    from datetime import date

    from django.utils import timezone

    from catalog.selectors import service_page_parts
    from deployments.models import Decommission, Deployment
    from monitoring import services as monitoring_services
    from reviews.models import Campaign, Handover, Item
    from scorecards.models import Score, Scorecard
    from tests.deployments.support import release_make, target_make
    from tests.factories import EnvironmentFactory
    from tests.monitoring.test_slos import ratio_slo

    def parts() -> frozenset[str]:
        return service_page_parts(service=world.service)

    closed = Campaign.objects.create(title="Old", status=Campaign.Status.CLOSED, due_on=date(2030, 1, 1))
    Item.objects.create(campaign=closed, service=world.service, due_on=date(2030, 1, 1))
    disabled = Scorecard.objects.create(name="old", title="Old", enabled=False, definition={})
    Score.objects.create(scorecard=disabled, service=world.service, scored_at=timezone.now())
    Decommission.objects.create(service=world.service, reason="No", planned_for=date(2030, 1, 1), state="cancelled")
    Handover.objects.create(service=world.service, to_team=world.other_team, status=Handover.Status.DECLINED)
    assert parts() == frozenset()

    environment = EnvironmentFactory()
    target_make(world.service, environment)
    Deployment.objects.create(
        release=release_make(world.service),
        service=world.service,
        environment=environment,
        strategy="canary",
        runtime="simulated",
        state="succeeded",
    )
    Decommission.objects.create(service=world.service, reason="Replaced", planned_for=date(2030, 1, 1))
    monitoring_services.slo_create(user=world.staff, service=world.service, document=ratio_slo())
    enabled = Scorecard.objects.create(name="basics", title="Basics", definition={})
    Score.objects.create(scorecard=enabled, service=world.service, scored_at=timezone.now())
    opened = Campaign.objects.create(title="Q1", due_on=date(2030, 1, 1))
    Item.objects.create(campaign=opened, service=world.service, due_on=date(2030, 1, 1))
    assert parts() == {"deploy_targets", "deployments", "decommissions", "slos", "scores", "review_items"}


def test_service_page_shows_both_directions_and_the_cycle(client, world):
    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    checkout = service_make(owner=world.other_team, slug="checkout", name="Checkout")
    services.dependency_add(source=world.service, target=ledger, kind="runtime", added_by=None)
    services.dependency_add(source=ledger, target=world.service, kind="data", added_by=None)
    services.dependency_add(source=checkout, target=world.service, kind="runtime", added_by=None)
    client.force_login(world.outsider)
    response = client.get(world.service.get_absolute_url())
    content = response.content.decode()
    assert "Depends on (1)" in content and "Used by (2)" in content
    assert "Dependency cycle" in content and "Checkout" in content

    def edges(name: str, end: str) -> list[tuple[str, str, str, str]]:
        ends = [(d.kind, getattr(d, end)) for d in response.context[name]]
        return [(kind, other.slug, other.name, other.owner.name) for kind, other in ends]

    assert edges("outgoing", "target") == [("runtime", "ledger", "Ledger", "Payments")]
    assert edges("incoming", "source") == [
        ("runtime", "checkout", "Checkout", "Search"),
        ("data", "ledger", "Ledger", "Payments"),
    ]
    assert '<span class="badge badge-kind">data</span> <span class="muted small">Payments</span>' in content


@pytest.mark.smoke
def test_create_form_bad_input_gives_field_errors_and_writes_nothing(client, world):
    client.force_login(world.owner)
    url = reverse("catalog:service-create")
    response = client.post(
        url,
        {
            "name": "x" * 101,
            "slug": "payments-api",
            "owner": world.owner_team.pk,
            "lifecycle": "production",
            "tier": "7",
            "tags": "ok, Not A Tag!",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) >= {"name", "slug", "tier", "tags"}
    assert Service.objects.count() == 1


@pytest.mark.smoke
def test_create_form_refuses_a_team_you_are_not_in(client, world):
    client.force_login(world.outsider)
    response = client.post(
        reverse("catalog:service-create"),
        {"name": "Sneaky", "slug": "sneaky", "owner": world.owner_team.pk, "lifecycle": "production", "tier": "2"},
    )
    assert "owner" in response.context["form"].errors
    assert not Service.objects.filter(slug="sneaky").exists()


@pytest.mark.smoke
def test_create_form_registers_and_redirects(client, world):
    client.force_login(world.owner)
    response = client.post(
        reverse("catalog:service-create"),
        {
            "name": "Refunds",
            "slug": "refunds",
            "owner": world.owner_team.pk,
            "lifecycle": "production",
            "tier": "2",
            "tags": "python, pci",
            "repository_url": "https://git.example.com/payments/refunds",
        },
    )
    service = Service.objects.get(slug="refunds")
    assert response["Location"] == service.get_absolute_url()
    assert sorted(service.tags.values_list("name", flat=True)) == ["pci", "python"]


def test_inline_validation_answers_with_the_field_errors_only(client, world):
    client.force_login(world.owner)
    response = client.post(
        reverse("catalog:service-create"), {"slug": "Bad Slug", "_validate": "slug"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert 'id="errors-slug"' in body and "<form" not in body
    assert "letters" in body  # the slug validator's message
    assert not Service.objects.filter(name="").exists()


def test_dependency_form_refuses_self_and_unknown_targets(client, world):
    client.force_login(world.owner)
    url = reverse("catalog:dependency-add", args=[world.service.slug])
    client.post(url, {"target": world.service.slug, "kind": "runtime"})
    response = client.post(url, {"target": "does-not-exist", "kind": "runtime"}, follow=True)
    assert Dependency.objects.count() == 0
    assert "There is no service with this slug." in response.content.decode()


def test_outsider_cannot_add_dependencies(client, world):
    other = service_make(owner=world.other_team, slug="other")
    client.force_login(world.outsider)
    response = client.post(
        reverse("catalog:dependency-add", args=[world.service.slug]), {"target": other.slug, "kind": "runtime"}
    )
    assert response.status_code == 403 and Dependency.objects.count() == 0


def test_golden_path_filter_lists_services_behind_their_path(client, world):
    from scaffolder import registry

    path = registry.golden_path_list()[0]
    service_make(owner=world.owner_team, slug="old-one", golden_path=path.name, golden_path_version="0.0.1")
    service_make(owner=world.owner_team, slug="new-one", golden_path=path.name, golden_path_version=path.version)
    client.force_login(world.outsider)
    slugs = {s.slug for s in client.get(CATALOG, {"golden_path": "behind"}).context["services"]}
    assert slugs == {"old-one"}
    assert {s.slug for s in client.get(CATALOG, {"golden_path": "current"}).context["services"]} == {"new-one"}
    page = client.get(reverse("catalog:service-detail", args=["old-one"])).content.decode()
    assert f"{path.version} is out" in page


# --- the cached catalog page ----------------------------------------------------------------------------------------


def _without_csrf(content: bytes) -> str:
    return re.sub(r'"X-CSRFToken": "[^"]+"|name="csrfmiddlewaretoken" value="[^"]+"', "", content.decode())


@pytest.mark.parametrize(
    "params",
    [{}, {"q": "bulk 4"}, {"owner": "payments", "ordering": "-tier"}, {"owner": "nobody"}, {"page": "2", "tag": "t1"}],
)
def test_cached_catalog_page_is_the_page_rendered_afresh(client, world, settings, params):
    _populate(world.owner_team, 60)
    client.force_login(world.outsider)
    settings.CATALOG_PAGE_CACHE = False
    fresh = [client.get(CATALOG, params, headers=headers) for headers in ({}, {"HX-Request": "true"})]
    settings.CATALOG_PAGE_CACHE = True
    for _ in range(2):  # the first fills the cache, the second is served from it
        cached = [client.get(CATALOG, params, headers=headers) for headers in ({}, {"HX-Request": "true"})]
        assert [_without_csrf(r.content) for r in cached] == [_without_csrf(r.content) for r in fresh]
        assert [r["Vary"] for r in cached] == [r["Vary"] for r in fresh]


def test_cached_catalog_page_reads_no_catalog_rows(client, world, settings, django_assert_max_num_queries):
    settings.CATALOG_PAGE_CACHE = True
    _populate(TeamFactory(), 5)
    client.force_login(world.outsider)
    client.get(CATALOG, {"q": "bulk"})
    with django_assert_max_num_queries(2):  # the session and the user, at most
        assert b"bulk-5-4" in client.get(CATALOG, {"q": "bulk"}).content


def test_cached_catalog_page_follows_catalog_writes(client, world, settings):
    settings.CATALOG_PAGE_CACHE = True
    client.force_login(world.outsider)
    assert b"1 service</p>" in client.get(CATALOG).content
    services.service_update(service=world.service, updated_by=world.owner, name="Payments Gateway")
    assert b"Payments Gateway" in client.get(CATALOG).content
    service_make(owner=world.other_team, slug="second", name="Second")
    page = client.get(CATALOG).content
    assert b"2 services</p>" in page and b"Second" in page
    world.other_team.name = "Search and Discovery"
    world.other_team.save()
    assert b"Search and Discovery" in client.get(CATALOG).content  # in the rows and in the owner filter


def test_cached_stale_runbook_badge_appears_when_the_review_falls_due(client, world, settings, monkeypatch):
    from django.utils import timezone

    from techdocs import services as techdocs_services

    settings.CATALOG_PAGE_CACHE = True
    now = timezone.now()
    techdocs_services.runbook_create(
        service=world.service,
        title="On-call",
        body="Page the rota.",
        created_by=world.owner,
        review_interval_days=30,
        last_reviewed_at=now - timedelta(days=29),
    )
    client.force_login(world.outsider)
    assert b"stale runbook</span>" not in client.get(CATALOG).content
    assert b"stale runbook</span>" not in client.get(CATALOG).content  # from the cache
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(days=2))  # no write: only the clock moved
    assert b"stale runbook</span>" in client.get(CATALOG).content


# --- controls that cannot work, and refusals as messages ------------------------------------------------------------


def _source_owned(service: Service) -> None:
    """Mark `service` as described by a catalog source, as an import would."""
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from catalog.models import CatalogSource, EntitySource

    source, _ = CatalogSource.objects.get_or_create(name="git:platform-catalog")
    EntitySource.objects.create(
        kind="Component",
        name=service.slug,
        source=source,
        path=f"{service.slug}/catalog-info.yaml",
        content_hash="0" * 64,
        content_type=ContentType.objects.get_for_model(Service),
        object_id=service.pk,
        synced_at=timezone.now(),
    )


def test_removing_a_source_owned_dependency_is_a_message_not_a_500(client, world):
    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    dependency = services.dependency_add(source=world.service, target=ledger, kind="runtime", added_by=None)
    _source_owned(world.service)
    client.force_login(world.owner)
    page = world.service.get_absolute_url()
    url = reverse("catalog:dependency-remove", args=[world.service.slug, dependency.pk])
    response = client.post(url, headers={"Referer": f"http://testserver{page}"})
    assert response.status_code == 303 and response["Location"] == f"http://testserver{page}"
    shown = client.get(page).content.decode()
    assert "managed by catalog source" in shown and "git:platform-catalog" in shown
    assert Dependency.objects.filter(pk=dependency.pk).exists()


def test_a_refusal_without_a_page_to_return_to_is_a_400_page(client, world):
    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    dependency = services.dependency_add(source=world.service, target=ledger, kind="runtime", added_by=None)
    _source_owned(world.service)
    client.force_login(world.owner)
    url = reverse("catalog:dependency-remove", args=[world.service.slug, dependency.pk])
    response = client.post(url, headers={"Referer": "https://elsewhere.example.com/"})
    assert response.status_code == 400
    assert "managed by catalog source" in response.content.decode()
    htmx = client.post(url, headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and htmx["HX-Retarget"] == "#messages"
    assert "managed by catalog source" in htmx.content.decode() and "<html" not in htmx.content.decode()


def test_source_owned_service_page_offers_no_dependency_controls(client, world):
    ledger = service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    services.dependency_add(source=world.service, target=ledger, kind="runtime", added_by=None)
    client.force_login(world.owner)
    assert "Remove dependency on Ledger" in client.get(world.service.get_absolute_url()).content.decode()
    _source_owned(world.service)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert "read-only here" in page
    assert "Remove dependency on Ledger" not in page
    assert reverse("catalog:dependency-add", args=[world.service.slug]) not in page


# --- order, retired services ------------------------------------------------------------------------------------------


def test_catalog_sorts_names_as_people_read_them(client, world, settings):
    for name in ("Web storefront", "api gateway", "Zebra", "billing"):
        service_make(owner=world.owner_team, name=name)
    client.force_login(world.outsider)
    for cache in (False, True):
        settings.CATALOG_PAGE_CACHE = cache
        names = [s.name for s in client.get(CATALOG).context["services"]]
        assert names == ["api gateway", "billing", "Payments API", "Web storefront", "Zebra"]
        descending = [s.name for s in client.get(CATALOG, {"ordering": "-name"}).context["services"]]
        assert descending == names[::-1]


def test_decommissioned_services_are_hidden_unless_asked_for(client, world, django_assert_max_num_queries):
    service_make(owner=world.owner_team, slug="old-ledger", name="Old ledger", lifecycle="decommissioned")
    service_make(owner=world.owner_team, slug="retiring", name="Retiring", lifecycle="decommissioning")
    client.force_login(world.outsider)

    def slugs(**params: str) -> set[str]:
        return {s.slug for s in client.get(CATALOG, params).context["services"]}

    with django_assert_max_num_queries(10):
        assert slugs() == {"payments-api", "retiring"}
    assert slugs(retired="show") == {"payments-api", "retiring", "old-ledger"}
    assert slugs(retired="only") == {"old-ledger"}
    assert slugs(lifecycle="decommissioned") == {"old-ledger"}  # asking for the lifecycle is asking for them
    page = client.get(CATALOG).content.decode()
    assert 'name="retired"' in page and "Include decommissioned" in page


def test_catalog_box_filters_the_list_and_the_top_bar_searches_everything(client, world):
    client.force_login(world.outsider)
    page = client.get(CATALOG, {"q": "payments"}).content.decode()
    top_bar = re.search(r'<form class="global-search".*?</form>', page, re.S).group()  # type: ignore[union-attr]
    assert 'value="payments"' not in top_bar  # the top bar is not a second copy of the catalog's box
    assert 'id="catalog-q"' in page and 'value="payments"' in page
    assert "from:input[name=q]" not in page  # typing in the top bar must not refresh the list
    assert "from:#catalog-q" in page


@pytest.mark.parametrize("count", [3, 30])
def test_catalog_health_column_is_one_request_for_the_page(client, world, django_assert_max_num_queries, count):
    """The cached rows carry a placeholder per service; one htmx request fills them all, and the page costs no more."""
    _populate(TeamFactory(), count)
    services_made = list(Service.objects.all())
    client.force_login(world.outsider)
    with django_assert_max_num_queries(10):
        content = client.get(CATALOG).content.decode()
    assert '<th scope="col">Health</th>' in content
    for service in services_made:
        assert f'id="health-{service.pk}"' in content
    loaders = re.findall(r'hx-get="(/catalog/health/\?[^"]*)"', content)
    assert len(loaders) == 1
    asked = {int(value) for value in re.findall(r"service=(\d+)", loaders[0])}
    assert asked == {service.pk for service in services_made}


def test_team_and_system_pages_fill_their_health_column_with_one_request(client, world):
    system = SystemFactory(owner=world.owner_team)
    other = service_make(owner=world.owner_team, system=system)
    Service.objects.filter(pk=world.service.pk).update(system=system)
    client.force_login(world.outsider)
    for url in (system.get_absolute_url(), world.owner_team.get_absolute_url()):
        content = client.get(url).content.decode()
        assert '<th scope="col">Health</th>' in content
        loaders = re.findall(r'hx-get="(/catalog/health/\?[^"]*)"', content)
        assert len(loaders) == 1, url
        assert {int(value) for value in re.findall(r"service=(\d+)", loaders[0])} == {world.service.pk, other.pk}
        assert f'id="health-{other.pk}"' in content
