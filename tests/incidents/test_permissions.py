"""The permission matrix for every incident route: (owner, outsider, commander, staff, anonymous) × (pages, API).

Anyone signed in reads and declares; the owners of an affected service, the commander and platform admins write;
rolling a suspect back needs the deploy permission on the suspect's service. Refused writes change nothing.
"""

import pytest
from django.urls import reverse

from incidents.models import Incident, IncidentDeployment
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ROLES = ["owner", "outsider", "commander", "staff", "anonymous"]


@pytest.fixture
def people(world, incident):  # type: ignore[no-untyped-def]
    commander = UserFactory(username="carla")
    Incident.objects.filter(pk=incident.pk).update(commander=commander)
    return {"owner": world.owner, "outsider": world.outsider, "commander": commander, "staff": world.staff}


def _login(client, people, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(people[role])


READ = {"owner": 200, "outsider": 200, "commander": 200, "staff": 200, "anonymous": 302}
WRITE_PAGE = {"owner": 302, "outsider": 403, "commander": 302, "staff": 302, "anonymous": 302}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["incidents:list", "incidents:new", "incidents:detail", "incidents:edit"])
def test_pages(client, people, incident, role, name) -> None:
    _login(client, people, role)
    args = [] if name in ("incidents:list", "incidents:new") else [incident.pk]
    response = client.get(reverse(name, args=args))
    expected = READ[role] if name != "incidents:edit" else {**READ, "outsider": 403}[role]
    assert response.status_code == expected
    if role == "anonymous":
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ROLES)
def test_post_an_update(client, people, incident, role) -> None:
    _login(client, people, role)
    response = client.post(
        reverse("incidents:update", args=[incident.pk]), {"message": f"by {role}", "status": "identified"}
    )
    assert response.status_code == WRITE_PAGE[role]
    incident.refresh_from_db()
    assert (incident.status == "identified") is (WRITE_PAGE[role] == 302 and role != "anonymous")


@pytest.mark.parametrize("role", ROLES)
def test_edit(client, people, incident, world, role) -> None:
    _login(client, people, role)
    form = {"title": f"Renamed by {role}", "severity": "SEV1", "summary": "", "service_slugs": world.service.slug}
    response = client.post(reverse("incidents:edit", args=[incident.pk]), form)
    assert response.status_code == WRITE_PAGE[role]
    incident.refresh_from_db()
    assert (incident.title == f"Renamed by {role}") is (WRITE_PAGE[role] == 302 and role != "anonymous")


@pytest.mark.parametrize("role", ROLES)
def test_link_and_unlink(client, people, incident, shipped, role) -> None:
    _login(client, people, role)
    bad = shipped[1]
    response = client.post(reverse("incidents:link", args=[incident.pk]), {"deployment": bad.pk, "relation": "cause"})
    assert response.status_code == WRITE_PAGE[role]
    allowed = WRITE_PAGE[role] == 302 and role != "anonymous"
    assert IncidentDeployment.objects.filter(incident=incident, deployment=bad).exists() is allowed
    IncidentDeployment.objects.get_or_create(incident=incident, deployment=bad, defaults={"relation": "cause"})
    response = client.post(reverse("incidents:unlink", args=[incident.pk, bad.pk]))
    assert response.status_code == WRITE_PAGE[role]
    assert IncidentDeployment.objects.filter(incident=incident, deployment=bad).exists() is not allowed


# Rolling back needs deploy permission on the suspect's service: the commander alone does not have it.
ROLLBACK = {"owner": 302, "outsider": 403, "commander": 403, "staff": 302, "anonymous": 302}


@pytest.mark.parametrize("role", ROLES)
def test_rollback(client, people, incident, shipped, role) -> None:
    from deployments.models import Deployment

    _login(client, people, role)
    url = reverse("incidents:rollback", args=[incident.pk, shipped[1].pk])
    response = client.post(url, {"confirmed": "yes"})
    assert response.status_code == ROLLBACK[role]
    assert Deployment.objects.count() == (3 if ROLLBACK[role] == 302 and role != "anonymous" else 2)


def test_rollback_without_confirmation_asks_first(client, people, incident, shipped) -> None:
    from deployments.models import Deployment

    client.force_login(people["owner"])
    response = client.post(reverse("incidents:rollback", args=[incident.pk, shipped[1].pk]))
    assert response.status_code == 200 and b"Roll back" in response.content
    assert Deployment.objects.count() == 2


API_READ = {"owner": 200, "outsider": 200, "commander": 200, "staff": 200, "anonymous": 401}
API_WRITE = {"owner": 200, "outsider": 403, "commander": 200, "staff": 200, "anonymous": 401}


@pytest.mark.parametrize("role", ROLES)
def test_api(api_client, people, incident, shipped, role) -> None:
    if role != "anonymous":
        api_client.force_authenticate(people[role])
    detail = reverse("api:incident-detail", args=[incident.pk])
    assert api_client.get(reverse("api:incident-list")).status_code == API_READ[role]
    assert api_client.get(detail).status_code == API_READ[role]
    assert api_client.get(reverse("api:incident-suspects", args=[incident.pk])).status_code == API_READ[role]
    assert api_client.get(reverse("api:incident-updates", args=[incident.pk])).status_code == API_READ[role]
    assert api_client.patch(detail, {"title": f"by {role}"}, format="json").status_code == API_WRITE[role]
    created = {200: 201}.get(API_WRITE[role], API_WRITE[role])
    update = api_client.post(reverse("api:incident-updates", args=[incident.pk]), {"message": "hi"}, format="json")
    assert update.status_code == created
    link = api_client.post(
        reverse("api:incident-links", args=[incident.pk]),
        {"deployment": shipped[1].pk, "relation": "cause"},
        format="json",
    )
    assert link.status_code == created
    incident.refresh_from_db()
    assert (incident.title == f"by {role}") is (API_WRITE[role] == 200)
    # Declaring is open to anyone signed in.
    new = api_client.post(
        reverse("api:incident-list"), {"title": "New", "severity": "SEV4", "services": ["payments-api"]}, format="json"
    )
    assert new.status_code == (401 if role == "anonymous" else 201)
