"""The dependency neighbourhood as a picture: two hops either way, cycles marked, every box a link, names escaped."""

import re

import pytest
from django.urls import reverse

from catalog import graph, selectors, services
from tests.factories import SystemFactory, service_make

pytestmark = [pytest.mark.django_db]


def _chain(world):  # type: ignore[no-untyped-def]
    """payments-api → ledger → vault → hsm (three hops), ledger → payments-api (a cycle), checkout → payments-api."""
    made = {slug: service_make(owner=world.owner_team, slug=slug, name=slug.title()) for slug in ("ledger", "vault")}
    made["hsm"] = service_make(owner=world.owner_team, slug="hsm", name="HSM")
    made["checkout"] = service_make(owner=world.other_team, slug="checkout", name="Checkout")
    add = services.dependency_add
    add(source=world.service, target=made["ledger"], kind="runtime", added_by=None)
    add(source=made["ledger"], target=made["vault"], kind="runtime", added_by=None)
    add(source=made["vault"], target=made["hsm"], kind="runtime", added_by=None)
    add(source=made["ledger"], target=world.service, kind="data", added_by=None)
    add(source=made["checkout"], target=world.service, kind="runtime", added_by=None)
    return made


def test_neighbourhood_is_two_hops_either_way_with_the_cycle(world, django_assert_max_num_queries):
    made = _chain(world)
    with django_assert_max_num_queries(3):  # one per hop, one for the names
        neighbourhood = selectors.dependency_neighbourhood(roots=[world.service.pk])
    slugs = {slug for slug, _name, _lifecycle in neighbourhood.nodes.values()}
    assert slugs == {"payments-api", "ledger", "vault", "checkout"}  # hsm is three hops away
    pk = world.service.pk
    assert neighbourhood.cycle_edges == {(pk, made["ledger"].pk), (made["ledger"].pk, pk)}
    assert not neighbourhood.truncated


def test_neighbourhood_stops_at_its_limit(world):
    for i in range(8):
        services.dependency_add(
            source=service_make(owner=world.owner_team, slug=f"caller-{i}"), target=world.service, added_by=None
        )
    neighbourhood = selectors.dependency_neighbourhood(roots=[world.service.pk], limit=5)
    assert len(neighbourhood.nodes) == 5 and neighbourhood.truncated


def test_cycle_detection_handles_a_long_chain_without_recursion():
    edges = {(i, i + 1) for i in range(5000)} | {(5000, 0)}
    assert selectors._edges_in_cycles(edges) == edges
    assert selectors._edges_in_cycles({(1, 2), (2, 3)}) == set()


def test_service_page_draws_the_neighbourhood_with_links_and_the_cycle(client, world):
    made = _chain(world)
    client.force_login(world.outsider)
    page = client.get(world.service.get_absolute_url()).content.decode()
    fragment = reverse("catalog:service-graph", args=[world.service.slug])
    assert f'hx-get="{fragment}" hx-trigger="load"' in page  # the page asks for its picture once loaded
    svg = _svg(client.get(fragment).content.decode())
    for service in (world.service, made["ledger"], made["vault"], made["checkout"]):
        assert f'xlink:href="{service.get_absolute_url()}"' in svg
    assert made["hsm"].get_absolute_url() not in svg
    assert svg.count('class="edge cycle"') == 2  # payments-api ⇄ ledger
    assert "Checkout depends on Payments API (runtime)" in svg
    assert "<!--" not in svg and "<?xml" not in svg


def _svg(page: str) -> str:
    return re.search(r"<svg class=\"dependency-graph\".*?</svg>", page, re.S).group()  # type: ignore[union-attr]


def test_a_hostile_name_stays_text(client, world):
    hostile = '<script>alert(1)</script>" URL="javascript:alert(2)" \\N <img src=x onerror=alert(3)>'
    evil = service_make(owner=world.owner_team, slug="evil", name=hostile[:100])
    services.dependency_add(source=world.service, target=evil, added_by=None)
    client.force_login(world.outsider)
    svg = _svg(client.get(reverse("catalog:service-graph", args=[world.service.slug])).content.decode())
    assert "<script" not in svg
    assert "<img" not in svg
    assert 'href="javascript' not in svg and "onerror=alert(3)&gt;" in svg  # shown as text, never an attribute
    assert "\\N &lt;img" in svg  # dot expands no backslash sequence
    assert "&lt;script&gt;alert(1)" in svg  # the name is shown, as text
    assert 'xlink:href="/catalog/services/evil/"' in svg


def test_output_with_anything_but_drawing_is_refused():
    assert graph._checked('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') is None
    assert graph._checked('<svg xmlns="http://www.w3.org/2000/svg"><g onload="alert(1)"/></svg>') is None
    link = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="{}"/></svg>'
    )
    assert graph._checked(link.format("//evil.example.com/")) is None
    assert graph._checked(link.format("/catalog/services/a/")) is not None


def test_system_page_draws_its_services_neighbourhood(client, world):
    system = SystemFactory(owner=world.owner_team, name="Payments platform", slug="payments-platform")
    world.service.system = system
    world.service.save()
    made = _chain(world)
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:system-detail", args=[system.slug])).content.decode()
    assert reverse("catalog:system-graph", args=[system.slug]) in page
    svg = _svg(client.get(reverse("catalog:system-graph", args=[system.slug])).content.decode())
    assert made["checkout"].get_absolute_url() in svg and 'class="edge cycle"' in svg


def test_pages_keep_their_lists_without_graphviz(client, world, monkeypatch, tmp_path):
    _chain(world)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on this PATH
    client.force_login(world.outsider)
    response = client.get(reverse("catalog:service-graph", args=[world.service.slug]))
    assert response.status_code == 200 and "dependency-graph" not in response.content.decode()
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert "Depends on (1)" in page and "Used by (2)" in page


def test_a_picture_is_drawn_once_per_content(world, monkeypatch, tmp_path):
    made = _chain(world)
    neighbourhood = selectors.dependency_neighbourhood(roots=[world.service.pk])
    first = graph.neighbourhood_svg(neighbourhood, title="t")
    monkeypatch.setenv("PATH", str(tmp_path))  # a second drawing would fail now: only the cache can answer
    assert graph.neighbourhood_svg(neighbourhood, title="t") == first is not None
    services.dependency_add(source=made["checkout"], target=made["vault"], added_by=None)
    changed = selectors.dependency_neighbourhood(roots=[world.service.pk])
    assert graph.neighbourhood_svg(changed, title="t") is None  # new content, not served from the old entry


@pytest.mark.parametrize("count", [2, 20])
def test_the_picture_costs_a_bounded_number_of_queries(client, world, django_assert_max_num_queries, count):
    for i in range(count):
        dependency = service_make(owner=world.other_team, slug=f"dep-{i}")
        services.dependency_add(source=world.service, target=dependency, added_by=None)
        services.dependency_add(
            source=service_make(owner=world.other_team, slug=f"far-{i}"), target=dependency, added_by=None
        )
    client.force_login(world.owner)
    with django_assert_max_num_queries(7):  # session, user, the service and its tags, the neighbourhood's three
        page = client.get(reverse("catalog:service-graph", args=[world.service.slug])).content.decode()
    assert page.count('class="node"') == 2 * count + 1
