"""The audit-events API: read-only, open to signed-in users, filterable by action, object type, service and request."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import service_make

pytestmark = pytest.mark.django_db

EVENTS_URL = reverse("api:audit-event-list")


@pytest.fixture
def history(world, api_client):  # type: ignore[no-untyped-def]
    """Events written by real API requests, each stamped with its request's id."""
    search_api = service_make(owner=world.other_team, slug="search-api", name="Search API")
    api_client.force_authenticate(world.owner)
    detail = reverse("api:service-detail", args=[world.service.slug])
    assert api_client.patch(detail, {"description": "card payments"}, format="json").status_code == 200
    edge = {"source": world.service.slug, "target": search_api.slug}
    assert api_client.post(reverse("api:dependency-list"), edge, format="json").status_code == 201
    api_client.force_authenticate(world.staff)
    transfer = reverse("api:service-transfer", args=[search_api.slug])
    assert api_client.post(transfer, {"new_owner": "payments"}, format="json").status_code == 200
    api_client.force_authenticate(None)
    return {
        "search_api": search_api,
        **{event.action: event for event in AuditEvent.objects.all()},
    }


def _ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("role", ["owner", "outsider", "staff"])
def test_signed_in_users_list_and_read_events(api_client, world, history, role, django_assert_max_num_queries):
    api_client.force_authenticate(getattr(world, role))
    with django_assert_max_num_queries(2):
        response = api_client.get(EVENTS_URL)
    newest_first = list(AuditEvent.objects.order_by("-occurred_at", "-id").values_list("id", flat=True))
    assert _ids(response) == newest_first
    assert response.json()["count"] == 5

    event = history["service.updated"]
    body = api_client.get(reverse("api:audit-event-detail", args=[event.pk])).json()
    assert body["action"] == "service.updated"
    assert body["actor"] == "olivia"
    assert body["object_type"] == "catalog.service"
    assert body["service_id"] == world.service.pk
    assert body["before"] == {"description": ""}
    assert body["after"] == {"description": "card payments"}
    assert body["request_id"] == event.request_id != ""


def test_anonymous_gets_401(api_client, history):
    assert api_client.get(EVENTS_URL).status_code == 401
    detail = reverse("api:audit-event-detail", args=[history["service.updated"].pk])
    assert api_client.get(detail).status_code == 401


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_events_cannot_be_changed_or_deleted(api_client, world, history, method):
    event = history["service.updated"]
    api_client.force_authenticate(world.staff)
    response = getattr(api_client, method)(
        reverse("api:audit-event-detail", args=[event.pk]), {"action": "service.forged"}, format="json"
    )
    assert response.status_code == 405
    assert AuditEvent.objects.get(pk=event.pk).action == "service.updated"
    assert AuditEvent.objects.count() == 5


def test_events_cannot_be_posted(api_client, world, history):
    api_client.force_authenticate(world.staff)
    forged = {"action": "service.forged", "object_type": "catalog.service", "object_id": "1"}
    assert api_client.post(EVENTS_URL, forged, format="json").status_code == 405
    assert not AuditEvent.objects.filter(action="service.forged").exists()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "service."}, ["service.transferred", "service.updated", "service.created", "service.created"]),
        ({"action": "service.updated"}, ["service.updated"]),
        ({"action": "dependency"}, ["dependency.added"]),
        ({"action": "updated"}, []),  # a prefix, not a substring
        ({"object_type": "catalog.dependency"}, ["dependency.added"]),
        (
            {"object_type": "catalog.service"},
            ["service.transferred", "service.updated", "service.created", "service.created"],
        ),
        ({"actor": "stella"}, ["service.transferred"]),
    ],
)
def test_filters(api_client, world, history, params, expected):
    api_client.force_authenticate(world.owner)
    rows = api_client.get(EVENTS_URL, params).json()["results"]
    assert [row["action"] for row in rows] == expected


def test_filter_by_service(api_client, world, history):
    api_client.force_authenticate(world.owner)
    own = _ids(api_client.get(EVENTS_URL, {"service": world.service.pk}))
    assert own == [history["dependency.added"].pk, history["service.updated"].pk, *_created(world.service.pk)]
    other = _ids(api_client.get(EVENTS_URL, {"service": history["search_api"].pk}))
    assert other == [history["service.transferred"].pk, *_created(history["search_api"].pk)]


def _created(service_id: int) -> list[int]:
    return list(AuditEvent.objects.filter(action="service.created", service_id=service_id).values_list("id", flat=True))


def test_filter_by_request_id(api_client, world, history):
    api_client.force_authenticate(world.owner)
    request_ids = {history[action].request_id for action in ("service.updated", "dependency.added")}
    assert len(request_ids) == 2 and "" not in request_ids  # every request has its own id
    for action in ("service.updated", "dependency.added", "service.transferred"):
        event = history[action]
        assert _ids(api_client.get(EVENTS_URL, {"request_id": event.request_id})) == [event.pk]
    assert _ids(api_client.get(EVENTS_URL, {"request_id": "no-such-request"})) == []


def test_bad_filter_value_is_a_400(api_client, world, history):
    api_client.force_authenticate(world.owner)
    response = api_client.get(EVENTS_URL, {"service": "not-a-number"})
    assert response.status_code == 400
    assert set(response.json()) == {"service"}
