"""The Alertmanager webhook: a receiver's token, firing alerts opening and joining an incident per service and
alert group, resolved ones mitigating it, and every bad notification refused whole with a 4xx."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from incidents import alertmanager
from incidents.models import AlertNotification, Incident, Status
from tests.incidents.payloads import alert, notification, now

pytestmark = pytest.mark.django_db
URL = "/api/v1/incidents/alertmanager/"


@pytest.fixture
def token(world) -> str:  # type: ignore[no-untyped-def]
    return alertmanager.receiver_create(name="runway", created_by=world.staff)[1]


def _post(client, token, body, **extra):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def test_the_url_is_the_named_route() -> None:
    assert reverse("api:alertmanager-webhook") == URL


def test_a_firing_alert_opens_an_incident_then_joins_it_and_resolved_mitigates_it(client, world, token) -> None:
    started = now() - timedelta(minutes=3)
    response = _post(client, token, notification([alert(starts=started)]))
    assert response.status_code == 200, response.content
    (result,) = response.json()["incidents"]
    incident = Incident.objects.get(pk=result["incident"])
    assert result["action"] == "opened" and incident.source == "alertmanager"
    assert incident.started_at == started and incident.severity == "SEV2" and incident.status == Status.INVESTIGATING
    assert list(incident.services.values_list("slug", flat=True)) == ["payments-api"]
    assert incident.title == "HighErrorRate for payments-api on payments-api"

    second = alert(name="HighLatency", starts=started + timedelta(minutes=1))
    joined = _post(client, token, notification([alert(starts=started), second]))
    assert joined.json()["incidents"][0] == {"service": "payments-api", "incident": incident.pk, "action": "joined"}
    assert Incident.objects.count() == 1

    ended = now()
    resolved = notification(
        [
            alert(starts=started, status="resolved", ends=ended),
            {**second, "status": "resolved", "endsAt": ended.isoformat()},
        ]
    )
    assert _post(client, token, resolved).json()["incidents"][0]["action"] == "mitigated"
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED and incident.mitigated_at == ended

    # It fires again: the same group's incident reopens, its mitigation cleared.
    again = _post(client, token, notification([alert(starts=ended + timedelta(seconds=1) - timedelta(seconds=1))]))
    assert again.json()["incidents"][0]["action"] in ("reopened",)
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING and incident.mitigated_at is None


def test_each_service_and_group_has_its_own_incident(client, world, token) -> None:
    from tests.factories import service_make

    service_make(owner=world.other_team, slug="search-api")
    started = now()
    body = notification(
        [
            alert(starts=started),
            alert("search-api", starts=started),
            {**alert(starts=started), "labels": {"alertname": "NoService"}},
        ]
    )
    results = _post(client, token, body).json()["incidents"]
    assert [(r["service"], r["action"]) for r in results] == [("payments-api", "opened"), ("search-api", "opened")]
    other_group = notification([alert(starts=started)], group_key='{}:{alertname="Other"}')
    assert _post(client, token, other_group).json()["incidents"][0]["action"] == "opened"
    assert Incident.objects.count() == 3


@pytest.mark.parametrize(
    ("mutate", "status", "field"),
    [
        (lambda b: {**b, "version": "3"}, 400, "version"),
        (lambda b: {**b, "status": "weird"}, 400, "status"),
        (lambda b: {**b, "groupKey": ""}, 400, "groupKey"),
        (lambda b: {**b, "groupKey": "x" * 5000}, 400, "groupKey"),
        (lambda b: {**b, "alerts": []}, 400, "alerts"),
        (lambda b: {**b, "alerts": "many"}, 400, "alerts"),
        (lambda b: {**b, "alerts": [{**b["alerts"][0], "startsAt": "yesterday"}]}, 400, "alerts[0].startsAt"),
        (lambda b: {**b, "alerts": [{**b["alerts"][0], "labels": {"service": ["a"]}}]}, 400, "alerts[0].labels"),
        (
            lambda b: {**b, "alerts": [{**b["alerts"][0], "labels": {"service": "payments-api", "x": "\x00"}}]},
            400,
            "non_field_errors",
        ),
        (lambda b: {**b, "alerts": [{**b["alerts"][0], "labels": {"alertname": "A"}}]}, 422, "alerts"),
        (lambda b: {**b, "alerts": [{**b["alerts"][0], "labels": {"service": "ghost-api"}}]}, 422, "alerts"),
        (lambda b: [b], 400, "non_field_errors"),
    ],
)
def test_a_bad_notification_is_refused_whole_and_changes_nothing(client, world, token, mutate, status, field) -> None:
    good = notification([alert(starts=now()), alert(starts=now(), name="Other")])
    response = _post(client, token, mutate(good))
    assert response.status_code == status and field in response.json(), response.content
    assert not Incident.objects.exists() and not AlertNotification.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"version": NaN}', 400),
        (b"[" * 10000 + b"]" * 10000, 400),
        (b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}', 413),
    ],
)
def test_malformed_and_huge_bodies_are_4xx(client, world, token, body, status) -> None:
    assert _post(client, token, body).status_code == status
    assert not Incident.objects.exists()


def test_a_replayed_notification_is_409_and_changes_nothing(client, world, token) -> None:
    body = json.dumps(notification([alert(starts=now())]))
    assert _post(client, token, body).status_code == 200
    events = AuditEvent.objects.count()
    replay = _post(client, token, body)
    assert replay.status_code == 409 and "received before" in replay.json()["detail"]
    assert Incident.objects.count() == 1 and AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    "authorization", ["", "Bearer nope", "Bearer rwam_abc_def", "Basic dXNlcjpwYXNz", "Bearer rwy_abc_def"]
)
def test_without_a_receiver_token_it_is_401(client, world, token, authorization) -> None:
    response = client.post(
        URL,
        json.dumps(notification([alert(starts=now())])),
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
    )
    assert response.status_code == 401 and not Incident.objects.exists()


def test_a_revoked_token_is_refused(client, world, token) -> None:
    receiver = alertmanager.AlertReceiver.objects.get()
    alertmanager.receiver_revoke(receiver=receiver, user=world.staff)
    response = _post(client, token, notification([alert(starts=now())]))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_only_a_digest_of_the_token_is_stored(world, token) -> None:
    receiver = alertmanager.AlertReceiver.objects.get()
    secret = token.split("_", 2)[2]  # the secret is URL-safe base64, which has underscores of its own
    assert len(secret) >= 40
    assert secret not in json.dumps(list(alertmanager.AlertReceiver.objects.values()), default=str)
    assert receiver.digest and len(receiver.digest) == 64


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 200), ("anonymous", 302)])
def test_only_platform_admins_manage_receivers(client, world, role, expected) -> None:
    if role != "anonymous":
        client.force_login(getattr(world, role))
    assert client.get(reverse("incidents:receivers")).status_code == expected
    made = client.post(reverse("incidents:receivers"), {"name": f"r-{role}"})
    assert made.status_code == expected
    assert alertmanager.AlertReceiver.objects.filter(name=f"r-{role}").exists() is (expected == 200)
    if expected == 200:
        assert b"rwam_" in made.content
    receiver = alertmanager.receiver_create(name=f"x-{role}", created_by=world.staff)[0]
    revoke = client.post(reverse("incidents:receiver-revoke", args=[receiver.pk]), {"confirmed": "yes"})
    assert revoke.status_code == {200: 302}.get(expected, expected)
    receiver.refresh_from_db()
    assert (receiver.revoked_at is not None) is (expected == 200)


def test_the_real_alertmanager_payload_is_read(client, world, token) -> None:
    from tests.incidents.payloads import REAL_FIRING

    if not REAL_FIRING:
        pytest.fail("real_firing.json must hold a payload captured from Alertmanager")
    response = _post(client, token, REAL_FIRING)
    assert response.status_code == 200, response.content
    assert response.json()["incidents"][0]["action"] == "opened"


def test_a_notification_costs_the_same_queries_for_two_services_or_ten(
    client, world, token, django_assert_max_num_queries
) -> None:
    """Its writes are batched: one INSERT for the new incidents, one for their services, one for the timeline
    entries, one for the audit events, whatever the number of services and alerts."""
    from tests.factories import service_make

    slugs = ["payments-api"] + [service_make(owner=world.other_team, slug=f"svc-{n}").slug for n in range(9)]
    started = now() - timedelta(minutes=5)

    def fire(services: list[str], key: str, status: str = "firing", name: str = "A") -> list[dict]:  # type: ignore[type-arg]
        end = now() if status == "resolved" else None
        alerts = [
            # SEV3 (warning): no postmortem is drafted on mitigation, which SEV1 and SEV2 would cost
            alert(s, name=f"{name}{n}", starts=started, status=status, ends=end, severity="warning")
            for s in services
            for n in range(3)
        ]
        with django_assert_max_num_queries(BUDGETS[status]) as captured:
            response = _post(client, token, notification(alerts, group_key=key))
        assert response.status_code == 200, response.content
        counts.append(len(captured))
        return response.json()["incidents"]

    counts: list[int] = []
    # Opening: session-free API call, token, services, receiver lock, replay check, open incidents, the incidents,
    # their services, the timeline, the audit log, the notification (and the transaction's own statements).
    assert {r["action"] for r in fire(slugs[:2], "g1")} == {"opened"}
    assert {r["action"] for r in fire(slugs, "g2")} == {"opened"}
    assert counts[0] == counts[1]
    # Joining: no incident written, one timeline INSERT and one audit INSERT for all of them.
    assert {r["action"] for r in fire(slugs[:2], "g1", name="B")} == {"joined"}
    assert {r["action"] for r in fire(slugs, "g2", name="B")} == {"joined"}
    assert counts[2] == counts[3] < counts[0]
    # Mitigating saves each incident whose status changes (Insights follows each save), the rest stays batched.
    assert {r["action"] for r in fire(slugs, "g2", "resolved")} == {"mitigated"}
    assert Incident.objects.filter(status=Status.MITIGATED).count() == 10
    assert AuditEvent.objects.filter(action="incident.declared").count() == 12
    assert AuditEvent.objects.filter(action="incident.noted").count() == 12


BUDGETS = {"firing": 12, "resolved": 12 + 2 * 10}
