"""The audit log page: entries link to their objects, and filters name a service by slug and a type from a list."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from catalog import services as catalog_services
from teams import services as team_services
from teams.models import Team
from techdocs import services as techdocs_services
from tests.factories import service_make

pytestmark = pytest.mark.django_db
LOG = reverse("audit:event-list")


def rows(html: str) -> list[str]:
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    return body.split("<tr>")[1:]


def test_entries_link_to_their_objects_where_they_have_a_page(client, world) -> None:
    runbook = techdocs_services.runbook_create(
        service=world.service, title="Card declines", body="# Steps", created_by=world.owner
    )
    gone = team_services.team_create(name="Short lived", slug="short-lived", created_by=world.staff)
    Team.objects.filter(pk=gone.pk).delete()  # its events stay; its page does not
    client.force_login(world.outsider)

    html = client.get(LOG).content.decode()

    by_repr = {row.split("</td>")[3]: row for row in rows(html)}
    service_row = next(row for cell, row in by_repr.items() if "Payments API" in cell and "catalog.service" in cell)
    assert f'<a href="{world.service.get_absolute_url()}">Payments API</a>' in service_row
    assert f'<a href="{runbook.get_absolute_url()}">' in html
    team_row = next(row for cell, row in by_repr.items() if "teams.team" in cell and "Short lived" in cell)
    assert "<a href=" not in team_row.split("</td>")[3]


def test_the_list_reads_in_a_fixed_number_of_queries(client, world, django_assert_max_num_queries) -> None:
    for n in range(12):
        service = service_make(owner=world.owner_team, slug=f"svc-{n}", name=f"Service {n}")
        techdocs_services.runbook_create(service=service, title=f"Runbook {n}", body="text", created_by=world.owner)
        catalog_services.service_update(service=service, updated_by=world.owner, description=f"number {n}")
    assert AuditEvent.objects.count() > 36
    client.force_login(world.outsider)

    with django_assert_max_num_queries(12):
        html = client.get(LOG).content.decode()

    assert html.count('<a href="/catalog/services/svc-') >= 12


def test_filter_by_service_slug_and_object_type(client, world) -> None:
    search = service_make(owner=world.other_team, slug="search-api", name="Search API")
    catalog_services.service_update(service=search, updated_by=world.staff, description="finds things")
    client.force_login(world.outsider)

    page = client.get(LOG, {"service": "search-api"})
    events = list(page.context["page"].object_list)
    assert events and {event.service_id for event in events} == {search.pk}
    html = page.content.decode()
    assert 'list="audit-services"' in html and '<option value="search-api">' in html
    assert 'Showing <a href="/catalog/services/search-api/">Search API</a>' in html

    by_number = client.get(LOG, {"service": str(search.pk)})  # the links and API clients of before still work
    assert list(by_number.context["page"].object_list) == events

    typed = client.get(LOG, {"object_type": "catalog.service", "service": "search-api"})
    assert {event.object_type for event in typed.context["page"].object_list} == {"catalog.service"}
    select = html[html.index('name="object_type"') : html.index("</select>", html.index('name="object_type"'))]
    assert '<option value="catalog.service">Service (catalog)</option>' in select


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"service": "no-such-service"}, "No service is called &#x27;no-such-service&#x27;"),
        ({"service": "Not A Slug"}, "No service is called"),
        ({"service": "a\x00b"}, "Null characters are not allowed."),
        ({"object_type": "catalog.nothing"}, "Select a valid choice."),
    ],
)
def test_bad_filters_say_what_to_fix(client, world, query, words) -> None:
    client.force_login(world.outsider)
    response = client.get(LOG, query)
    assert response.status_code == 200
    assert words in response.content.decode()


def test_an_event_for_a_model_since_removed_is_listed_without_a_link(client, world) -> None:
    event = AuditEvent.objects.filter(action="service.created").get()
    AuditEvent.objects.create(action="ghost.made", object_type="ghosts.ghost", object_id="1", object_repr="a ghost")
    client.force_login(world.outsider)
    html = client.get(LOG).content.decode()
    assert "a ghost" in html and event.object_repr in html
