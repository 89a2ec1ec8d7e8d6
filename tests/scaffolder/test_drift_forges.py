""" "Update from golden path" for services whose repository is on GitHub or GitLab, against the forge in the test
(forge_server.py): the real PyGithub and python-gitlab talk to its REST APIs, the real git pushes to and fetches
from the real `git http-backend` behind it. The branch is pushed to the forge with a pull or merge request; people
merge or close that request on the forge (the test plays them), and "check again" follows what became of it.
"""

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from catalog import cache as catalog_cache
from catalog.models import Service
from scaffolder import drift, leases, publishers, tasks
from scaffolder.models import GoldenPathUpdate
from tests.scaffolder.forge_server import ForgeServer
from tests.scaffolder.support import git, tree
from tests.scaffolder.test_drift import HEALTHCHECK, NEW_HEALTHCHECK, _bump, _scaffold
from tests.scaffolder.test_forge_publishers import TOKEN, TOKEN_FORMS, _configure

pytestmark = pytest.mark.django_db
Status = GoldenPathUpdate.Status
NAME = "ledger-api"
BRANCH = "runway/golden-path-1.1.0"
TITLE = "Update from golden path stdlib-http-service 1.0.0 → 1.1.0"


def _scratch() -> list[str]:
    """Review and merge clones (leases.scratch) still on disk."""
    return sorted(p.name for p in leases.work_root().glob("scratch-*"))


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[ForgeServer]:
    server = ForgeServer(tmp_path / "forge", token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(params=["github", "gitlab"])
def kind(request: pytest.FixtureRequest, settings: Any, forge: ForgeServer) -> str:
    _configure(settings, forge, request.param)
    return str(request.param)


def _full(forge: ForgeServer, kind: str) -> str:
    return f"{forge.org if kind == 'github' else forge.group}/{NAME}"


def _bare(forge: ForgeServer, kind: str) -> Path:
    return forge.bare(kind, _full(forge, kind))


def _web(forge: ForgeServer, kind: str) -> str:
    return f"{forge.url}/{kind}/{_full(forge, kind)}"


def _request_url(forge: ForgeServer, kind: str, number: int = 1) -> str:
    return f"{_web(forge, kind)}{'/pull/' if kind == 'github' else '/-/merge_requests/'}{number}"


def _push_change(forge: ForgeServer, kind: str, tmp_path: Path, edit: Any, message: str, branch: str = "main") -> None:
    """Clone, edit, commit and push straight into the forge's repository, as the team would from their laptops."""
    clone = tmp_path / f"clone-{len(list(tmp_path.glob('clone-*')))}"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "Olivia",
        "GIT_AUTHOR_EMAIL": "o@x",
        "GIT_COMMITTER_NAME": "Olivia",
        "GIT_COMMITTER_EMAIL": "o@x",
    }
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(_bare(forge, kind)), str(clone)], check=True)
    edit(clone)
    for args in (["commit", "-qam", message], ["push", "-q", "origin", f"HEAD:{branch}"]):
        subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True, env=env)


def _update(world: Any) -> GoldenPathUpdate:
    update = drift.update_request(service=Service.objects.get(slug=NAME), requested_by=world.owner)
    tasks.run_golden_path_update(update.pk)
    update.refresh_from_db()
    return update


def _conflicting_update(world: Any, forge: ForgeServer, kind: str, paths: Path, tmp_path: Path) -> GoldenPathUpdate:
    """The team changed the health check's interval; 1.1.0 of the path changes the same line."""
    _scaffold(world)

    def our_healthcheck(clone: Path) -> None:
        docker = clone / "Dockerfile"
        docker.write_text(docker.read_text().replace(HEALTHCHECK, HEALTHCHECK.replace("15s", "30s")))

    _push_change(forge, kind, tmp_path, our_healthcheck, "Check health less often")
    _bump(paths, "1.1.0")
    return _update(world)


def _requests(forge: ForgeServer, kind: str) -> list[dict[str, Any]]:
    return forge.change_requests(kind, _full(forge, kind))


def _state(request: dict[str, Any]) -> str:
    if "merged" in request:  # a GitHub pull request
        return "merged" if request["merged"] else str(request["state"])
    return {"opened": "open"}.get(request["state"], request["state"])


def _branches(forge: ForgeServer, kind: str) -> list[str]:
    return git(_bare(forge, kind), "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def _leaks(update: GoldenPathUpdate, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every form of the token found in the update's fields, the audit trail or the log records."""
    update.refresh_from_db()
    fields = json.dumps([update.steps, update.error, update.diff, update.files, update.change_request_url])
    audit_rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    return [form for form in TOKEN_FORMS for text in (fields, audit_rows, logged) if form in text]


# --- Making the branch and the request --------------------------------------------------------------------------


def test_the_update_pushes_a_branch_to_the_forge_and_opens_a_request_for_it(
    kind, forge, paths, world, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    _scaffold(world)
    _push_change(
        forge,
        kind,
        tmp_path,
        lambda clone: (clone / "README.md").write_text((clone / "README.md").read_text() + "\nOwned by ledgers.\n"),
        "Say who owns it",
    )
    main_before = git(_bare(forge, kind), "rev-parse", "main").strip()
    _bump(paths, "1.1.0")
    service = Service.objects.get(slug=NAME)
    assert drift.update_blockers(service=service) == []  # read through the forge's API, not GIT_ROOT

    update = _update(world)

    assert update.status == Status.READY, update.error
    assert [(step["name"], step["status"]) for step in update.steps] == [
        (name, "done") for name in ("check", "clone", "merge", "commit", "publish")
    ]
    assert update.change_request_url == _request_url(forge, kind)
    assert update.steps[-1]["message"] == f"{BRANCH}: {update.change_request_url}"
    bare = _bare(forge, kind)
    assert git(bare, "rev-parse", "main").strip() == main_before == update.base_sha  # main is the forge's business
    assert git(bare, "rev-parse", BRANCH).strip() == update.head_sha
    assert NEW_HEALTHCHECK in git(bare, "show", f"{BRANCH}:Dockerfile")
    assert "Owned by ledgers." in git(bare, "show", f"{BRANCH}:README.md")
    assert yaml.safe_load(git(bare, "show", f"{BRANCH}:.copier-answers.yml"))["_commit"] == "1.1.0"

    [request] = _requests(forge, kind)
    assert request["title"] == TITLE and _state(request) == "open"
    body = request["body" if kind == "github" else "description"]
    assert "No conflicts" in body and update.get_absolute_url() in body
    changed = {entry["path"]: entry for entry in update.files}
    assert changed["Dockerfile"]["change"] == "modified" and not changed["Dockerfile"]["conflicted"]
    assert changed["SECURITY.md"]["change"] == "added"
    assert f"+{NEW_HEALTHCHECK}" in update.diff and "Owned by ledgers." not in update.diff

    assert tree(tmp_path / "git") == []  # nothing in the local publisher's GIT_ROOT...
    assert tree(tmp_path / "scratch") == [] and _scratch() == []  # ...and no clone left behind
    assert all(seen.authorised for seen in forge.seen)
    assert _leaks(update, caplog) == []
    with pytest.raises(ValidationError, match="already open"):
        drift.update_request(service=service, requested_by=world.owner)


def test_conflicts_are_listed_in_the_request_and_merging_is_left_to_the_forge(
    kind, forge, paths, world, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    update = _conflicting_update(world, forge, kind, paths, tmp_path)

    assert update.status == Status.CONFLICTS, update.error
    assert update.conflicted == ["Dockerfile"]
    assert "<<<<<<< before updating" in git(_bare(forge, kind), "show", f"{BRANCH}:Dockerfile")
    [request] = _requests(forge, kind)
    body = request["body" if kind == "github" else "description"]
    assert "1 file(s) with conflicts" in body and "- `Dockerfile`" in body
    label = "pull request" if kind == "github" else "merge request"
    with pytest.raises(ValidationError, match=label):
        drift.update_merge(update=update, user=world.owner)

    def resolve(clone: Path) -> None:
        docker = clone / "Dockerfile"
        lines = docker.read_text().splitlines(keepends=True)
        start = next(i for i, line in enumerate(lines) if line.startswith("<<<<<<<"))
        middle = next(i for i, line in enumerate(lines) if line.startswith("======="))
        end = next(i for i, line in enumerate(lines) if line.startswith(">>>>>>>"))
        docker.write_text("".join(lines[:start] + lines[middle + 1 : end] + lines[end + 1 :]))

    _push_change(forge, kind, tmp_path, resolve, "Take the new health check", branch=BRANCH)
    refreshed = drift.update_refresh(update=update, user=world.owner)

    assert refreshed.status == Status.READY and refreshed.conflicted == []  # read from the forge again
    assert refreshed.head_sha == git(_bare(forge, kind), "rev-parse", BRANCH).strip() != update.base_sha
    assert Service.objects.get(slug=NAME).golden_path_version == "1.0.0"  # still open on the forge
    assert tree(tmp_path / "scratch") == [] and _scratch() == []
    assert _leaks(refreshed, caplog) == []


# --- Following the request ----------------------------------------------------------------------------------------


def test_checking_again_after_the_request_is_merged_on_the_forge_records_the_new_version(
    kind, forge, paths, world, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)
    assert update.status == Status.READY, update.error
    cached = catalog_cache.version()

    merged_commit = forge.change_request_merge(kind, _full(forge, kind), 1)
    with pytest.raises(ValidationError, match="was merged on"):  # what is on main cannot be discarded
        drift.update_discard(update=update, user=world.owner)
    checked = drift.update_refresh(update=update, user=world.owner)

    assert checked.status == Status.MERGED and checked.merged_by == world.owner and checked.merged_at
    assert merged_commit == checked.head_sha
    service = Service.objects.get(slug=NAME)
    assert service.golden_path_version == "1.1.0" and drift.latest_for(service) is None
    assert catalog_cache.version() > cached  # cached catalog pages and API lists show the new version
    event = AuditEvent.objects.get(action="golden_path_update.merged")
    assert event.before == {"golden_path_version": "1.0.0"}
    assert event.after == {"golden_path_version": "1.1.0", "commit": merged_commit}
    assert _branches(forge, kind) == ["main"]  # the merged branch is tidied away
    assert "SECURITY.md" in {entry["path"] for entry in checked.files}  # the last review is kept
    with pytest.raises(ValidationError, match="merged"):
        drift.update_refresh(update=checked, user=world.owner)
    assert _leaks(checked, caplog) == []


def test_checking_again_after_the_request_is_closed_on_the_forge_discards_the_update(
    kind, forge, paths, world, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)
    main_before = git(_bare(forge, kind), "rev-parse", "main").strip()

    forge.change_request_close(kind, _full(forge, kind), 1)
    checked = drift.update_refresh(update=update, user=world.owner)

    assert checked.status == Status.DISCARDED and checked.merged_by is None
    assert Service.objects.get(slug=NAME).golden_path_version == "1.0.0"
    assert git(_bare(forge, kind), "rev-parse", "main").strip() == main_before
    assert _branches(forge, kind) == ["main"]
    assert AuditEvent.objects.filter(action="golden_path_update.discarded").count() == 1
    assert not AuditEvent.objects.filter(action="golden_path_update.merged").exists()

    again = _update(world)  # a new update can be asked for, and gets a new request for the same branch name
    assert again.status == Status.READY, again.error
    assert again.change_request_url == _request_url(forge, kind, 2)
    assert [_state(request) for request in _requests(forge, kind)] == ["closed", "open"]
    assert _leaks(again, caplog) == []


def test_discarding_in_runway_closes_the_request_and_deletes_the_branch(kind, forge, paths, world):
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)
    assert BRANCH in _branches(forge, kind)

    discarded = drift.update_discard(update=update, user=world.owner)

    assert discarded.status == Status.DISCARDED
    assert [_state(request) for request in _requests(forge, kind)] == ["closed"]
    assert _branches(forge, kind) == ["main"]


def test_a_forge_that_refuses_the_push_fails_the_update_without_the_token(kind, forge, paths, world, caplog):
    caplog.set_level(logging.DEBUG)
    _scaffold(world)
    _bump(paths, "1.1.0")
    forge.refuse_pushes = f"Refused: {TOKEN}"

    update = _update(world)

    assert update.status == Status.FAILED
    assert update.error.startswith("git push failed:") and "Refused: ***" in update.error
    assert [(step["name"], step["status"]) for step in update.steps][-1] == ("publish", "failed")
    assert update.change_request_url == "" and _requests(forge, kind) == []
    assert _branches(forge, kind) == ["main"]
    assert _leaks(update, caplog) == []
    forge.refuse_pushes = None
    assert drift.update_discard(update=update, user=world.owner).status == Status.DISCARDED


def test_the_token_reaches_git_through_its_environment_only_and_scoped_to_the_repository(
    kind, forge, paths, world, monkeypatch
):
    _scaffold(world)
    _bump(paths, "1.1.0")
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)  # every git run by the worker, the review and the discard
    update = _update(world)
    assert update.status == Status.READY, update.error
    drift.update_refresh(update=update, user=world.owner)
    drift.update_discard(update=update, user=world.owner)

    remote = [(argv, env) for argv, env in calls if "GIT_CONFIG_COUNT" in env]
    assert [argv[1] for argv, _ in remote] == [
        *["clone", "push", "clone", "fetch"],  # the worker: clone main, push the branch, review it from a scratch clone
        *["clone", "fetch"],  # check again
        *["ls-remote", "push"],  # discard: delete the branch
    ]
    for argv, env in calls:
        assert [form for form in TOKEN_FORMS if form in " ".join(argv)] == [], argv
        if (argv, env) not in remote:
            assert [form for form in TOKEN_FORMS if form in json.dumps(env)] == [], argv
    for argv, env in remote:
        url = argv[argv.index("--") + 1]
        assert "@" not in url and url == f"{forge.url}/{kind}/git/{_full(forge, kind)}.git"
        assert env["GIT_CONFIG_KEY_0"] == f"http.{url}.extraHeader"


def test_what_blocks_an_update_is_read_from_the_forge(kind, forge, paths, world, tmp_path):
    _scaffold(world)

    def forget(clone: Path) -> None:
        answers_file = clone / ".copier-answers.yml"
        answers_file.write_text(
            "".join(line for line in answers_file.read_text().splitlines(True) if not line.startswith("_commit"))
        )

    _push_change(forge, kind, tmp_path, forget, "Lose the template version")
    _bump(paths, "1.1.0")
    service = Service.objects.get(slug=NAME)
    assert drift.update_blockers(service=service) == [
        "The repository of Ledger API does not record which version of stdlib-http-service it was made from (no "
        "_commit in .copier-answers.yml on main), so the update has to be made by hand."
    ]
    publishers.publisher().archive(name=NAME, reason="test")
    assert drift.update_blockers(service=service) == ["The repository of Ledger API is archived."]
    Service.objects.filter(pk=service.pk).update(slug="ledger-gone")
    service.refresh_from_db()
    where = "GitHub" if kind == "github" else "GitLab"
    assert f"has no repository on {where} to make a branch in." in drift.update_blockers(service=service)[0]


def test_change_requests_of_another_repository_are_refused_before_any_request(kind, forge, paths, world):
    _scaffold(world)
    chosen = publishers.publisher()
    for wrong in (f"{forge.url}/{kind}/elsewhere/x/pull/1", "https://example.com/1", f"{_web(forge, kind)}/pull/1x"):
        with pytest.raises(publishers.PublishError, match="is not a"):
            chosen.change_request_state(name=NAME, url_or_number=wrong)
    for branch in ("-f", "../main", "x y"):
        with pytest.raises(publishers.PublishError, match="not a valid branch name"):
            chosen.open_change_request(name=NAME, branch=branch, title="t", body="b")
    assert _requests(forge, kind) == []


# --- Pages --------------------------------------------------------------------------------------------------------


def test_the_pages_offer_the_update_and_link_to_the_request_instead_of_merging(kind, forge, paths, world, client):
    _scaffold(world)
    _bump(paths, "1.1.0")
    client.force_login(world.owner)
    panel = client.get(reverse("scaffolder:repository", args=[NAME]), HTTP_HX_REQUEST="true").content.decode()
    assert "1.1.0 is out" in panel and "Update from golden path" in panel
    assert reverse("scaffolder:update-request", args=[NAME]) in panel

    update = _update(world)
    label = "pull request" if kind == "github" else "merge request"
    page = client.get(update.get_absolute_url()).content.decode()
    assert f'href="{update.change_request_url}"' in page and f"Open the {label}" in page
    assert "Merge into main" not in page and "Check again" in page
    panel = client.get(reverse("scaffolder:repository", args=[NAME]), HTTP_HX_REQUEST="true").content.decode()
    assert f'href="{update.change_request_url}"' in panel
    refused = client.post(reverse("scaffolder:update-action", args=[update.uuid, "merge"]), follow=True)
    assert label in refused.content.decode()

    forge.change_request_merge(kind, _full(forge, kind), 1)
    response = client.post(reverse("scaffolder:update-action", args=[update.uuid, "refresh"]))
    assert response.status_code == 302 and response["Location"] == Service.objects.get(slug=NAME).get_absolute_url()
    update.refresh_from_db()
    assert update.status == Status.MERGED
