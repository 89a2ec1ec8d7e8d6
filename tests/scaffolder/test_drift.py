"""Golden path versions and "update from golden path": real copier, real git, a path whose version was bumped."""

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from catalog.models import Service
from scaffolder import demo as scaffolder_demo
from scaffolder import drift, leases, registry, services, tasks, versions
from scaffolder.models import GoldenPathUpdate, ScaffoldRun
from tests.scaffolder.support import STDLIB, answers, git

pytestmark = pytest.mark.django_db
Status = GoldenPathUpdate.Status

HEALTHCHECK = "HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \\"
NEW_HEALTHCHECK = "HEALTHCHECK --interval=10s --timeout=2s --start-period=3s --retries=5 \\"


def _bump(folder: Path, version: str, *, dockerfile: bool = True) -> registry.GoldenPath:
    """Release a new version of the path: a changed health check in the Dockerfile and a new file."""
    spec = folder / "template.yaml"
    spec.write_text(spec.read_text().replace("version: 1.0.0", f"version: {version}", 1))
    if dockerfile:
        docker = folder / "template" / "Dockerfile"
        docker.write_text(docker.read_text().replace(HEALTHCHECK, NEW_HEALTHCHECK))
    (folder / "template" / "SECURITY.md").write_text("# Security\n\nReport problems to the platform team.\n")
    registry._all.cache_clear()
    path = registry.golden_path_get(STDLIB)
    assert path is not None and path.version == version
    return path


def _scaffold(world) -> Service:  # type: ignore[no-untyped-def]
    path = registry.golden_path_get(STDLIB)
    assert path is not None
    run = services.scaffold_request(
        path=path, answers=answers(), owner=world.owner_team, system=None, requested_by=world.owner
    )
    tasks.run_scaffold(run.pk)
    run.refresh_from_db()
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    return Service.objects.get(slug="ledger-api")


def _bare(name: str = "ledger-api") -> Path:
    return Path(settings.GIT_ROOT) / f"{name}.git"


def _commit_change(tmp_path: Path, edit, message: str, branch: str = "main") -> None:  # type: ignore[no-untyped-def]
    """Clone, edit, commit and push, as the service's team would from their laptops."""
    clone = tmp_path / f"clone-{len(list(tmp_path.glob('clone-*')))}"
    run = lambda *args: subprocess.run(  # noqa: E731
        ["git", *args], cwd=clone, check=True, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_AUTHOR_NAME": "Olivia", "GIT_AUTHOR_EMAIL": "o@x",
             "GIT_COMMITTER_NAME": "Olivia", "GIT_COMMITTER_EMAIL": "o@x"},
    )  # fmt: skip
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(_bare()), str(clone)], check=True)
    edit(clone)
    run("commit", "-qam", message)
    run("push", "-q", "origin", f"HEAD:{branch}")


def _update(world) -> GoldenPathUpdate:  # type: ignore[no-untyped-def]
    update = drift.update_request(service=Service.objects.get(slug="ledger-api"), requested_by=world.owner)
    tasks.run_golden_path_update(update.pk)
    update.refresh_from_db()
    return update


def _conflicting_update(world, paths: Path, tmp_path: Path) -> GoldenPathUpdate:  # type: ignore[no-untyped-def]
    """The team changed the health check's interval; 1.1.0 of the path changes the same line."""
    _scaffold(world)

    def our_healthcheck(clone: Path) -> None:
        docker = clone / "Dockerfile"
        docker.write_text(docker.read_text().replace(HEALTHCHECK, HEALTHCHECK.replace("15s", "30s")))

    _commit_change(tmp_path, our_healthcheck, "Check health less often")
    _bump(paths, "1.1.0")
    return _update(world)


def _show(ref: str, path: str) -> str:
    return git(_bare(), "show", f"{ref}:{path}")


# --- The version store ---------------------------------------------------------------------------------------------


def test_each_version_is_recorded_once_and_a_changed_folder_without_a_bump_gets_a_revision_tag(paths):
    path = registry.golden_path_get(STDLIB)
    first = versions.version_record(path)
    assert first.ref == "1.0.0"
    assert versions.version_record(path) == first  # nothing new to record
    tags = git(first.store, "tag").split()
    assert tags == ["1.0.0"]

    readme = paths / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nOne more line.\n")
    assert versions.version_record(path).ref == "1.0.0+r1"  # same version, different files: never overwritten
    readme.write_text(readme.read_text().replace("\nOne more line.\n", ""))
    assert versions.version_record(path).ref == "1.0.0"  # back to the recorded content
    assert "One more line." not in git(first.store, "show", "1.0.0:template/README.md.jinja")

    bumped = _bump(paths, "1.1.0")
    assert versions.version_record(bumped).ref == "1.1.0"
    assert sorted(git(first.store, "tag").split()) == ["1.0.0", "1.0.0+r1", "1.1.0"]


def test_a_scratch_index_lock_left_by_a_killed_worker_does_not_block_the_next_record(paths):
    """A worker SIGKILLed during `git add` leaves runway-index.lock; the store's file lock says nobody else uses it."""
    path = registry.golden_path_get(STDLIB)
    store = versions.version_record(path).store
    (store / "runway-index.lock").write_text("")

    readme = paths / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nOne more line.\n")

    assert versions.version_record(path).ref == "1.0.0+r1"


def test_a_store_whose_init_was_killed_half_way_is_made_again(paths):
    """A worker SIGKILLed inside `git init` left a folder with a HEAD and nothing else; it used to fail every scaffold
    of the path ("not a git repository") from then on."""
    store = versions.store_path(STDLIB)
    store.mkdir(parents=True)
    (store / "HEAD").write_text("ref: refs/heads/main\n")
    recorded = versions.version_record(registry.golden_path_get(STDLIB))
    assert recorded.ref == "1.0.0" and git(store, "tag").split() == ["1.0.0"]
    assert sorted(p.name for p in store.parent.iterdir() if p.name.startswith(".")) == []  # no scratch init left


def test_files_left_by_running_the_templates_tests_are_not_part_of_a_version(paths):
    path = registry.golden_path_get(STDLIB)
    recorded = versions.version_record(path)
    (paths / "template" / "tests" / "__pycache__").mkdir()
    (paths / "template" / "tests" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert versions.version_record(path) == recorded
    assert "__pycache__" not in git(recorded.store, "ls-tree", "-r", "--name-only", "1.0.0")


def test_a_scaffolded_project_records_the_tag_it_was_made_from(world, paths):
    _scaffold(world)
    recorded = yaml.safe_load(_show("main", ".copier-answers.yml"))
    assert recorded["_commit"] == "1.0.0"
    assert recorded["_src_path"] == str(versions.store_path(STDLIB))
    assert recorded["golden_path_version"] == "1.0.0"


# --- Drift -------------------------------------------------------------------------------------------------------


def test_a_service_is_behind_only_when_its_path_has_a_newer_version(world, paths):
    service = _scaffold(world)
    assert drift.latest_for(service) is None
    assert drift.update_blockers(service=service) == ["Ledger API is on the latest version of stdlib-http-service."]
    _bump(paths, "1.1.0")
    assert drift.latest_for(service).version == "1.1.0"
    assert drift.update_blockers(service=service) == []
    service.golden_path_version = "1.2.0"  # ahead (a path rolled back) is not behind
    assert drift.latest_for(service) is None


def test_update_merges_the_new_version_into_a_branch_and_keeps_the_teams_own_changes(world, paths, tmp_path):
    _scaffold(world)
    _commit_change(
        tmp_path,
        lambda clone: (clone / "README.md").write_text((clone / "README.md").read_text() + "\nOwned by ledgers.\n"),
        "Say who owns it",
    )
    main_before = git(_bare(), "rev-parse", "main").strip()
    _bump(paths, "1.1.0")

    update = _update(world)

    assert update.status == Status.READY, update.error
    assert [step["name"] for step in update.steps] == ["check", "clone", "merge", "commit", "publish"]
    assert all(step["status"] == "done" for step in update.steps)
    assert update.base_sha == main_before
    assert git(_bare(), "rev-parse", "main").strip() == main_before  # nothing merged until a person says so
    branch = "runway/golden-path-1.1.0"
    assert update.branch == branch
    assert NEW_HEALTHCHECK in _show(branch, "Dockerfile")
    assert "Owned by ledgers." in _show(branch, "README.md")  # the team's change survives
    assert "Report problems" in _show(branch, "SECURITY.md")
    assert '"stdlib-http-service@1.1.0"' in _show(branch, "catalog-info.yaml")
    assert yaml.safe_load(_show(branch, ".copier-answers.yml"))["_commit"] == "1.1.0"
    assert git(_bare(), "log", "-1", "--format=%an", branch).strip() == "olivia"
    changed = {entry["path"]: entry for entry in update.files}
    assert changed["Dockerfile"]["change"] == "modified" and not changed["Dockerfile"]["conflicted"]
    assert changed["SECURITY.md"]["change"] == "added"
    readme = next(f for f in drift.diff_files(update.diff) if f.path == "README.md")
    assert [line.text for line in readme.lines if line.kind == "add"] == [
        "+from Runway's `stdlib-http-service` golden path (version 1.1.0). Owned by the `payments` team."
    ]  # the version line only: the team's own line is theirs, not the template's
    assert f"+{NEW_HEALTHCHECK}" in update.diff
    shown = {f.path: f for f in drift.diff_files(update.diff)}
    assert any(line.kind == "add" and NEW_HEALTHCHECK in line.text for line in shown["Dockerfile"].lines)
    assert any(line.kind == "del" and HEALTHCHECK in line.text for line in shown["Dockerfile"].lines)


def test_merging_puts_the_update_on_main_and_records_the_new_version(world, paths):
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)

    merged = drift.update_merge(update=update, user=world.owner)

    assert merged.status == Status.MERGED and merged.merged_by == world.owner
    assert NEW_HEALTHCHECK in _show("main", "Dockerfile")
    assert "runway/golden-path-1.1.0" not in git(_bare(), "branch", "--list")
    assert git(_bare(), "log", "-1", "--format=%s", "main").strip().startswith("Merge golden path")
    service = Service.objects.get(slug="ledger-api")
    assert service.golden_path_version == "1.1.0"
    assert drift.latest_for(service) is None
    event = AuditEvent.objects.get(action="golden_path_update.merged")
    assert event.before == {"golden_path_version": "1.0.0"} and event.after["golden_path_version"] == "1.1.0"


def test_conflicting_lines_are_shown_and_block_the_merge_until_fixed_on_the_branch(world, paths, tmp_path):
    update = _conflicting_update(world, paths, tmp_path)

    assert update.status == Status.CONFLICTS, update.error
    assert update.conflicted == ["Dockerfile"]
    assert "<<<<<<< before updating" in _show(update.branch, "Dockerfile")
    assert any(line.kind == "conflict" for f in drift.diff_files(update.diff) for line in f.lines)
    with pytest.raises(ValidationError, match="Dockerfile"):
        drift.update_merge(update=update, user=world.owner)
    assert "<<<<<<<" not in _show("main", "Dockerfile")

    def resolve(clone: Path) -> None:
        docker = clone / "Dockerfile"
        lines = docker.read_text().splitlines(keepends=True)
        start = next(i for i, line in enumerate(lines) if line.startswith("<<<<<<<"))
        middle = next(i for i, line in enumerate(lines) if line.startswith("======="))
        end = next(i for i, line in enumerate(lines) if line.startswith(">>>>>>>"))
        docker.write_text("".join(lines[:start] + lines[middle + 1 : end] + lines[end + 1 :]))

    _commit_change(tmp_path, resolve, "Take the new health check", branch=update.branch)
    refreshed = drift.update_refresh(update=update, user=world.owner)
    assert refreshed.status == Status.READY and refreshed.conflicted == []
    drift.update_merge(update=refreshed, user=world.owner)
    assert NEW_HEALTHCHECK in _show("main", "Dockerfile")


def test_only_the_owners_can_ask_and_one_update_is_open_at_a_time(world, paths):
    service = _scaffold(world)
    _bump(paths, "1.1.0")
    with pytest.raises(PermissionDenied):
        drift.update_request(service=service, requested_by=world.outsider)
    first = drift.update_request(service=service, requested_by=world.owner)
    with pytest.raises(ValidationError, match="already open"):
        drift.update_request(service=service, requested_by=world.staff)
    with pytest.raises(PermissionDenied):
        drift.update_discard(update=first, user=world.outsider)
    assert GoldenPathUpdate.objects.count() == 1


def test_a_discarded_update_removes_its_branch_and_a_new_one_can_be_made(world, paths):
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)
    drift.update_discard(update=update, user=world.owner)
    assert update.branch not in git(_bare(), "branch", "--list")
    assert Service.objects.get(slug="ledger-api").golden_path_version == "1.0.0"
    again = _update(world)
    assert again.status == Status.READY


def test_an_update_whose_worker_died_fails_within_its_lease_with_a_finished_timeline(world, paths, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    _scaffold(world)
    _bump(paths, "1.1.0")
    update = drift.update_request(service=Service.objects.get(slug="ledger-api"), requested_by=world.owner)
    claimed = drift.update_claim(update_id=update.pk)
    assert claimed is not None and claimed.lease_until is not None and claimed.attempts == 1
    folder = leases.work_folder("update", claimed)
    # The worker died in the merge step: its lease was last renewed a moment ago, and then lapsed.
    GoldenPathUpdate.objects.filter(pk=update.pk).update(
        steps=[
            {"name": "check", "status": "done"},
            {"name": "clone", "status": "done"},
            {"name": "merge", "status": "running"},
        ]
    )
    assert drift.update_sweep() == 0  # the lease still stands
    GoldenPathUpdate.objects.filter(pk=update.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert tasks.fail_stale_runs() == 1

    update.refresh_from_db()
    assert (update.status, update.lease_until) == (Status.FAILED, None) and update.finished_at is not None
    assert update.error == "The worker making this update stopped before it finished. Discard it and ask again."
    assert [(s["name"], s["status"]) for s in update.steps] == [
        ("check", "done"), ("clone", "done"), ("merge", "interrupted")
    ]  # fmt: skip
    assert not folder.exists()
    drift.update_discard(update=update, user=world.owner)  # and the service can be updated again
    assert not drift.update_blockers(service=update.service)


def test_a_project_made_before_versions_were_kept_fails_with_a_reason_and_changes_nothing(world, paths, tmp_path):
    _scaffold(world)

    def forget(clone: Path) -> None:
        answers_file = clone / ".copier-answers.yml"
        answers_file.write_text(
            "".join(line for line in answers_file.read_text().splitlines(True) if not line.startswith("_commit"))
        )

    _commit_change(tmp_path, forget, "Lose the template version")
    main_before = git(_bare(), "rev-parse", "main").strip()
    _bump(paths, "1.1.0")
    service = Service.objects.get(slug="ledger-api")
    assert drift.update_blockers(service=service) == [
        "The repository of Ledger API does not record which version of stdlib-http-service it was made from (no "
        "_commit in .copier-answers.yml on main), so the update has to be made by hand."
    ]  # said before anyone asks

    # Had it been asked for before the file changed, the worker says so and changes nothing.
    update = GoldenPathUpdate.objects.create(
        service=service,
        golden_path=STDLIB,
        from_version="1.0.0",
        to_version="1.1.0",
        branch="runway/golden-path-1.1.0",
        requested_by=world.owner,
    )
    tasks.run_golden_path_update(update.pk)
    update.refresh_from_db()

    assert update.status == Status.FAILED
    assert "made before Runway kept golden path versions" in update.error
    assert update.steps[-1]["name"] == "clone" and update.steps[-1]["status"] == "failed"
    assert git(_bare(), "branch", "--list").split() == ["*", "main"]
    assert git(_bare(), "rev-parse", "main").strip() == main_before


def test_a_retired_service_cannot_be_updated_nor_an_open_update_merged(world, paths):
    service = _scaffold(world)
    _bump(paths, "1.1.0")
    update = _update(world)
    Service.objects.filter(pk=service.pk).update(lifecycle="decommissioning")
    service.refresh_from_db()
    with pytest.raises(ValidationError, match="its repository takes no changes"):
        drift.update_merge(update=update, user=world.staff)
    drift.update_discard(update=update, user=world.staff)
    with pytest.raises(ValidationError, match="its repository takes no changes"):
        drift.update_request(service=service, requested_by=world.owner)


# --- Pages ---------------------------------------------------------------------------------------------------------


def test_the_repository_panel_offers_the_update_to_owners_only(world, paths, client):
    _scaffold(world)
    _bump(paths, "1.1.0")
    url = reverse("scaffolder:repository", args=["ledger-api"])
    client.force_login(world.owner)
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Minimal HTTP service (Python standard library) 1.1.0 is out" in page
    assert reverse("scaffolder:update-request", args=["ledger-api"]) in page
    client.force_login(world.outsider)
    page = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "1.1.0 is out" in page and "Update from golden path" not in page
    assert client.post(reverse("scaffolder:update-request", args=["ledger-api"])).status_code == 403
    assert not GoldenPathUpdate.objects.exists()


def test_asking_from_the_page_leads_to_the_update_and_its_review(
    world, paths, client, django_assert_max_num_queries, django_capture_on_commit_callbacks, mocker
):
    _scaffold(world)
    _bump(paths, "1.1.0")
    client.force_login(world.owner)
    delay = mocker.patch("scaffolder.tasks.run_golden_path_update.delay")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("scaffolder:update-request", args=["ledger-api"]))
    update = GoldenPathUpdate.objects.get()
    assert response.status_code == 302 and response["Location"] == update.get_absolute_url()
    delay.assert_called_once_with(update.pk)  # the worker's job, on commit
    queued = client.get(update.get_absolute_url()).content.decode()
    assert "Waiting for a worker" in queued and 'hx-trigger="every 700ms"' in queued
    tasks.run_golden_path_update(update.pk)
    with django_assert_max_num_queries(8):
        page = client.get(update.get_absolute_url()).content.decode()
    assert "Ready to merge" in page and "SECURITY.md" in page and "Merge into main" in page
    assert f'<a href="{reverse("catalog:service-list")}" aria-current="page">Catalog</a>' in page
    assert 'class="diff-add">+HEALTHCHECK --interval=10s' in page
    polled = client.get(update.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert polled.lstrip().startswith('<div id="progress"') and "<html" not in polled

    client.force_login(world.outsider)
    assert client.get(update.get_absolute_url()).status_code == 200  # any signed-in engineer may read it
    assert client.post(reverse("scaffolder:update-action", args=[update.uuid, "merge"])).status_code == 403
    client.force_login(world.owner)
    response = client.post(reverse("scaffolder:update-action", args=[update.uuid, "merge"]))
    assert (
        response.status_code == 302
        and response["Location"] == Service.objects.get(slug="ledger-api").get_absolute_url()
    )
    update.refresh_from_db()
    assert update.status == Status.MERGED


def test_a_conflicted_update_page_says_what_to_do_and_refuses_the_merge(world, paths, client, tmp_path):
    update = _conflicting_update(world, paths, tmp_path)
    client.force_login(world.owner)
    page = client.get(update.get_absolute_url()).content.decode()
    assert "1 file with conflicts" in page and "git clone --branch runway/golden-path-1.1.0" in page
    assert 'class="diff-conflict">+&lt;&lt;&lt;&lt;&lt;&lt;&lt; before updating' in page
    response = client.post(reverse("scaffolder:update-action", args=[update.uuid, "merge"]), follow=True)
    assert "files still have conflict markers: Dockerfile" in response.content.decode()
    update.refresh_from_db()
    assert update.status == Status.CONFLICTS
    assert client.post(reverse("scaffolder:update-action", args=[update.uuid, "rebase"])).status_code == 404


# --- API -----------------------------------------------------------------------------------------------------------


def test_the_api_asks_follows_and_merges_an_update_with_the_same_checks(
    world, paths, api_client, mocker, django_assert_max_num_queries
):
    _scaffold(world)
    url = "/api/v1/golden-path-updates/"
    api_client.force_authenticate(world.owner)
    refused = api_client.post(url, {"service": "ledger-api"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"non_field_errors": ["Ledger API is on the latest version of stdlib-http-service."]}
    assert api_client.post(url, {"service": "no-such"}, format="json").json()["service"]
    _bump(paths, "1.1.0")
    api_client.force_authenticate(world.outsider)
    assert api_client.post(url, {"service": "ledger-api"}, format="json").status_code == 403

    api_client.force_authenticate(world.owner)
    mocker.patch("scaffolder.tasks.run_golden_path_update.delay")
    asked = api_client.post(url, {"service": "ledger-api"}, format="json")
    assert asked.status_code == 202 and asked.json()["status"] == "queued"
    update = GoldenPathUpdate.objects.get()
    tasks.run_golden_path_update(update.pk)

    for earlier in ("1.0.1", "1.0.2", "1.0.3"):  # a history to list, without the diffs
        GoldenPathUpdate.objects.create(
            service=update.service, golden_path=STDLIB, from_version="1.0.0", to_version=earlier,
            status=Status.DISCARDED, diff="+x\n", requested_by=world.owner,
        )  # fmt: skip
    with django_assert_max_num_queries(3):
        everything = api_client.get(url, {"service": "ledger-api"}).json()
    assert everything["count"] == 4 and all("diff" not in item for item in everything["results"])
    listed = api_client.get(url, {"service": "ledger-api", "status": "ready"}).json()
    assert [item["uuid"] for item in listed["results"]] == [str(update.uuid)]
    assert "diff" not in listed["results"][0]
    assert api_client.get(url, {"status": "merged"}).json()["results"] == []
    detail = api_client.get(f"{url}{update.uuid}/").json()
    assert detail["status"] == "ready" and "+HEALTHCHECK --interval=10s" in detail["diff"]
    assert {f["path"] for f in detail["files"]} >= {"Dockerfile", "SECURITY.md"}

    api_client.force_authenticate(world.outsider)
    assert api_client.post(f"{url}{update.uuid}/merge/").status_code == 403
    api_client.force_authenticate(world.owner)
    services_url = "/api/v1/services/?q=ledger-api"
    assert api_client.get(services_url).json()["results"][0]["golden_path_version"] == "1.0.0"  # cached with Redis
    merged = api_client.post(f"{url}{update.uuid}/merge/")
    assert api_client.get(services_url).json()["results"][0]["golden_path_version"] == "1.1.0"
    assert merged.status_code == 200 and merged.json()["status"] == "merged"
    assert merged.json()["merged_by"] == "olivia"
    again = api_client.post(f"{url}{update.uuid}/discard/")
    assert again.status_code == 400 and again.json() == {"non_field_errors": ["This update is merged."]}


# --- Releases a path ships as history, and the demo's service made from one -------------------------------------


def test_a_path_shipping_its_history_has_its_earlier_releases_recorded(settings, tmp_path):
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    path = registry.golden_path_get("python-worker")
    assert path is not None and path.version == "1.1.0"
    with versions.history_versions(path) as earlier:
        assert list(earlier) == ["1.0.0"]
        assert not (earlier["1.0.0"].folder / "template" / "SECURITY.md.jinja").exists()
    store = versions.store_path("python-worker")
    assert "1.0.0" in git(store, "tag").split()
    assert "SECURITY.md.jinja" not in git(store, "ls-tree", "-r", "--name-only", "1.0.0")
    assert 'default: "1.0.0"' in git(store, "show", "1.0.0:copier.yml")


def test_a_history_patch_that_does_not_apply_is_a_clear_error(settings, tmp_path):
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    folder = tmp_path / "golden_paths" / "python-worker"
    shutil.copytree(Path(settings.BASE_DIR) / "golden_paths" / "python-worker", folder)
    (folder / "template" / ".github" / "workflows" / "ci.yml").write_text("name: CI\n")  # edited since 1.1.0
    path = registry.load(folder)
    with pytest.raises(versions.VersionStoreError, match="1.0.0..1.1.0.patch does not apply to python-worker 1.1.0"):
        with versions.history_versions(path):
            pass


def test_the_demo_loads_on_a_reset_database_beside_the_repository_it_made_before(world, settings, tmp_path):
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    service = scaffolder_demo.behind_service_load(owner=world.owner_team, user=world.owner)
    assert service is not None
    Service.objects.filter(pk=service.pk).delete()  # the database is reset; var/git keeps the repository

    assert scaffolder_demo.behind_service_load(owner=world.owner_team, user=world.owner) is None


def test_the_demos_service_is_behind_its_path_and_updates_to_the_new_release(world, settings, tmp_path):
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    service = scaffolder_demo.behind_service_load(owner=world.owner_team, user=world.owner)
    assert service is not None and service.golden_path_version == "1.0.0"
    assert scaffolder_demo.behind_service_load(owner=world.owner_team, user=world.owner) is None  # made once
    assert drift.latest_for(service).version == "1.1.0"
    assert drift.update_blockers(service=service) == []

    update = drift.update_request(service=service, requested_by=world.owner)
    tasks.run_golden_path_update(update.pk)
    update.refresh_from_db()

    assert update.status == Status.READY, update.error
    changes = {entry["path"]: entry["change"] for entry in update.files}
    assert changes["SECURITY.md"] == "added" and changes[".github/workflows/ci.yml"] == "modified"
    assert "+          cache: pip" in update.diff
