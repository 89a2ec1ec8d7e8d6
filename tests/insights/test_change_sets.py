"""Change sets, recorded when a release is: from Runway's own git repository (real git), from a forge's API (the real
PyGithub and python-gitlab against tests/scaffolder/forge_server.py, which answers from real git repositories), and
from the deploy events API. Then change lead time from them, first commit to success."""

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from deployments import services as deployment_services
from deployments.models import Environment, Release, State
from insights import selectors, services, tasks
from insights.models import ChangeSet
from insights.selectors import Scope, Window
from scaffolder import publishers
from tests.insights.support import deployment_make
from tests.scaffolder.forge_server import ForgeServer

pytestmark = pytest.mark.django_db

TOKEN = "rwy-forge-token-lead-time-0c9a7e3b"
AUTHOR = ("Runway Tests", "tests@example.com")
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
ZONE = ZoneInfo("UTC")


def git(cwd: Path, *args: str, at: datetime | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    if at:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = at.isoformat()
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def commit(worktree: Path, text: str, at: datetime) -> str:
    (worktree / "app.py").write_text(f"print({text!r})\n")
    git(worktree, "commit", "-qam", text, at=at)
    return git(worktree, "rev-parse", "HEAD")


@pytest.fixture
def production(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Production", slug="production", order=3, protected=True)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A working copy with one commit at T0 on main."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "--initial-branch=main")
    (work / "app.py").write_text("print('first')\n")
    git(work, "add", "app.py")
    git(work, "commit", "-qm", "first", at=T0)
    return work


def succeed(release: Release, environment: Environment, finished: datetime) -> None:
    deployment_make(
        release.service,
        environment,
        State.SUCCEEDED,
        started=finished - timedelta(minutes=5),
        finished=finished,
        release=release,
    )


def test_runway_repository_change_set_is_the_commits_since_production(world, production, worktree, settings) -> None:
    settings.GIT_ROOT = worktree.parent / "git"
    bare = Path(publishers.local_path(name=world.service.slug))
    git(worktree, "clone", "-q", "--bare", str(worktree), str(bare))
    git(bare, "tag", "v1", "main")
    first = deployment_services.release_for_ref(service=world.service, ref="v1", user=world.owner)
    # The first production release has no base: every commit of it.
    assert (first.change_set.status, first.change_set.source) == ("recorded", "git")
    assert first.change_set.base_release is None and first.change_set.commit_count == 1
    assert first.change_set.first_commit_at == T0
    succeed(first, production, T0 + timedelta(hours=2))

    shas = [commit(worktree, f"change {n}", T0 + timedelta(days=1, hours=n)) for n in range(3)]
    git(worktree, "push", "-q", str(bare), "main")
    git(bare, "tag", "v2", "main")
    second = deployment_services.release_for_ref(service=world.service, ref="v2", user=world.owner)
    change_set = second.change_set
    assert change_set.base_release == first
    assert [c.sha for c in change_set.commits.all()] == shas  # oldest first, v1's commit left out
    assert change_set.first_commit_at == T0 + timedelta(days=1) and change_set.complete
    succeed(second, production, T0 + timedelta(days=1, hours=6))

    window = Window(T0.date(), T0.date() + timedelta(days=3), ZONE)
    figures = selectors.dora_figures(scope=Scope("org"), window=window, environments=[production])
    assert figures.leads == 2
    assert figures.lead_median == pytest.approx((2 * 3600 + 6 * 3600) / 2)  # 2 h and 6 h
    assert figures.bands["lead_time"].key == "high"
    # A second look at the same ref finds the release and its change set unchanged.
    again = deployment_services.release_for_ref(service=world.service, ref="v2", user=world.owner)
    assert again.pk == second.pk and ChangeSet.objects.filter(release=second).count() == 1


def test_a_release_without_repository_or_commits_has_none_and_says_why(world, production) -> None:
    release = deployment_services.release_record(
        service=world.service, version="9.9.9", commit_sha="c" * 40, committed_at=None, user=world.owner
    )
    assert release.change_set.status == "unavailable" and "report them with the deploy event" in release.change_set.note
    succeed(release, production, T0)
    window = Window(T0.date(), T0.date(), ZONE)
    figures = selectors.dora_figures(scope=Scope("org"), window=window, environments=[production])
    assert figures.successes == 1 and figures.leads == 0 and figures.lead_median is None
    assert figures.bands["lead_time"].key == "no_data"  # never a made-up figure


# The deploy events API


def api_for(user: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


EVENT = {
    "service": "payments-api",
    "environment": "production",
    "version": "2026.5.4",
    "commit_sha": "a" * 40,
    "status": "succeeded",
    "started_at": "2026-05-04T12:00:00Z",
    "finished_at": "2026-05-04T12:30:00Z",
}


def test_reported_commits_become_the_change_set_and_lead_time(world, production) -> None:
    commits = [
        {"sha": "b" * 40, "committed_at": "2026-05-04T10:30:00+02:00"},  # 08:30 UTC: the first
        {"sha": "a" * 40, "committed_at": "2026-05-04T11:00:00Z"},
        {"sha": "a" * 40, "committed_at": "2026-05-04T11:00:00Z"},  # listed twice: kept once
    ]
    response = api_for(world.owner).post("/api/v1/deploy-events/", {**EVENT, "commits": commits}, format="json")
    assert response.status_code == 201, response.content
    change_set = Release.objects.get(version="2026.5.4").change_set
    assert (change_set.source, change_set.commit_count) == ("reported", 2)
    assert change_set.first_commit_at == datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
    body = api_for(world.owner).get("/api/v1/insights/dora/", {"since": "2026-05-04", "until": "2026-05-04"}).json()
    assert body["lead_time"]["median_seconds"] == 4 * 3600 and body["lead_time"]["band"] == "high"
    assert body["lead_time"]["measured"] == 1


@pytest.mark.parametrize(
    ("commits", "expected"),
    [
        ("not a list", {"commits": ['Expected a list of items but got type "str".']}),
        ([{"sha": "xyz", "committed_at": "2026-05-04T11:00:00Z"}], {"commits": {"0": {"sha": ["bad"]}}}),
        ([{"sha": "a" * 40}], {"commits": {"0": {"committed_at": ["This field is required."]}}}),
        ([{"sha": "a" * 40, "committed_at": "yesterday"}], {"commits": {"0": {"committed_at": ["bad"]}}}),
        (
            [
                {"sha": "a" * 40, "committed_at": "2026-05-04T11:00:00Z"},
                {"sha": "b" * 40, "committed_at": "2026-06-01T00:00:00Z"},
            ],
            {"commits": {"1": {"committed_at": ["A commit cannot be later than the deployment."]}}},
        ),
        ([{"sha": "a" * 40, "committed_at": "2026-05-04T11:00:00Z"}] * 1001, {"commits": ["bad"]}),
        (
            [{"sha": "a" * 40, "committed_at": "99999-05-04T11:00:00Z"}],
            {"commits": {"0": {"committed_at": ["bad"]}}},
        ),
        ([[[[[]]]]], {"commits": {"0": {"non_field_errors": ["bad"]}}}),
    ],
)
def test_bad_commit_lists_are_400_with_field_errors(world, production, commits, expected) -> None:
    response = api_for(world.owner).post("/api/v1/deploy-events/", {**EVENT, "commits": commits}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    # The error sits where the bad item is: under commits, at its index and field.
    assert set(body) == set(expected)
    if isinstance(expected["commits"], dict):
        assert set(body["commits"]) == set(expected["commits"])
        for index, fields in expected["commits"].items():
            assert set(body["commits"][index]) == set(fields)
            for name, messages in fields.items():
                if messages != ["bad"]:
                    assert body["commits"][index][name] == messages
    elif expected["commits"] != ["bad"]:
        assert body["commits"] == expected["commits"]
    assert not Release.objects.exists() and not ChangeSet.objects.exists()


def test_commits_reported_later_fill_a_change_set_not_recorded_but_never_replace_one(world, production) -> None:
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    api = api_for(world.owner)
    assert api.post("/api/v1/deploy-events/", {**EVENT, "environment": staging.slug}, format="json").status_code == 201
    release = Release.objects.get(version="2026.5.4")
    assert release.change_set.status == "unavailable"
    first = [{"sha": "b" * 40, "committed_at": "2026-05-03T10:00:00Z"}]
    assert api.post("/api/v1/deploy-events/", {**EVENT, "commits": first}, format="json").status_code == 201
    other = [{"sha": "d" * 40, "committed_at": "2026-05-01T10:00:00Z"}]
    assert api.post("/api/v1/deploy-events/", {**EVENT, "commits": other}, format="json").status_code == 201
    release.change_set.refresh_from_db()
    assert release.change_set.first_commit_at == datetime(2026, 5, 3, 10, tzinfo=UTC)


# The forges


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeServer]:
    server = ForgeServer(tmp_path / "forge", token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(params=["github", "gitlab"])
def kind(request: pytest.FixtureRequest, settings: Any, forge: ForgeServer, tmp_path: Path) -> str:
    settings.GIT_ROOT = tmp_path / "git"  # no local repository: the forge is where the service's code is
    settings.SCAFFOLD_PUBLISHER = request.param
    settings.GITHUB_TOKEN = settings.GITLAB_TOKEN = TOKEN
    settings.GITHUB_ORG, settings.GITHUB_API_URL = forge.org, f"{forge.url}/github/api/v3"
    settings.GITLAB_NAMESPACE, settings.GITLAB_URL = forge.group, f"{forge.url}/gitlab"
    return str(request.param)


def test_the_forge_lists_a_release_change_set(
    kind, forge, world, production, tmp_path, django_capture_on_commit_callbacks
) -> None:
    publisher = publishers.publisher()
    worktree = tmp_path / "published"
    worktree.mkdir()
    (worktree / "app.py").write_text("print('first')\n")
    publisher.publish(name=world.service.slug, worktree=worktree, author=AUTHOR, message="first")
    base = git(worktree, "rev-parse", "HEAD")
    first = deployment_services.release_record(
        service=world.service, version="1", commit_sha=base, committed_at=None, user=world.owner
    )
    tasks.change_set_fetch(first.change_set.pk)
    first.change_set.refresh_from_db()
    # No previous production release: the whole history of main, here the one commit the publisher made.
    assert (first.change_set.status, first.change_set.source, first.change_set.commit_count) == ("recorded", "forge", 1)
    assert [c.sha for c in first.change_set.commits.all()] == [base]
    succeed(first, production, T0 + timedelta(hours=1))

    shas = [commit(worktree, f"change {n}", T0 + timedelta(days=2, minutes=10 * n)) for n in range(3)]
    publisher.push(name=world.service.slug, worktree=worktree, branch="main")
    with django_capture_on_commit_callbacks() as callbacks:
        second = deployment_services.release_record(
            service=world.service, version="2", commit_sha=shas[-1], committed_at=None, user=world.owner
        )
    # No network call inside the release's transaction: a worker asks the forge once it commits.
    assert second.change_set.status == "pending" and len(callbacks) == 1
    tasks.change_set_fetch(second.change_set.pk)
    tasks.change_set_fetch(second.change_set.pk)  # a second delivery does nothing
    change_set = ChangeSet.objects.get(release=second)
    assert change_set.status == "recorded" and change_set.base_release == first
    assert [c.sha for c in change_set.commits.all()] == shas
    assert change_set.first_commit_at == T0 + timedelta(days=2)


def test_a_forge_that_refuses_leaves_the_change_set_unavailable_and_says_why(kind, forge, world, settings) -> None:
    settings.GITHUB_TOKEN = settings.GITLAB_TOKEN = "wrong-token"
    release = deployment_services.release_record(
        service=world.service, version="1", commit_sha="e" * 40, committed_at=None, user=world.owner
    )
    services.change_set_fetch(change_set_id=release.change_set.pk)
    release.change_set.refresh_from_db()
    assert release.change_set.status == "unavailable" and "refused" in release.change_set.note
    assert "wrong-token" not in release.change_set.note


# Parsers, on the payload shapes GitHub and GitLab document

GITHUB_COMPARE = {  # docs.github.com/en/rest/commits/commits#compare-two-commits, trimmed to one commit
    "url": "https://api.github.com/repos/octocat/Hello-World/compare/master...topic",
    "status": "behind",
    "ahead_by": 1,
    "behind_by": 2,
    "total_commits": 1,
    "commits": [
        {
            "url": "https://api.github.com/repos/octocat/Hello-World/commits/6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "node_id": "MDY6Q29tbWl0NmRjYjA5YjViNTc4NzVmMzM0ZjYxYWViZWQ2OTVlMmU0MTkzZGI1ZQ==",
            "commit": {
                "author": {"name": "Monalisa Octocat", "email": "support@github.com", "date": "2011-04-14T16:00:49Z"},
                "committer": {
                    "name": "Monalisa Octocat",
                    "email": "support@github.com",
                    "date": "2011-04-14T16:00:49Z",
                },
                "message": "Fix all the bugs",
                "tree": {"sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
                "comment_count": 0,
            },
            "parents": [{"sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"}],
        }
    ],
    "files": [],
}
GITLAB_COMPARE = {  # docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits
    "commit": {
        "id": "12d65c8dd2b2676fa3ac47d955accc085a37a9c1",
        "short_id": "12d65c8dd2b",
        "title": "JS fix",
        "author_name": "Example User",
        "author_email": "user@example.com",
        "created_at": "2014-02-27T10:27:00+02:00",
    },
    "commits": [
        {
            "id": "12d65c8dd2b2676fa3ac47d955accc085a37a9c1",
            "short_id": "12d65c8dd2b",
            "title": "JS fix",
            "author_name": "Example User",
            "author_email": "user@example.com",
            "authored_date": "2014-02-27T10:27:00+02:00",
            "committed_date": "2014-02-27T10:27:00+02:00",
            "created_at": "2014-02-27T10:27:00+02:00",
        }
    ],
    "diffs": [],
    "compare_timeout": False,
    "compare_same_ref": False,
}


def test_parsers_read_the_documented_payloads() -> None:
    (github,) = publishers.github_commits(GITHUB_COMPARE)
    assert github.sha == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert github.committed_at == datetime(2011, 4, 14, 16, 0, 49, tzinfo=UTC)
    (gitlab,) = publishers.gitlab_commits(GITLAB_COMPARE)
    assert gitlab.committed_at == datetime(2014, 2, 27, 8, 27, tzinfo=UTC)
    assert publishers.github_commits(GITHUB_COMPARE["commits"]) == [github]  # the commit list's shape


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"commits": "x"}, {"commits": [{"sha": "a" * 40}]}, {"commits": [{"sha": "zz", "commit": {}}]}],
)
def test_parsers_refuse_other_shapes_with_a_publish_error(payload) -> None:
    with pytest.raises(publishers.PublishError):
        publishers.github_commits(payload)
    with pytest.raises(publishers.PublishError):
        publishers.gitlab_commits(payload)
