"""Insights pages, their CSV and the API: figures on the page, links to the board, clear errors, sign-in required."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from deployments.models import State
from tests.factories import UserFactory
from tests.insights.support import deployment_make

pytestmark = pytest.mark.django_db

RANGE = {"since": "2026-03-02", "until": "2026-03-15", "tz": "Europe/Paris"}


@pytest.mark.parametrize(
    "url",
    [
        "/insights/",
        "/insights/teams/payments/",
        "/insights/services/pay-api/",
        "/insights/systems/payments-core/",
        "/insights/dora.csv",
    ],
)
def test_pages_send_anonymous_people_to_sign_in(client, history, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_api_refuses_anonymous_callers(api_client, history) -> None:
    assert api_client.get("/api/v1/insights/dora/").status_code == 401


def test_organisation_page_shows_tiles_bands_charts_and_teams(client, history, django_assert_max_num_queries) -> None:
    client.force_login(UserFactory())
    with django_assert_max_num_queries(12):
        page = client.get("/insights/", RANGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<h1>Insights</h1>" in html and 'aria-current="page"' in html
    assert "0.5 per day" not in html and "3.5 per week" in html  # under one a day, shown per week
    assert "41.7 %" in html and "median 3.5 h" in html
    assert ">High</span>" in html and ">Medium</span>" in html
    assert "median 45 min" in html and "over 4 deployments that shipped new commits" in html  # lead time
    assert html.count('role="img"') == 5 and "<script>" not in html
    # Numbers link to the board, filtered.
    assert "/deployments/?environment=production&amp;state=succeeded" in html
    assert (
        'href="/insights/teams/payments/?' in html and "/deployments/?team=payments&amp;environment=production" in html
    )
    assert "Quiet" in html and ">No data</span>" in html


def test_team_system_and_service_pages(client, history) -> None:
    client.force_login(UserFactory())
    team = client.get("/insights/teams/payments/", RANGE).content.decode()
    assert "<h1>Payments</h1>" in team and "Pay API" in team and "/deployments/?service=pay-api" in team
    system = client.get("/insights/systems/payments-core/", RANGE)
    assert system.status_code == 200 and b"Ledger" in system.content
    service = client.get("/insights/services/pay-api/", RANGE).content.decode()
    assert "<h1>Pay API</h1>" in service and "33.3 %" in service  # 2 of 6
    assert client.get("/insights/teams/nobody/").status_code == 404


@pytest.mark.parametrize(
    "url",
    ["/insights/", "/insights/teams/payments/", "/insights/services/pay-api/", "/insights/systems/payments-core/"],
)
def test_every_insights_page_marks_insights_in_the_navigation(client, history, url: str) -> None:
    client.force_login(UserFactory())
    html = client.get(url, RANGE).content.decode()
    assert f'<a href="{reverse("portal:insights")}" aria-current="page">Insights</a>' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"window": "12d"}, "Select a valid choice"),
        ({"since": "2026-03-02"}, "A range needs both since and until."),
        ({"since": "2026-03-09", "until": "2026-03-02"}, "until must be on or after since"),
        ({"window": "7d", "since": "2026-03-02", "until": "2026-03-03"}, "not both"),
        ({"tz": "Mars/Olympus"}, "is not a time zone"),
        ({"since": "0001-01-01", "until": "9999-12-31"}, "Give a date between"),
        ({"environment": "moon"}, "Select a valid choice"),
    ],
)
def test_bad_questions_get_a_message_on_the_page(client, history, query: dict, message: str) -> None:
    client.force_login(UserFactory())
    page = client.get("/insights/", query)
    assert page.status_code == 400 and message in page.content.decode()


def test_csv_has_the_window_then_each_week(client, history) -> None:
    client.force_login(UserFactory())
    response = client.get("/insights/dora.csv", {"scope": "team:payments", **RANGE})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="dora-team-payments-2026-03-02-2026-03-15.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["period"] for row in rows] == ["window", "week", "week"]
    whole = rows[0]
    assert (whole["deployments"], whole["successes"], whole["failures"], whole["rework"]) == ("9", "6", "3", "4")
    assert whole["recovery_median_seconds"] == "21600" and whole["change_fail_rate_band"] == "medium"
    bad = client.get("/insights/dora.csv", {"scope": "team:"})
    assert bad.status_code == 400 and b"Give the scope as org" in bad.content


def test_api_gives_the_figures_of_a_scope(api_client, history) -> None:
    api_client.force_authenticate(UserFactory())
    response = api_client.get("/api/v1/insights/dora/", {"scope": "team:payments", **RANGE})
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == {"kind": "team", "slug": "payments", "name": "Payments"}
    assert body["window"] == {
        "first_day": "2026-03-02",
        "last_day": "2026-03-15",
        "days": 14,
        "time_zone": "Europe/Paris",
    }
    assert body["environments"] == ["production"]
    assert (body["deployments"], body["successes"], body["failures"], body["rework"]) == (9, 6, 3, 4)
    assert body["deployment_frequency"]["band"] == "high"
    assert body["change_fail_rate"] == {"value": pytest.approx(1 / 3), "band": "medium"}
    assert body["recovery_time"]["median_seconds"] == pytest.approx(21600)
    assert body["lead_time"] == {
        "median_seconds": 3600,
        "p90_seconds": pytest.approx(3600 + 0.8 * 82800),
        "measured": 3,
        "band": "high",
    }
    assert [week["week_start"] for week in body["weekly"]] == ["2026-03-02", "2026-03-09"]
    service = api_client.get("/api/v1/insights/dora/", {"scope": "service:pay-api", "window": "7d"})
    assert service.status_code == 200 and service.json()["window"]["days"] == 7


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"scope": "galaxy:far"}, "scope", "Give the scope as org"),
        ({"scope": "team:nobody"}, "scope", "There is no team 'nobody'."),
        ({"window": "30"}, "window", "Select a valid choice"),
        ({"since": "2026-03-02"}, "non_field_errors", "A range needs both since and until."),
        ({"tz": "../../etc/passwd"}, "tz", "is not a time zone"),
        ({"scope": "org\x00"}, "scope", "Null characters are not allowed."),
    ],
)
def test_api_explains_bad_questions(api_client, history, query: dict, field: str, message: str) -> None:
    api_client.force_authenticate(UserFactory())
    response = api_client.get("/api/v1/insights/dora/", query)
    assert response.status_code == 400
    assert any(message in text for text in response.json()[field])


def test_the_api_is_in_the_schema(client, history) -> None:
    client.force_login(UserFactory())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/insights/dora/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"scope", "window", "since", "until", "environment", "tz"}
    assert set(operation["responses"]) >= {"200", "400", "401"}
    assert reverse("api:insights-dora") == "/api/v1/insights/dora/"


def test_service_page_shows_its_own_figures(client, history) -> None:
    client.force_login(UserFactory())
    quiet = client.get(history.pay_api.get_absolute_url()).content.decode()
    assert "Delivery, last 30 days" in quiet and "no figures yet" in quiet  # the fixture's history is older
    now = timezone.now()
    deployment_make(
        history.pay_api,
        history.production,
        State.ROLLED_BACK,
        started=now - timedelta(days=2, minutes=30),
        finished=now - timedelta(days=2),
    )
    deployment_make(history.pay_api, history.production, State.SUCCEEDED, started=now - timedelta(days=1), finished=now)
    page = client.get(history.pay_api.get_absolute_url()).content.decode()
    assert "50.0 %" in page and "median 30 min" in page and 'href="/insights/services/pay-api/"' in page
    assert "/deployments/?service=pay-api&amp;state=succeeded" in page


def test_a_service_never_deployed_reads_no_figures_and_they_are_what_reading_gives(history) -> None:
    """The service page skips the figures of a service without deployments: they are exactly the computed ones."""
    from insights import selectors
    from insights.templatetags.insights_tags import dora_service

    idle = Service.objects.get(slug="idle")
    computed = dora_service(idle)
    skipped = dora_service(idle, frozenset())
    assert skipped["figures"] == computed["figures"] == selectors.Figures(days=30)
    assert skipped["tiles"] == computed["tiles"]
    assert dora_service(idle, "")["figures"] == computed["figures"]  # an unknown value is no knowledge


def test_without_a_protected_environment_everything_is_no_data(client, history) -> None:
    """A portal with no production-like environment yet: no figure, a message, and no error on any page."""
    history.production.protected = False
    history.production.save()
    client.force_login(UserFactory())
    page = client.get("/insights/", RANGE).content.decode()
    assert "No environment is marked protected" in page and ">No data</span>" in page and ">Elite<" not in page
    assert client.get(history.pay_api.get_absolute_url()).status_code == 200
    assert client.get("/insights/teams/payments/").status_code == 200
    api = client.get("/api/v1/insights/dora/", {"scope": "service:pay-api"}).json()
    assert api["environments"] == [] and api["deployments"] == 0 and api["change_fail_rate"]["band"] == "no_data"


def test_the_team_page_shows_the_team_figures(client, history) -> None:
    from insights import selectors
    from tests.insights.support import change_set_make

    client.force_login(UserFactory())
    page = client.get(reverse("teams:team-detail", args=["payments"])).content.decode()
    assert "Delivery, last 30 days" in page and "no figures yet" in page  # the history is in March
    finished = timezone.now() - timedelta(hours=3)
    recent = deployment_make(
        history.ledger, history.production, State.SUCCEEDED, started=finished - timedelta(minutes=5), finished=finished
    )
    change_set_make(recent.release, finished - timedelta(hours=2))
    figures = selectors.dora_team_figures(team=history.payments)
    assert (figures.successes, figures.leads) == (1, 1) and figures.lead_median == pytest.approx(7200, abs=1)
    page = client.get(reverse("teams:team-detail", args=["payments"])).content.decode()
    assert "Change lead time" in page and "median 2.0 h" in page and "/insights/teams/payments/" in page
    assert selectors.dora_team_figures(team=history.search).deployments == 0
