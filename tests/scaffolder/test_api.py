"""The scaffolder API: golden paths to read, runs to start (202) and follow, the same checks as the wizard."""

import tempfile
from pathlib import Path

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from catalog.models import Service
from scaffolder import registry, services, tasks
from scaffolder.models import ScaffoldRun
from tests.factories import MembershipFactory, UserFactory
from tests.scaffolder.support import CONTROL, DESCRIPTION, SIZED, STDLIB, answers, paths_install, tree

pytestmark = pytest.mark.django_db

PATHS = reverse("api:golden-path-list")
RUNS = reverse("api:scaffold-run-list")


@pytest.fixture
def git_root(settings, tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATHS_DIR = paths_install(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return settings.GIT_ROOT


def _body(**overrides):  # type: ignore[no-untyped-def]
    return {"golden_path": STDLIB, "answers": answers(), "owner": "payments", **overrides}


def _run(user, owner, name: str) -> ScaffoldRun:  # type: ignore[no-untyped-def]
    path = registry.golden_path_get(STDLIB)
    assert path is not None
    return services.scaffold_request(path=path, answers=answers(name=name), owner=owner, system=None, requested_by=user)


# --- Golden paths -----------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_golden_paths_are_listed_with_parameters_and_steps(api_client, world, git_root):
    api_client.force_authenticate(world.outsider)
    response = api_client.get(PATHS)
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()}
    assert set(rows) == {STDLIB, SIZED}
    stdlib = rows[STDLIB]
    assert (stdlib["version"], stdlib["owner"], stdlib["tags"]) == ("1.0.0", "platform", ["python", "http", "stdlib"])
    assert stdlib["title"] == "Minimal HTTP service (Python standard library)"
    assert stdlib["parameters"]["required"] == ["name", "description"]
    assert set(stdlib["parameters"]["properties"]) == {"name", "description", "greeting", "with_feature_flags"}
    assert stdlib["parameters"]["properties"]["greeting"]["default"] == "Hello"
    assert stdlib["steps"] == [
        {"title": "About the service", "fields": ["name", "description"]},
        {"title": "Example endpoint", "fields": ["greeting", "with_feature_flags"]},
    ]
    assert rows[SIZED]["parameters"]["properties"]["replicas"] == {
        "type": "integer",
        "title": "Replicas",
        "minimum": 1,
        "maximum": 10,
        "default": 2,
    }


@pytest.mark.smoke
def test_one_golden_path_and_an_unknown_one(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    response = api_client.get(reverse("api:golden-path-detail", args=[STDLIB]))
    assert response.status_code == 200 and response.json()["name"] == STDLIB
    assert response.json()["steps"][1] == {"title": "Example endpoint", "fields": ["greeting", "with_feature_flags"]}
    missing = api_client.get(reverse("api:golden-path-detail", args=["no-such-path"]))
    assert missing.status_code == 404
    assert missing.json() == {"detail": "There is no golden path called no-such-path."}


@pytest.mark.smoke
def test_anonymous_gets_401_everywhere(api_client, world, git_root):
    run = _run(world.owner, world.owner_team, "ledger-api")
    for url in (PATHS, reverse("api:golden-path-detail", args=[STDLIB]), RUNS, f"{RUNS}{run.uuid}/"):
        assert api_client.get(url).status_code == 401, url
    assert api_client.post(RUNS, _body(answers=answers(name="anon-api")), format="json").status_code == 401
    assert ScaffoldRun.objects.count() == 1


# --- Starting a run ---------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_valid_request_is_accepted_with_a_queued_run(
    api_client, world, git_root, django_capture_on_commit_callbacks, mocker
):
    delay = mocker.patch("scaffolder.tasks.run_scaffold.delay")
    api_client.force_authenticate(world.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(RUNS, _body(), format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    run = ScaffoldRun.objects.get()
    delay.assert_called_once_with(run.pk)
    assert body["uuid"] == str(run.uuid) and body["status"] == "queued"
    assert (body["golden_path"], body["golden_path_version"], body["owner"]) == (STDLIB, "1.0.0", "payments")
    assert body["answers"] == {**answers(), "greeting": "Hello", "with_feature_flags": False}
    assert (body["requested_by"], body["service"], body["steps"], body["error"]) == ("olivia", None, [], "")
    assert run.requested_by == world.owner and run.owner == world.owner_team
    assert AuditEvent.objects.filter(action="scaffold.requested", object_id=str(run.pk)).count() == 1


def test_an_accepted_run_can_be_followed_to_success(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    uuid = api_client.post(RUNS, _body(), format="json").json()["uuid"]
    tasks.run_scaffold(ScaffoldRun.objects.get(uuid=uuid).pk)
    body = api_client.get(f"{RUNS}{uuid}/").json()
    assert body["status"] == "succeeded" and body["service"] == "ledger-api" and body["error"] == ""
    assert [step["name"] for step in body["steps"]] == ["validate", "render", "publish", "register", "audit"]
    assert body["repository_url"] == "http://127.0.0.1:8000/create/repositories/ledger-api/"
    assert tree(git_root)[0] == "ledger-api.git"


@pytest.mark.smoke
def test_invalid_answers_are_400_with_errors_under_the_parameter_names(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    bad = {"name": "{{ 7*7 }}", "description": "short", "greeting": 3, "colour": "red"}
    response = api_client.post(RUNS, _body(answers=bad), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"name", "description", "greeting", "colour"}
    assert "letters, digits and hyphens" in errors["name"][0]
    assert errors["description"] == ["At least 10 characters."]
    assert errors["greeting"] == ["Enter text."]
    assert errors["colour"] == ["This golden path has no such parameter."]
    assert not ScaffoldRun.objects.exists() and tree(git_root) == []


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("name", "message"),
    [("../evil", "letters"), ("/abs", "letters"), ("evil\x00name", CONTROL), ("ledger-api\n", CONTROL)],
)
def test_path_like_or_nul_names_are_400(api_client, world, git_root, tmp_path, name, message):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(answers=answers(name=name)), format="json")
    assert response.status_code == 400
    assert any(message in text for text in response.json()["name"])
    assert not ScaffoldRun.objects.exists() and tree(git_root) == [] and not (tmp_path / "evil").exists()


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "message"), [(0, "At least 1."), (11, "At most 10."), ("2", "Enter a whole number.")]
)
def test_integer_parameters_are_checked(api_client, world, git_root, value, message):
    api_client.force_authenticate(world.owner)
    body = _body(golden_path=SIZED, answers=answers(replicas=value))
    response = api_client.post(RUNS, body, format="json")
    assert response.status_code == 400 and response.json() == {"replicas": [message]}


@pytest.mark.smoke
def test_an_answer_named_owner_is_a_400_not_a_403(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(answers=answers(owner="search")), format="json")
    assert response.status_code == 400
    assert response.json() == {"owner": ["This golden path has no such parameter."]}


@pytest.mark.smoke
def test_taken_names_are_400(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(answers=answers(name="payments-api")), format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["A service called payments-api already exists; choose another name."]}


def test_a_display_name_names_the_service_and_is_checked_like_the_wizards(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    bad = api_client.post(RUNS, _body(display_name="Ledger\u2028API"), format="json")
    assert bad.status_code == 400
    assert bad.json() == {"display_name": ["Control characters and line breaks are not allowed here."]}
    flipped = api_client.post(RUNS, _body(display_name="Ledger \u202eIPA"), format="json")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 8" in flipped.json()["display_name"][0]
    long = api_client.post(RUNS, _body(display_name="x" * 101), format="json")
    assert long.json() == {"display_name": ["Keep the display name to 100 characters (it has 101)."]}

    response = api_client.post(RUNS, _body(display_name="Ledger of payments"), format="json")
    assert response.status_code == 202 and response.json()["display_name"] == "Ledger of payments"
    again = api_client.post(RUNS, _body(), format="json")  # the same name, while the first run is under way
    assert again.json() == {"name": ["A service called ledger-api is being created right now; choose another name."]}
    tasks.run_scaffold(ScaffoldRun.objects.get().pk)
    assert Service.objects.get(slug="ledger-api").name == "Ledger of payments"


@pytest.mark.smoke
def test_owner_team_i_am_not_in_is_403_and_staff_may_choose_any(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(owner="search"), format="json")
    assert response.status_code == 403
    assert "you are not in Search" in response.json()["detail"]
    assert not ScaffoldRun.objects.exists()
    api_client.force_authenticate(world.staff)
    assert api_client.post(RUNS, _body(owner="search"), format="json").status_code == 202


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"golden_path": "no-such-path"}, "golden_path"),
        ({"owner": "no-such-team"}, "owner"),
        ({"answers": "not an object"}, "answers"),
        ({"system": "no-such-system"}, "system"),
    ],
)
def test_malformed_request_is_400_on_that_field(api_client, world, git_root, override, field):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(**override), format="json")
    assert response.status_code == 400 and set(response.json()) == {field}
    assert not ScaffoldRun.objects.exists()


@pytest.mark.smoke
def test_missing_required_answers_are_400(api_client, world, git_root):
    api_client.force_authenticate(world.owner)
    response = api_client.post(RUNS, _body(answers={}), format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."], "description": ["This field is required."]}


# --- Following runs ---------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_a_run_is_visible_to_its_requester_team_and_staff_only(api_client, world, git_root):
    run = _run(world.owner, world.owner_team, "ledger-api")
    url = reverse("api:scaffold-run-detail", args=[run.uuid])
    teammate = MembershipFactory(team=world.owner_team, user=UserFactory(username="tina")).user
    expected = {world.owner: 200, teammate: 200, world.staff: 200, world.outsider: 404}
    for user, status in expected.items():
        api_client.force_authenticate(user)
        response = api_client.get(url)
        assert response.status_code == status, user
    api_client.force_authenticate(world.owner)
    assert api_client.get(url).json()["answers"]["description"] == DESCRIPTION


@pytest.mark.smoke
def test_list_shows_only_my_and_my_teams_runs(api_client, world, git_root, django_assert_max_num_queries):
    mine = _run(world.owner, world.owner_team, "ledger-api")
    teammate = MembershipFactory(team=world.owner_team, user=UserFactory(username="tina")).user
    teams = _run(teammate, world.owner_team, "ledger-two")
    theirs = _run(world.outsider, world.other_team, "search-api")
    # A run I asked for stays mine to see even if I leave its team later; staff made this one for payments.
    for_me = _run(world.staff, world.owner_team, "staff-made")

    def uuids(user) -> list[str]:  # type: ignore[no-untyped-def]
        api_client.force_authenticate(user)
        with django_assert_max_num_queries(6):
            response = api_client.get(RUNS)
        assert response.status_code == 200
        return [row["uuid"] for row in response.json()["results"]]

    newest_first = [str(r.uuid) for r in (for_me, teams, mine)]
    assert uuids(world.owner) == newest_first
    assert uuids(teammate) == newest_first
    assert uuids(world.outsider) == [str(theirs.uuid)]
    assert set(uuids(world.staff)) == {str(r.uuid) for r in (mine, teams, theirs, for_me)}
    assert uuids(UserFactory(username="loner")) == []


def test_list_query_count_does_not_grow_with_runs(api_client, world, git_root, django_assert_max_num_queries):
    for i in range(12):
        _run(world.owner, world.owner_team, f"bulk-svc-{i:02d}")
    api_client.force_authenticate(world.owner)
    with django_assert_max_num_queries(6):
        response = api_client.get(RUNS)
    assert response.json()["count"] == 12 and len(response.json()["results"]) == 12


@pytest.mark.smoke
def test_runs_are_read_only_over_the_api(api_client, world, git_root):
    run = _run(world.owner, world.owner_team, "ledger-api")
    api_client.force_authenticate(world.owner)
    url = reverse("api:scaffold-run-detail", args=[run.uuid])
    assert api_client.patch(url, {"status": "succeeded"}, format="json").status_code == 405
    assert api_client.delete(url).status_code == 405
    run.refresh_from_db()
    assert run.status == ScaffoldRun.Status.QUEUED
