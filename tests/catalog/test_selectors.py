"""Reads: dependency cycles are found through the first hop that closes them, within the search depth."""

import pytest

from catalog import selectors, services
from catalog.selectors import CYCLE_SEARCH_DEPTH
from tests.factories import TeamFactory, service_make

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def _chain(length: int, prefix: str = "node"):  # type: ignore[no-untyped-def]
    team = TeamFactory()
    nodes = [service_make(owner=team, slug=f"{prefix}-{i}") for i in range(length)]
    for source, target in zip(nodes, nodes[1:], strict=False):
        services.dependency_add(source=source, target=target, kind="runtime", added_by=None)
    return nodes


def test_no_cycle_in_a_chain():
    nodes = _chain(4)
    assert selectors.service_cycle_neighbours(service=nodes[0]) == set()


def test_three_cycle_is_found_from_each_member():
    a, b, c = _chain(3)
    services.dependency_add(source=c, target=a, kind="runtime", added_by=None)
    assert selectors.service_cycle_neighbours(service=a) == {b.pk}
    assert selectors.service_cycle_neighbours(service=c) == {a.pk}


def test_cycles_longer_than_the_search_depth_are_not_reported():
    nodes = _chain(CYCLE_SEARCH_DEPTH + 2)
    services.dependency_add(source=nodes[-1], target=nodes[0], kind="runtime", added_by=None)
    assert selectors.service_cycle_neighbours(service=nodes[0]) == set()
    short = _chain(CYCLE_SEARCH_DEPTH, prefix="short")
    services.dependency_add(source=short[-1], target=short[0], kind="runtime", added_by=None)
    assert selectors.service_cycle_neighbours(service=short[0]) == {short[1].pk}


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_the_catalog_pages_first_page_in_name_order_is_an_index_scan() -> None:
    """Names sort case-insensitively; a page of 50 must read the Lower(name) index rather than sort the catalog."""
    from django.db import connection

    from catalog.filters import CatalogPageFilterSet
    from catalog.models import Service

    team = TeamFactory()
    Service.objects.bulk_create(
        Service(slug=f"svc-{number}", name=f"{'Svc' if number % 2 else 'svc'} {number:05d}", owner=team)
        for number in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_service")

    page = CatalogPageFilterSet(data={}, queryset=Service.objects.all()).qs[:50]
    plan = page.explain()

    assert "service_order_name_ci" in plan, plan
    assert [service.name for service in page[:3]] == ["svc 00000", "Svc 00001", "svc 00002"]
