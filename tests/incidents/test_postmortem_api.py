"""The postmortem and Alertmanager receiver API: every route's permissions (anyone signed in reads postmortems; the
commander, the affected services' owners and platform admins write them; only an action item's owner team closes it;
only platform admins see and manage receivers), and the rules the pages keep (blameless factors, publishing needs its
sections and freezes the document, a receiver's token is shown once and refused once revoked)."""

from datetime import date

import pytest

from incidents import alertmanager, services
from incidents.models import ActionItem, AlertReceiver, Postmortem
from tests.factories import UserFactory
from tests.incidents.conftest import T0
from tests.incidents.payloads import alert, notification

pytestmark = pytest.mark.django_db
POSTMORTEMS = "/api/v1/postmortems/"
RECEIVERS = "/api/v1/alert-receivers/"


@pytest.fixture
def people(world):  # type: ignore[no-untyped-def]
    """Everyone the matrix asks: the incident's commander is in no team, the reader in none either."""
    commander, reader = UserFactory(username="cora"), UserFactory(username="rita")
    incident = services.incident_declare(
        title="Payments time out",
        severity="SEV2",
        services=[world.service],
        created_by=world.owner,
        commander=commander,
        started_at=T0,
    )
    return {
        "anonymous": None,
        "reader": reader,
        "outsider": world.outsider,
        "owner": world.owner,
        "commander": commander,
        "staff": world.staff,
        "incident": incident,
    }


def as_(api_client, user):  # type: ignore[no-untyped-def]
    api_client.force_authenticate(user)
    return api_client


WRITERS = {"owner", "commander", "staff"}
ROLES = ["anonymous", "reader", "outsider", "owner", "commander", "staff"]


@pytest.mark.parametrize("role", ROLES)
def test_who_reads_and_starts_a_postmortem(api_client, people, role) -> None:
    client = as_(api_client, people[role])
    started = client.post(POSTMORTEMS, {"incident": people["incident"].pk, "summary": "Slow card checks."})
    listed = client.get(POSTMORTEMS)
    if role == "anonymous":
        assert started.status_code == listed.status_code == 401
        return
    assert listed.status_code == 200
    if role in WRITERS:
        assert started.status_code == 201, started.content
        body = started.json()
        assert body["state"] == "draft" and body["summary"] == "Slow card checks."
        assert "Never a person" in body["contributing_factors"] or body["contributing_factors"]
        again = client.post(POSTMORTEMS, {"incident": people["incident"].pk})
        assert again.status_code == 200 and again.json()["id"] == body["id"]  # one postmortem per incident
    else:
        assert started.status_code == 403 and not Postmortem.objects.exists()


@pytest.fixture
def postmortem(people):  # type: ignore[no-untyped-def]
    from incidents import postmortems

    return postmortems.postmortem_start(incident=people["incident"], user=people["owner"])


@pytest.mark.parametrize("role", ROLES)
def test_who_edits_moves_and_adds_to_a_postmortem(api_client, people, postmortem, world, role) -> None:
    client = as_(api_client, people[role])
    url = f"{POSTMORTEMS}{postmortem.pk}/"
    answers = [
        client.get(url),
        client.patch(url, {"impact": "Card payments failed for 12 minutes."}, format="json"),
        client.post(f"{url}lessons/", {"text": "Canary the card client too."}, format="json"),
        client.post(
            f"{url}actions/",
            {"title": "Add a canary check", "owner_team": "search", "due_date": "2026-04-01"},
            format="json",
        ),
        client.post(f"{url}state/", {"state": "in_review"}, format="json"),
    ]
    codes = [a.status_code for a in answers]
    if role == "anonymous":
        assert codes == [401] * 5
    elif role in WRITERS:
        assert codes == [200, 200, 201, 201, 200], [a.content for a in answers]
        postmortem.refresh_from_db()
        assert postmortem.impact.startswith("Card payments") and postmortem.state == "in_review"
        assert answers[3].json()["owner_team"] == "search" and answers[3].json()["status"] == "open"
    else:
        assert codes == [200, 403, 403, 403, 403]
        postmortem.refresh_from_db()
        assert postmortem.impact == "" and postmortem.state == "draft" and not postmortem.actions.exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_the_owner_team_closes_an_action_item(api_client, people, postmortem, world, role) -> None:
    from incidents import postmortems

    item = postmortems.action_add(
        postmortem=postmortem,
        user=people["owner"],
        title="Add a canary",
        owner_team=world.other_team,
        due_date=date(2026, 4, 1),
    )
    client = as_(api_client, people[role])
    answer = client.post(f"{POSTMORTEMS}{postmortem.pk}/actions/{item.pk}/status/", {"status": "done"}, format="json")
    item.refresh_from_db()
    if role == "anonymous":
        assert answer.status_code == 401
    elif role == "outsider":  # a member of Search, the owner team: not an owner of the incident, yet it is theirs
        assert answer.status_code == 200 and answer.json()["closed_by"] == "oscar"
        assert item.status == ActionItem.Status.DONE
    else:  # the incident's owners, its commander and platform admins alike: the work is Search's to call done
        assert answer.status_code == 403 and "Search" in answer.json()["detail"]
        assert item.status == ActionItem.Status.OPEN


def test_the_api_keeps_the_postmortem_rules(api_client, people, postmortem) -> None:
    client = as_(api_client, people["owner"])
    url = f"{POSTMORTEMS}{postmortem.pk}/"
    blamed = client.patch(url, {"contributing_factors": "olivia pushed a bad config"}, format="json")
    assert blamed.status_code == 400 and "contributing_factors" in blamed.json()
    early = client.post(f"{url}state/", {"state": "published"}, format="json")
    assert early.status_code == 409  # draft cannot be published straight away
    client.post(f"{url}state/", {"state": "in_review"}, format="json")
    missing = client.post(f"{url}state/", {"state": "published"}, format="json")
    assert missing.status_code == 400 and "summary" in str(missing.json())
    client.patch(
        url,
        {
            "summary": "Card checks timed out.",
            "impact": "Payments failed for 12 minutes.",
            "contributing_factors": "The card client had no timeout.",
        },
        format="json",
    )
    assert client.post(f"{url}state/", {"state": "published"}, format="json").status_code == 200
    frozen = client.patch(url, {"impact": "Changed later."}, format="json")
    assert frozen.status_code == 409
    assert client.post(f"{url}state/", {"state": "weird"}, format="json").status_code == 400
    moved = client.patch(url, {"incident": 999999}, format="json")
    assert moved.status_code == 400
    assert client.get(f"{POSTMORTEMS}999999/").status_code == 404
    ghost = client.post(f"{url}actions/999999/status/", {"status": "done"}, format="json")
    assert ghost.status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_only_platform_admins_manage_receivers(api_client, people, role) -> None:
    existing, _ = alertmanager.receiver_create(name="existing", created_by=people["staff"])
    client = as_(api_client, people[role])
    answers = [
        client.get(RECEIVERS),
        client.post(RECEIVERS, {"name": "prometheus-eu"}, format="json"),
        client.post(f"{RECEIVERS}{existing.pk}/revoke/"),
    ]
    codes = [a.status_code for a in answers]
    if role == "anonymous":
        assert codes == [401, 401, 401]
    elif role == "staff":
        assert codes == [200, 201, 200]
        token = answers[1].json()["token"]
        assert token.startswith("rwam_") and AlertReceiver.objects.get(name="prometheus-eu").digest not in token
        listed = client.get(RECEIVERS).json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert all(row["token"] is None for row in rows)  # shown once, never again
        assert answers[2].json()["active"] is False
    else:
        assert codes == [403, 403, 403]
        assert not AlertReceiver.objects.filter(name="prometheus-eu").exists()
        existing.refresh_from_db()
        assert existing.is_active


def test_a_receiver_made_through_the_api_opens_incidents_until_revoked(api_client, people, world) -> None:
    client = as_(api_client, people["staff"])
    made = client.post(RECEIVERS, {"name": "prometheus"}, format="json").json()
    body = notification([alert(starts=T0)])
    webhook = "/api/v1/incidents/alertmanager/"
    api_client.force_authenticate(None)
    opened = api_client.post(webhook, body, format="json", HTTP_AUTHORIZATION=f"Bearer {made['token']}")
    assert opened.status_code == 200 and opened.json()["incidents"][0]["action"] == "opened"
    as_(api_client, people["staff"]).post(f"{RECEIVERS}{made['id']}/revoke/")
    api_client.force_authenticate(None)
    again = api_client.post(
        webhook,
        notification([alert(starts=T0, name="Other")]),
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {made['token']}",
    )
    assert again.status_code == 401
    duplicate = as_(api_client, people["staff"]).post(RECEIVERS, {"name": "prometheus"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()


def test_the_new_routes_are_in_the_schema(client, people) -> None:
    client.force_login(people["reader"])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in (
        "/api/v1/postmortems/",
        "/api/v1/postmortems/{id}/",
        "/api/v1/postmortems/{id}/state/",
        "/api/v1/postmortems/{id}/lessons/",
        "/api/v1/postmortems/{id}/actions/",
        "/api/v1/postmortems/{id}/actions/{action_pk}/status/",
        "/api/v1/alert-receivers/",
        "/api/v1/alert-receivers/{id}/revoke/",
    ):
        assert path in schema["paths"], path
