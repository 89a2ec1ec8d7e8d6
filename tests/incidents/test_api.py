"""The incidents API: declaring with causes, bad input as field errors, the timeline, suspects, query counts."""

from datetime import timedelta

import pytest
from django.urls import reverse

from incidents.models import Incident
from tests.incidents.conftest import T0

pytestmark = pytest.mark.django_db


def test_declare_with_a_cause_and_read_it_back(api_client, world, shipped) -> None:
    api_client.force_authenticate(world.owner)
    response = api_client.post(
        reverse("api:incident-list"),
        {
            "title": "Payments time out",
            "severity": "SEV1",
            "services": ["payments-api"],
            "started_at": (T0 + timedelta(minutes=2)).isoformat(),
            "causes": [shipped[1].pk],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["commander"] == "olivia" and body["status"] == "investigating" and body["source"] == "manual"
    assert body["links"] == [
        {
            "deployment": shipped[1].pk,
            "relation": "cause",
            "service": "payments-api",
            "version": shipped[1].release.version,
            "created_at": body["links"][0]["created_at"],
        }
    ]
    suspects = api_client.get(reverse("api:incident-suspects", args=[body["id"]])).json()
    assert [(s["deployment"], s["linked"]) for s in suspects] == [(shipped[1].pk, "cause")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "severity": "SEV9", "services": ["payments-api"]}, "severity"),
        ({"title": "x", "severity": "SEV1", "services": []}, "services"),
        ({"title": "x", "severity": "SEV1", "services": ["nope"]}, "services"),
        ({"title": "x", "severity": "SEV1", "services": ["payments-api\x00"]}, "services"),
        ({"title": "x" * 300, "severity": "SEV1", "services": ["payments-api"]}, "title"),
        ({"title": "x", "severity": "SEV1", "services": ["payments-api"], "causes": [999999]}, "causes"),
        ({"title": "x", "severity": "SEV1", "services": ["payments-api"], "commander": "ghost"}, "commander"),
        (
            {"title": "x", "severity": "SEV1", "services": ["payments-api"], "started_at": "2999-01-01T00:00:00Z"},
            "started_at",
        ),
    ],
)
def test_bad_input_is_a_field_error_and_declares_nothing(api_client, world, body, field) -> None:
    api_client.force_authenticate(world.owner)
    response = api_client.post(reverse("api:incident-list"), body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Incident.objects.exists()


def test_status_moves_through_the_api_and_a_resolved_incident_refuses_more(api_client, world, incident) -> None:
    api_client.force_authenticate(world.owner)
    url = reverse("api:incident-updates", args=[incident.pk])
    assert api_client.post(url, {"status": "resolved", "message": "Done"}, format="json").status_code == 201
    again = api_client.post(url, {"status": "investigating"}, format="json")
    assert again.status_code == 409
    timeline = api_client.get(url).json()
    assert [u["status"] for u in timeline] == ["investigating", "resolved"]


def test_the_list_costs_a_fixed_number_of_queries(api_client, world, incident, django_assert_max_num_queries) -> None:
    from incidents import services

    for n in range(15):
        services.incident_declare(title=f"i{n}", severity="SEV3", services=[world.service], created_by=world.owner)
    api_client.force_authenticate(world.owner)
    with django_assert_max_num_queries(8):
        response = api_client.get(reverse("api:incident-list"))
    assert response.json()["count"] == 16


def test_the_incident_page_names_the_suspect_and_lists_in_fixed_queries(
    client, world, incident, shipped, django_assert_max_num_queries
) -> None:
    client.force_login(world.owner)
    page = client.get(reverse("incidents:detail", args=[incident.pk]))
    assert page.status_code == 200
    assert f"#{shipped[1].pk}".encode() in page.content and b"Roll back" in page.content
    with django_assert_max_num_queries(10):
        assert client.get(reverse("incidents:list")).status_code == 200
