"""The GitHub and GitLab publishers against a real HTTP forge in the test (forge_server.py): the real PyGithub and
python-gitlab talk to its REST APIs, the real git pushes to and clones from the real `git http-backend` behind it,
and every request without the right token is refused. Then the same through a scaffold run, and the local publisher
behind the same interface.
"""

import base64
import json
import logging
import re
import subprocess
import tempfile
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from audit.models import AuditEvent
from catalog.models import Service
from scaffolder import publishers, registry, services, tasks
from scaffolder.models import ScaffoldRun
from tests.scaffolder.forge_server import ForgeServer
from tests.scaffolder.support import STDLIB, answers, git, paths_install, tree

pytestmark = pytest.mark.django_db

TOKEN = "rwy-forge-token-5f1d0c9a7e3b4d2c8a6f"
# Every form the token takes on the wire: itself, and inside git's HTTP Basic header for each forge.
TOKEN_FORMS = (
    TOKEN,
    base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode(),
    base64.b64encode(f"oauth2:{TOKEN}".encode()).decode(),
)
AUTHOR = ("Olivia Owens", "olivia@example.com")
NAME = "ledger-api"
BAD_NAMES = ["../x", "-x", "x/../../y", "--upload-pack=touch x", "Ledger", "a", "ledger api", "ledger\n", ""]
BAD_BRANCHES = ["-f", "--force", "../main", "a..b", "main:refs/heads/x", "x.lock", "update/", "/x", "a b", "@{-1}"]
BAD_BRANCHES += ["x\n", "x~1", "x^", ".hidden", "update/.x", "b" * 201]


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeServer]:
    server = ForgeServer(tmp_path / "forge", token=TOKEN).start()
    yield server
    server.stop()


def _configure(settings: Any, forge: ForgeServer, kind: str, *, token: str = TOKEN) -> None:
    settings.SCAFFOLD_PUBLISHER = kind
    settings.GITHUB_TOKEN = settings.GITLAB_TOKEN = token
    settings.GITHUB_ORG, settings.GITHUB_API_URL = forge.org, f"{forge.url}/github/api/v3"
    settings.GITLAB_NAMESPACE, settings.GITLAB_URL = forge.group, f"{forge.url}/gitlab"


@pytest.fixture(params=["github", "gitlab"])
def kind(request: pytest.FixtureRequest, settings: Any, forge: ForgeServer) -> str:
    """Each test that takes `kind` runs once against each forge, configured through settings as in production."""
    _configure(settings, forge, request.param)
    return str(request.param)


def _full(forge: ForgeServer, kind: str, name: str = NAME) -> str:
    return f"{forge.org if kind == 'github' else forge.group}/{name}"


def _record(forge: ForgeServer, kind: str, name: str = NAME) -> dict[str, Any] | None:
    """What the forge holds about the repository (None when it has none)."""
    if kind == "github":
        return forge.github_repos.get(_full(forge, kind, name))
    return forge.gitlab_find(_full(forge, kind, name))


def _precreate(forge: ForgeServer, kind: str, name: str = NAME) -> dict[str, Any]:
    return forge.github_create(name) if kind == "github" else forge.gitlab_create(name)


def _worktree(tmp_path: Path, name: str = "work") -> Path:
    worktree = tmp_path / name
    (worktree / "app").mkdir(parents=True)
    (worktree / "README.md").write_text("# ledger-api\n")
    (worktree / "app" / "main.py").write_text("print('hello')\n")
    return worktree


def _publish(kind: str, tmp_path: Path) -> publishers.Published:
    return publishers.publisher().publish(
        name=NAME, worktree=_worktree(tmp_path), author=AUTHOR, message="Create ledger-api"
    )


def _commit(worktree: Path, message: str) -> None:
    env = ["-c", "user.name=Runway", "-c", "user.email=runway@localhost"]
    subprocess.run(["git", *env, "commit", "--quiet", "--all", "-m", message], cwd=worktree, check=True)


def _leaks(text: str) -> list[str]:
    return [form for form in TOKEN_FORMS if form in text]


# --- The publishers, one call at a time ---------------------------------------------------------------------


def test_publisher_follows_the_setting(kind):
    chosen = publishers.publisher()
    expected = publishers.GitHubPublisher if kind == "github" else publishers.GitLabPublisher
    assert type(chosen) is expected and chosen.kind == kind
    assert TOKEN not in repr(chosen)


def test_publish_creates_a_private_repository_whose_main_has_the_commit(kind, forge, tmp_path):
    published = _publish(kind, tmp_path)

    record = _record(forge, kind)
    assert record is not None and record["visibility"] == "private"
    assert record.get("private", True) is True
    assert published.url == (record["html_url"] if kind == "github" else record["web_url"])
    assert published.url == f"{forge.url}/{kind}/{_full(forge, kind)}" and published.path is None
    bare = forge.bare(kind, _full(forge, kind))
    assert git(bare, "log", "--format=%an|%ae|%s", "main").splitlines() == [
        "Olivia Owens|olivia@example.com|Create ledger-api"
    ]
    assert git(bare, "ls-tree", "-r", "--name-only", "main").splitlines() == ["README.md", "app/main.py"]
    assert all(seen.authorised for seen in forge.seen)
    pushes = [seen for seen in forge.seen if seen.path.endswith("/git-receive-pack")]
    assert len(pushes) == 1 and pushes[0].method == "POST"


def test_visibility_comes_from_the_setting(kind, forge, tmp_path, settings):
    settings.SCAFFOLD_REPOSITORY_VISIBILITY = "internal"
    _publish(kind, tmp_path)
    record = _record(forge, kind)
    assert record is not None and record["visibility"] == "internal"


def test_exists_archive_and_unpublish(kind, forge, tmp_path):
    chosen = publishers.publisher()
    assert chosen.exists(name=NAME) is False
    _publish(kind, tmp_path)
    assert chosen.exists(name=NAME) is True

    chosen.archive(name=NAME, reason="ledger-api was decommissioned.")
    record = _record(forge, kind)
    assert record is not None and record["archived"] is True
    clone = tmp_path / "clone"
    chosen.clone(name=NAME, into=clone)  # an archived repository can still be cloned...
    subprocess.run(["git", "switch", "--quiet", "-c", "late-fix"], cwd=clone, check=True)
    (clone / "README.md").write_text("# too late\n")
    _commit(clone, "Too late")
    with pytest.raises(publishers.PublishError, match="archived so it is read-only"):
        chosen.push(name=NAME, worktree=clone, branch="late-fix")  # ...but takes no pushes

    chosen.unpublish(name=NAME)
    assert chosen.exists(name=NAME) is False
    assert _record(forge, kind) is None and not forge.bare(kind, _full(forge, kind)).exists()
    deletes = [seen.path for seen in forge.seen if seen.method == "DELETE"]
    if kind == "gitlab":  # GitLab only marked it for deletion at first; Runway removed it for good
        project_id = deletes[0].rsplit("/", 1)[1]
        full_path = _full(forge, kind).replace("/", "%2F")
        assert deletes == [
            f"/gitlab/api/v4/projects/{project_id}",
            f"/gitlab/api/v4/projects/{project_id}?permanently_remove=true&full_path={full_path}",
        ]
    else:
        assert deletes == [f"/github/api/v3/repos/{_full(forge, kind)}"]

    chosen.unpublish(name=NAME)  # nothing left: nothing to do
    assert len([seen for seen in forge.seen if seen.method == "DELETE"]) == len(deletes)
    with pytest.raises(publishers.PublishError, match="There is no repository called ledger-api"):
        chosen.archive(name=NAME, reason="again")


def test_gitlab_unpublish_removes_a_project_already_marked_for_deletion(settings, forge):
    _configure(settings, forge, "gitlab")
    project = forge.gitlab_create(NAME)
    project["marked_for_deletion_at"] = "2026-11-01"  # someone deleted it in GitLab's UI: it lingers, path taken
    chosen = publishers.publisher()
    assert chosen.exists(name=NAME) is True
    chosen.unpublish(name=NAME)
    assert forge.gitlab_find(_full(forge, "gitlab")) is None and chosen.exists(name=NAME) is False
    assert [seen.path for seen in forge.seen if seen.method == "DELETE"] == [
        f"/gitlab/api/v4/projects/{project['id']}?permanently_remove=true&full_path=platform%2Fservices%2Fledger-api"
    ]


def test_clone_main_then_push_a_branch(kind, forge, tmp_path):
    _publish(kind, tmp_path)
    chosen = publishers.publisher()
    clone = tmp_path / "clones" / "ledger-api"
    chosen.clone(name=NAME, into=clone)
    assert (clone / "README.md").read_text() == "# ledger-api\n"
    assert subprocess.run(["git", "branch", "--show-current"], cwd=clone, capture_output=True, text=True).stdout == (
        "main\n"
    )
    assert _leaks((clone / ".git" / "config").read_text()) == []  # the clone keeps a plain URL, no credentials

    branch = "update/stdlib-http-service-1.1.0"
    subprocess.run(["git", "switch", "--quiet", "-c", branch], cwd=clone, check=True)
    (clone / "README.md").write_text("# ledger-api\n\nUpdated from the golden path.\n")
    _commit(clone, "Update from golden path 1.1.0")
    chosen.push(name=NAME, worktree=clone, branch=branch)

    bare = forge.bare(kind, _full(forge, kind))
    assert git(bare, "log", "--format=%s", branch).splitlines() == [
        "Update from golden path 1.1.0",
        "Create ledger-api",
    ]
    assert git(bare, "log", "--format=%s", "main").splitlines() == ["Create ledger-api"]
    assert "Updated from the golden path." in git(bare, "show", f"{branch}:README.md")


def test_a_push_failure_after_creation_deletes_the_created_repository(kind, forge, tmp_path):
    forge.refuse_pushes = f"Pushes are closed today (you sent {TOKEN})"  # a forge that echoes what it got
    with pytest.raises(publishers.PublishError) as caught:
        _publish(kind, tmp_path)

    message = str(caught.value)
    assert message.startswith("git push failed:")
    assert "Pushes are closed today (you sent ***)" in message and _leaks(message) == []
    assert _record(forge, kind) is None and not forge.bare(kind, _full(forge, kind)).exists()
    assert [seen.method for seen in forge.seen if seen.method in ("POST", "DELETE") and "/api/" in seen.path][-1] == (
        "DELETE"
    )
    assert publishers.publisher().exists(name=NAME) is False


def test_a_cleanup_that_fails_too_says_what_is_left(kind, forge, tmp_path):
    forge.refuse_pushes, forge.refuse_delete = "No pushes", True
    with pytest.raises(publishers.PublishError) as caught:
        _publish(kind, tmp_path)
    message = str(caught.value)
    assert "No pushes" in message
    location = publishers.publisher().location
    assert f"the repository {NAME} created for it in {location} could not be deleted (" in message
    assert message.endswith("delete it by hand.") and _leaks(message) == []
    assert _record(forge, kind) is not None  # refused: still there, and the message says so


def test_an_existing_repository_is_refused_and_left_alone(kind, forge, tmp_path):
    _precreate(forge, kind)
    with pytest.raises(publishers.PublishError) as caught:
        _publish(kind, tmp_path)
    location = "the GitHub organisation acme" if kind == "github" else "the GitLab group platform/services"
    assert str(caught.value) == f"A repository called {NAME} already exists in {location}."
    assert _record(forge, kind) is not None and forge.bare(kind, _full(forge, kind)).exists()
    assert not any(seen.method == "DELETE" or "receive-pack" in seen.path for seen in forge.seen)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_refused_before_any_request(kind, forge, tmp_path, name):
    chosen = publishers.publisher()
    worktree = _worktree(tmp_path)
    calls = [
        lambda: chosen.exists(name=name),
        lambda: chosen.publish(name=name, worktree=worktree, author=AUTHOR, message="x"),
        lambda: chosen.unpublish(name=name),
        lambda: chosen.archive(name=name, reason="x"),
        lambda: chosen.clone(name=name, into=tmp_path / "clone"),
        lambda: chosen.push(name=name, worktree=worktree, branch="main"),
    ]
    for call in calls:
        with pytest.raises(publishers.PublishError, match="is not a valid repository name"):
            call()
    assert forge.seen == []
    assert not (worktree / ".git").exists()  # refused before anything was even committed


@pytest.mark.parametrize("branch", BAD_BRANCHES)
def test_invalid_branches_are_refused_before_any_request(kind, forge, tmp_path, branch):
    with pytest.raises(publishers.PublishError, match="is not a valid branch name"):
        publishers.publisher().push(name=NAME, worktree=_worktree(tmp_path), branch=branch)
    assert forge.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://forge.example/acme/ledger-api.git",  # the token would travel in clear
        "https://runway:hunter2@forge.example/acme/ledger-api.git",  # credentials in a URL
        "ext::sh -c touch% /tmp/pwned",  # git's command-running transport
        "https://forge.example/acme/ledger-api",  # not a repository URL
        "https://forge.example/acme/ledger-api.git?x=1",
        "https://forge.example/acme/ledger-api.git\n",
        "--upload-pack=touch /tmp/pwned",
    ],
)
def test_repository_urls_from_the_forge_are_checked_before_git_runs(settings, forge, tmp_path, url):
    _configure(settings, forge, "github")
    forge.github_create(NAME)["clone_url"] = url
    with pytest.raises(publishers.PublishError, match="GitHub gave a"):
        publishers.publisher().clone(name=NAME, into=tmp_path / "clone")
    assert not any("/git/" in seen.path for seen in forge.seen)
    assert not (tmp_path / "clone").exists()


def test_the_forge_refuses_a_wrong_token_and_the_error_shows_neither(kind, forge, settings, tmp_path):
    wrong = "rwy-wrong-token-0000000000000000"
    _configure(settings, forge, kind, token=wrong)
    with pytest.raises(publishers.PublishError) as caught:
        publishers.publisher().exists(name=NAME)
    message = str(caught.value)
    assert message.startswith(f"{'GitHub' if kind == 'github' else 'GitLab'} refused to look up")
    assert "401" in message and wrong not in message and _leaks(message) == []
    assert forge.seen and not any(seen.authorised for seen in forge.seen)


def test_git_without_the_token_header_is_refused_by_the_forge(kind, forge, tmp_path):
    """The forge's git side really checks: so the publishers' clones and pushes prove the header was sent."""
    record = _precreate(forge, kind)
    url = record["clone_url"] if kind == "github" else record["http_url_to_repo"]
    result = subprocess.run(
        ["git", "ls-remote", "--", url],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert forge.seen[-1].path.endswith("/info/refs?service=git-upload-pack") and not forge.seen[-1].authorised


def test_the_token_is_scrubbed_from_api_errors_and_never_chained(kind, forge, tmp_path):
    forge.refuse_create = (403, f"The token {TOKEN} may not create repositories here")
    with pytest.raises(publishers.PublishError) as caught:
        _publish(kind, tmp_path)
    error = caught.value
    assert "may not create repositories here" in str(error) and "The token ***" in str(error)
    assert _leaks(str(error)) == []
    # Nothing chained: a traceback logged by a worker carries no library exception holding the server's text.
    assert error.__cause__ is None and error.__context__ is None
    assert _leaks("".join(traceback.format_exception(error))) == []
    assert _record(forge, kind) is None  # the create was refused: nothing to clean up, nothing made


def test_the_token_reaches_git_through_its_environment_only(kind, forge, tmp_path, monkeypatch):
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(publishers.subprocess, "run", spy)
    _publish(kind, tmp_path)
    publishers.publisher().clone(name=NAME, into=tmp_path / "clone")

    remote_calls = [(argv, env) for argv, env in calls if "GIT_CONFIG_COUNT" in env]
    assert [argv[1] for argv, _ in remote_calls] == ["push", "clone"]
    for argv, _env in calls:
        assert _leaks(" ".join(argv)) == [], argv
    user = "x-access-token" if kind == "github" else "oauth2"
    basic = base64.b64encode(f"{user}:{TOKEN}".encode()).decode()
    for argv, env in remote_calls:
        url = argv[argv.index("--") + 1]
        assert "@" not in url and url.startswith(f"{forge.url}/{kind}/git/")
        assert env["GIT_CONFIG_KEY_0"] == f"http.{url}.extraHeader"  # scoped to this one repository
        assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
        assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
        others = {key: value for key, value in env.items() if key != "GIT_CONFIG_VALUE_0"}
        assert _leaks(json.dumps(others)) == []


# --- Through a scaffold run ---------------------------------------------------------------------------------


@pytest.fixture
def path(settings, tmp_path, monkeypatch) -> registry.GoldenPath:  # type: ignore[no-untyped-def]
    """Per-test GIT_ROOT and golden paths, as in test_services.py."""
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATHS_DIR = paths_install(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    found = registry.golden_path_get(STDLIB)
    assert found is not None
    return found


def _scaffold(path: registry.GoldenPath, world: Any) -> ScaffoldRun:
    run = services.scaffold_request(
        path=path, answers=answers(), owner=world.owner_team, system=None, requested_by=world.owner
    )
    tasks.run_scaffold(run.pk)
    run.refresh_from_db()
    return run


def _nowhere(run: ScaffoldRun, caplog: pytest.LogCaptureFixture) -> None:
    """The token is in none of the run's fields, audit events or log records."""
    fields = json.dumps([run.steps, run.error, run.repository_url, run.answers])
    audit_rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert _leaks(fields) == [] and _leaks(audit_rows) == [] and _leaks(logged) == []


def test_a_scaffold_publishes_to_the_forge_and_registers_its_web_url(kind, forge, path, world, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    run = _scaffold(path, world)

    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    record = _record(forge, kind)
    assert record is not None
    web_url = f"{forge.url}/{kind}/{_full(forge, kind)}"
    assert run.repository_url == Service.objects.get(slug=NAME).repository_url == web_url
    assert [step["name"] for step in run.steps] == ["validate", "render", "publish", "register", "audit"]
    assert run.steps[2]["message"] == web_url
    bare = forge.bare(kind, _full(forge, kind))
    files = git(bare, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"catalog-info.yaml", "runway.yaml", "docs/runbook.md", "README.md"} <= set(files)
    for form in TOKEN_FORMS:  # nor in any rendered file
        found = subprocess.run(["git", f"--git-dir={bare}", "grep", "-I", "-F", "-e", form, "main"], check=False)
        assert found.returncode == 1
    assert tree(tmp_path / "git") == []  # nothing went to the local GIT_ROOT
    assert len(caplog.records) > 0
    _nowhere(run, caplog)


def test_a_scaffold_whose_push_fails_leaves_nothing_and_no_token(kind, forge, path, world, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    forge.refuse_pushes = f"Refused: {TOKEN}"
    run = _scaffold(path, world)

    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error.startswith("git push failed:") and "Refused: ***" in run.error
    assert [(step["name"], step["status"]) for step in run.steps][-1] == ("publish", "failed")
    assert "Refused: ***" in run.steps[-1]["message"]
    assert run.repository_url == "" and not Service.objects.filter(slug=NAME).exists()
    assert _record(forge, kind) is None and not forge.bare(kind, _full(forge, kind)).exists()
    assert tree(tmp_path / "scratch") == []
    assert any("scaffold_failed" in record.getMessage() for record in caplog.records)
    _nowhere(run, caplog)


def test_a_registration_failure_removes_the_forge_repository(kind, forge, path, world, monkeypatch):
    def refuse(**kwargs: Any) -> None:
        raise ValidationError({"slug": "The catalog refused it."})

    monkeypatch.setattr("catalog.services.service_create", refuse)
    run = _scaffold(path, world)
    assert (run.status, run.error) == (ScaffoldRun.Status.FAILED, "The catalog refused it.")
    assert [step["status"] for step in run.steps] == ["done", "done", "done", "failed"]
    assert _record(forge, kind) is None and run.repository_url == ""
    assert [seen.method for seen in forge.seen if "/api/" in seen.path].count("DELETE") >= 1


def test_a_repository_that_cannot_be_removed_is_named_in_the_run_error(kind, forge, path, world, monkeypatch):
    def refuse(**kwargs: Any) -> None:
        raise ValidationError({"slug": "The catalog refused it."})

    monkeypatch.setattr("catalog.services.service_create", refuse)
    forge.refuse_delete = True
    run = _scaffold(path, world)
    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error.startswith("The catalog refused it. The repository ledger-api could not be removed (")
    assert run.error.endswith("); delete it by hand.") and "403" in run.error
    assert _record(forge, kind) is not None


def test_the_wizard_check_asks_the_forge_whether_the_name_is_taken(kind, forge, path, world, settings):
    def check() -> dict[str, list[str]]:
        return services.answers_check(path=path, answers=answers(), owner=world.owner_team, user=world.owner)

    assert check() == {}
    _precreate(forge, kind)
    assert check() == {"name": [f"A repository called {NAME} already exists; choose another name."]}
    _configure(settings, forge, kind, token="rwy-wrong-token-0000000000000000")
    errors = check()
    assert list(errors) == ["name"] and "refused to look up" in errors["name"][0] and _leaks(errors["name"][0]) == []


def test_the_sweeper_removes_a_stale_runs_forge_repository_but_not_a_strangers(kind, forge, path, world):
    stale = services.scaffold_request(
        path=path, answers=answers(), owner=world.owner_team, system=None, requested_by=world.owner
    )
    early = services.scaffold_request(
        path=path, answers=answers(name="billing-api"), owner=world.owner_team, system=None, requested_by=world.owner
    )
    long_ago = timezone.now() - timedelta(hours=1)
    # Both on their last attempt, so the sweeper fails them rather than retrying.
    ScaffoldRun.objects.filter(pk=stale.pk).update(
        status=ScaffoldRun.Status.RUNNING,
        started_at=long_ago,
        lease_until=long_ago,
        attempts=services.MAX_ATTEMPTS,
        steps=[{"name": "validate", "status": "done"}, {"name": "publish", "status": "running"}],
    )
    ScaffoldRun.objects.filter(pk=early.pk).update(
        status=ScaffoldRun.Status.RUNNING,
        started_at=long_ago,
        lease_until=long_ago,
        attempts=services.MAX_ATTEMPTS,
        steps=[{"name": "render", "status": "running"}],
    )
    _precreate(forge, kind)  # half-made by the stale run
    _precreate(forge, kind, "billing-api")  # made by someone else after the early run's checks

    assert services.scaffold_sweep() == 2
    assert _record(forge, kind) is None
    assert _record(forge, kind, "billing-api") is not None
    for run in ScaffoldRun.objects.all():
        assert run.status == ScaffoldRun.Status.FAILED and "nothing was kept" in run.error


# --- Settings -----------------------------------------------------------------------------------------------


def test_an_unknown_publisher_is_a_clear_configuration_error(settings):
    settings.SCAFFOLD_PUBLISHER = "bitbucket"
    with pytest.raises(ImproperlyConfigured) as caught:
        publishers.publisher()
    assert str(caught.value) == "SCAFFOLD_PUBLISHER is 'bitbucket'; it must be one of local, github, gitlab."
    with pytest.raises(SystemCheckError) as checked:
        call_command("check")
    assert "scaffolder.E001" in str(checked.value) and "SCAFFOLD_PUBLISHER is 'bitbucket'" in str(checked.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"SCAFFOLD_PUBLISHER": "github", "GITHUB_TOKEN": ""},
            "SCAFFOLD_PUBLISHER is 'github', which needs GITHUB_TOKEN.",
        ),
        ({"SCAFFOLD_PUBLISHER": "gitlab", "GITLAB_NAMESPACE": ""}, "'gitlab', which needs GITLAB_NAMESPACE."),
        ({"SCAFFOLD_PUBLISHER": "github", "GITHUB_ORG": "acme/../x"}, "GITHUB_ORG 'acme/../x' is not a GitHub"),
        ({"SCAFFOLD_PUBLISHER": "gitlab", "GITLAB_NAMESPACE": "../x"}, "GITLAB_NAMESPACE '../x' is not a GitLab"),
        ({"SCAFFOLD_PUBLISHER": "github", "GITHUB_API_URL": "http://github.example"}, "GITHUB_API_URL must use https"),
        ({"SCAFFOLD_PUBLISHER": "gitlab", "GITLAB_URL": "gitlab.example"}, "GITLAB_URL 'gitlab.example' is not an"),
        ({"SCAFFOLD_PUBLISHER": "github", "SCAFFOLD_REPOSITORY_VISIBILITY": "secret"}, "must be one of private, inte"),
    ],
)
def test_forge_settings_are_checked(settings, forge, overrides, message):
    _configure(settings, forge, "github")
    for key, value in overrides.items():
        setattr(settings, key, value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        publishers.publisher()
    errors = publishers.publisher_settings_check()
    assert [error.id for error in errors] == ["scaffolder.E001"] and message in errors[0].msg
    assert _leaks(errors[0].msg) == [] and forge.seen == []


def test_github_defaults_to_github_com(settings):
    from portal.settings import base

    assert base.GITHUB_API_URL == "https://api.github.com"
    assert base.SCAFFOLD_REPOSITORY_VISIBILITY == "private"
    settings.SCAFFOLD_PUBLISHER, settings.GITHUB_TOKEN, settings.GITHUB_ORG = "github", TOKEN, "acme"
    settings.GITHUB_API_URL = base.GITHUB_API_URL
    chosen = publishers.publisher()
    assert isinstance(chosen, publishers.GitHubPublisher) and chosen.visibility == "private"
    assert publishers.publisher_settings_check() == []


# --- The local publisher behind the same interface ----------------------------------------------------------


def test_the_local_publisher_clones_and_pushes_branches_and_refuses_after_archiving(settings, tmp_path):
    settings.SCAFFOLD_PUBLISHER, settings.GIT_ROOT = "local", tmp_path / "git"
    chosen = publishers.publisher()
    assert isinstance(chosen, publishers.LocalPublisher)
    assert chosen.exists(name=NAME) is False
    published = chosen.publish(name=NAME, worktree=_worktree(tmp_path), author=AUTHOR, message="Create ledger-api")
    assert published.path == tmp_path / "git" / "ledger-api.git" and chosen.exists(name=NAME)
    assert publishers.local_exists(name=NAME)  # the functions other apps call see the same repository

    clone = tmp_path / "clone"
    chosen.clone(name=NAME, into=clone)
    subprocess.run(["git", "switch", "--quiet", "-c", "update/1.1.0"], cwd=clone, check=True)
    (clone / "README.md").write_text("# updated\n")
    _commit(clone, "Update")
    chosen.push(name=NAME, worktree=clone, branch="update/1.1.0")
    assert git(published.path, "log", "--format=%s", "update/1.1.0").splitlines() == ["Update", "Create ledger-api"]

    with pytest.raises(publishers.PublishError, match="is not a valid branch name"):
        chosen.push(name=NAME, worktree=clone, branch="--force")
    with pytest.raises(publishers.PublishError, match="is not a valid repository name"):
        chosen.clone(name="../ledger-api", into=tmp_path / "other")

    chosen.archive(name=NAME, reason="retired")
    assert publishers.local_archived(name=NAME)
    (clone / "README.md").write_text("# updated again\n")
    _commit(clone, "Update again")
    with pytest.raises(publishers.PublishError, match="archived and takes no pushes: retired"):
        chosen.push(name=NAME, worktree=clone, branch="update/1.1.0")
    chosen.unpublish(name=NAME)
    assert not chosen.exists(name=NAME) and tree(tmp_path / "git") == []
