"""Scorecard pages and the permission matrix of every scorecard route (pages and API)."""

import pytest
import yaml
from django.urls import reverse

from catalog.models import Service
from scorecards import selectors, services
from scorecards.models import Score, Scorecard
from techdocs.models import Runbook
from tests.factories import service_make
from tests.scorecards.conftest import basic

pytestmark = pytest.mark.django_db
ROLES = ["member", "outsider", "staff", "anonymous"]


@pytest.fixture
def scored(world, scorecard):  # type: ignore[no-untyped-def]
    Service.objects.filter(pk=world.service.pk).update(lifecycle=Service.Lifecycle.PRODUCTION)
    Runbook.objects.create(service=world.service, slug="restart", title="Restart")
    services.scores_compute()
    return scorecard


def _login(client, world, role):  # type: ignore[no-untyped-def]
    people = {"member": world.owner, "outsider": world.outsider, "staff": world.staff}
    if role != "anonymous":
        client.force_login(people[role])


READ = {"member": 200, "outsider": 200, "staff": 200, "anonymous": 302}
ADMIN = {"member": 403, "outsider": 403, "staff": 200, "anonymous": 302}


PAGES = [
    ("scorecards:scorecard-list", [], READ),
    ("scorecards:scorecard-detail", ["basics"], READ),
    ("scorecards:scorecard-new", [], ADMIN),
    ("scorecards:scorecard-edit", ["basics"], ADMIN),
]
API = ["/api/v1/scorecards/", "/api/v1/scorecards/basics/", "/api/v1/scores/", "/api/v1/score-history/"]


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(client, api_client, world, scored, role, mocker) -> None:  # type: ignore[no-untyped-def]
    """Every page and API route for one role: read by everyone signed in, written by platform admins only."""
    delay = mocker.patch("scorecards.tasks.rescore_scorecard.delay")
    _login(client, world, role)
    for name, args, expected in PAGES:
        response = client.get(reverse(name, args=args))
        assert response.status_code == expected[role], name
        if role == "anonymous":
            assert response["Location"].startswith("/accounts/login/")
    changed = basic(title="Renamed")
    response = client.post(reverse("scorecards:scorecard-edit", args=["basics"]), {"text": yaml.safe_dump(changed)})
    assert response.status_code == {**ADMIN, "staff": 302}[role]
    assert (Scorecard.objects.get(name="basics").title == "Renamed") is (role == "staff")
    response = client.post(reverse("scorecards:scorecard-new"), {"text": yaml.safe_dump(basic(name="other"))})
    assert response.status_code == {**ADMIN, "staff": 302}[role]
    assert Scorecard.objects.filter(name="other").exists() is (role == "staff")
    response = client.post(reverse("scorecards:scorecard-rescore", args=["basics"]))
    assert response.status_code == {**ADMIN, "staff": 302}[role]
    assert delay.called is (role == "staff")
    if role != "anonymous":
        api_client.force_authenticate({"member": world.owner, "outsider": world.outsider, "staff": world.staff}[role])
    for url in API:
        assert api_client.get(url).status_code == (401 if role == "anonymous" else 200), url
        assert api_client.post(url, {}).status_code == (401 if role == "anonymous" else 405), url  # read-only


def test_the_scorecard_page_shows_levels_rules_services_and_the_trend(client, world, scored) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.outsider)
    page = client.get(reverse("scorecards:scorecard-detail", args=["basics"])).content.decode()
    assert "Payments API" in page and "Bronze" in page
    assert 'id="rule-adr"' in page and "<svg" in page and "1 Bronze" in page  # the trend's description
    fragment = client.get(
        reverse("scorecards:scorecard-detail", args=["basics"]), {"level": "2"}, HTTP_HX_REQUEST="true"
    )
    assert "<h1>" not in fragment.content.decode() and "No service here." in fragment.content.decode()
    for bad in ("\x00", "²", "99999999999999999999", "-1"):
        assert (
            client.get(reverse("scorecards:scorecard-detail", args=["basics"]), {"level": bad, "team": bad}).status_code
            == 200
        )


def test_the_service_page_shows_levels_and_failing_rules_with_how_to_fix(client, world, scored) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.outsider)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert 'id="scorecards"' in page and "Basics</a>: Bronze" in page
    assert "An ADR" in page and "<strong>Fix:</strong> f" in page


def test_the_editor_refuses_a_scorecard_whose_tests_fail_and_says_why(client, world, scored) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.staff)
    text = yaml.safe_dump(basic(name="new-card", tests=[{"name": "t", "facts": {}, "expect": "none"}]))
    response = client.post(reverse("scorecards:scorecard-new"), {"text": text})
    assert response.status_code == 200
    assert "expected none, got Gold" in response.content.decode()
    assert not Scorecard.objects.filter(name="new-card").exists()
    for bad in ("name: [unclosed", "- a\n- b", "a: &x 1\nb: *x", "name: x\x00"):
        response = client.post(reverse("scorecards:scorecard-new"), {"text": bad})
        assert (
            response.status_code == 200
            and '<div class="field-errors" id="errors-text" aria-live="polite"><p>' in response.content.decode()
        )
    response = client.post(reverse("scorecards:scorecard-new"), {"text": yaml.safe_dump(basic(name="fresh"))})
    assert response.status_code == 302 and Scorecard.objects.filter(name="fresh").exists()


def test_a_scorecard_from_files_is_changed_in_its_file(client, world, scored) -> None:  # type: ignore[no-untyped-def]
    Scorecard.objects.filter(name="basics").update(source_path="basics.yaml")
    client.force_login(world.staff)
    response = client.post(
        reverse("scorecards:scorecard-edit", args=["basics"]), {"text": yaml.safe_dump(basic(title="X"))}
    )
    assert response.status_code == 302 and Scorecard.objects.get(name="basics").title == "Basics"


def test_the_api_spells_out_failing_rules(api_client, world, scored) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.outsider)
    body = api_client.get("/api/v1/scores/", {"team": "payments"}).json()
    (score,) = body["results"]
    assert (score["service"], score["level"], score["rank"]) == ("payments-api", "Bronze", 1)
    assert [item["rule"] for item in score["failing"]] == ["adr", "on-call"]
    assert score["failing"][0]["fix"] == "f"
    history = api_client.get("/api/v1/score-history/", {"service": "payments-api"}).json()["results"]
    assert [(row["scorecard"], row["level"]) for row in history] == [("basics", "Bronze")]
    card = api_client.get("/api/v1/scorecards/basics/").json()
    assert [level["name"] for level in card["levels"]] == ["Bronze", "Silver", "Gold"]
    assert api_client.get("/api/v1/score-history/", {"since": "not-a-date"}).status_code == 400


def test_a_teams_scores_take_a_constant_number_of_queries(world, scorecard, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    for _ in range(15):
        service_make(owner=world.owner_team, lifecycle=Service.Lifecycle.PRODUCTION)
    services.scores_compute()
    with django_assert_num_queries(3):  # the team's services, the scorecards, the scores
        found = selectors.scores_for_team(team_id=world.owner_team.pk)
    assert len(found) == 16
    rows = [row for rows in found.values() for row in rows]
    assert len(rows) == 15 and all(row.failing[0].key == "runbook" for row in rows)


def test_policies_can_read_levels_through_the_scorecards_fact_group(world, scored) -> None:  # type: ignore[no-untyped-def]
    from governance import facts

    documents = facts.service_documents(service_ids=[world.service.pk])
    assert documents[world.service.pk]["scorecards"] == {
        "basics": {"level": "Bronze", "rank": 1, "failing": ["adr", "on-call"]}
    }
    rule = "'basics' in scorecards && scorecards['basics'].rank >= 1"
    raw = basic(name="second", levels=[{"name": "Followed", "rules": [
        {"key": "basics-bronze", "name": "Basics at Bronze", "rule": rule, "why": "w", "fix": "f"}]}])  # fmt: skip
    second = services.scorecard_save(user=world.staff, raw=raw)
    services.scores_compute(scorecards=[second])
    assert Score.objects.get(scorecard=second, service=world.service).level == "Followed"
