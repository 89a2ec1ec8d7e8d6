"""Ranges of days on the boards: the deployments board and API (when a deployment ended), the incidents list and API
(when an incident started), each in the portal's days; and Insights' numbers linking to the board with their window's
days, so the board shows the deployments behind a figure and not only the newest."""

from datetime import timedelta

import pytest

from deployments.models import Deployment
from incidents.models import Incident
from tests.factories import UserFactory
from tests.insights.conftest import at

pytestmark = pytest.mark.django_db


def board(client, **query: str) -> list[int]:  # type: ignore[no-untyped-def]
    response = client.get("/deployments/", query)
    assert response.status_code == 200
    return sorted(d.pk for d in response.context["recent"])


def test_the_board_shows_the_deployments_that_ended_in_a_range_of_days(client, history) -> None:
    client.force_login(UserFactory())
    finder = list(
        Deployment.objects.filter(service=history.finder).order_by("finished_at").values_list("pk", flat=True)
    )
    assert board(client, service="finder") == sorted(finder)
    # Ended on 9, 11 and 14 March (UTC, the portal's zone): from the 10th to the 13th is the 11th's only.
    assert board(client, service="finder", since="2026-03-10", until="2026-03-13") == [finder[1]]
    assert board(client, service="finder", since="2026-03-11") == finder[1:]
    assert board(client, service="finder", until="2026-03-11") == finder[:2]  # the last day is whole
    page = client.get("/deployments/", {"since": "2026-03-10"}).content.decode()
    assert 'type="date"' in page and 'name="since"' in page and 'value="2026-03-10"' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "2026-03-14", "until": "2026-03-10"}, "The last day comes before the first."),
        ({"since": "tomorrow"}, "Enter a valid date."),
        ({"until": "9999-12-31"}, "Give a day between 2000-01-01 and 2100-12-31."),
        ({"since": "1899-01-01"}, "Give a day between 2000-01-01 and 2100-12-31."),
    ],
)
def test_a_bad_range_is_said_on_the_board_and_in_the_api(client, api_client, history, query, message) -> None:
    user = UserFactory()
    client.force_login(user)
    page = client.get("/deployments/", query)  # said on the page; the bad range is left out, as any bad filter
    assert page.status_code == 200 and message in page.content.decode()
    assert ("From: " if "since" in query and "until" not in query else "To: ") in page.content.decode()
    api_client.force_authenticate(user)
    answer = api_client.get("/api/v1/deployments/", query)
    assert answer.status_code == 400 and message in str(answer.json())
    incidents = api_client.get("/api/v1/incidents/", query)
    assert incidents.status_code == 400 and message in str(incidents.json())
    listed = client.get("/incidents/", query)
    assert listed.status_code == 200 and message in listed.content.decode()


def test_the_api_filters_deployments_by_days(api_client, history) -> None:
    api_client.force_authenticate(UserFactory())
    answer = api_client.get("/api/v1/deployments/", {"service": "finder", "since": "2026-03-10", "until": "2026-03-13"})
    assert answer.status_code == 200
    rows = answer.json()["results"] if isinstance(answer.json(), dict) else answer.json()
    assert [row["state"] for row in rows] == ["rolled_back"]


def test_incidents_are_listed_by_the_day_they_started(client, api_client, history) -> None:
    early = Incident.objects.create(title="Early", started_at=at("2026-03-02 10:00"))
    late = Incident.objects.create(title="Late", started_at=at("2026-03-20 23:59"))
    early.services.add(history.finder)
    late.services.add(history.finder)
    user = UserFactory()
    client.force_login(user)
    page = client.get("/incidents/", {"state": "all", "since": "2026-03-10", "until": "2026-03-20"})
    assert [i.title for i in page.context["incidents"]] == ["Late"]
    assert 'name="until"' in page.content.decode() and 'value="2026-03-20"' in page.content.decode()
    api_client.force_authenticate(user)
    answer = api_client.get("/api/v1/incidents/", {"until": "2026-03-19"})
    rows = answer.json()["results"] if isinstance(answer.json(), dict) else answer.json()
    assert [row["title"] for row in rows] == ["Early"]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    names = {p["name"] for p in schema["paths"]["/api/v1/incidents/"]["get"]["parameters"]}
    assert {"since", "until", "status", "service"} <= names
    names = {p["name"] for p in schema["paths"]["/api/v1/deployments/"]["get"]["parameters"]}
    assert {"since", "until"} <= names


def test_insights_numbers_link_to_the_board_with_their_days(client, history) -> None:
    client.force_login(UserFactory())
    html = client.get("/insights/", {"since": "2026-03-02", "until": "2026-03-15"}).content.decode()
    assert "/deployments/?environment=production&amp;since=2026-03-02&amp;until=2026-03-15&amp;state=succeeded" in html
    assert "/deployments/?team=payments&amp;environment=production&amp;since=2026-03-02&amp;until=2026-03-15" in html
    # Days in another zone than the board's: the links drop the dates rather than point at other days.
    paris = client.get("/insights/", {"since": "2026-03-02", "until": "2026-03-15", "tz": "Europe/Paris"})
    assert "/deployments/?environment=production&amp;state=succeeded" in paris.content.decode()
    # The board then shows the figure's deployments: 7 successes in production from 2 to 15 March (UTC days).
    succeeded = board(client, environment="production", since="2026-03-02", until="2026-03-15", state="succeeded")
    assert (
        len(succeeded)
        == Deployment.objects.filter(
            environment=history.production,
            state="succeeded",
            finished_at__gte=at("2026-03-02 00:00"),
            finished_at__lt=at("2026-03-15 00:00") + timedelta(days=1),
        ).count()
    )
