"""Scaffolding services and the task: a real render, a real bare git repository, nothing half-made on failure."""

import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import get_perms

from audit.models import AuditEvent
from catalog.models import Service
from catalog.permissions import user_can
from scaffolder import leases, publishers, registry, services, tasks
from scaffolder.models import STEPS, ScaffoldRun
from scaffolder.render import RenderError
from techdocs.models import ADR, Runbook
from tests.factories import service_make
from tests.scaffolder.support import CONTROL, SIZED, STDLIB, answers, git, paths_install, tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def git_root(settings, tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A per-test GIT_ROOT and golden-path folder; the scaffolder's scratch folders go under tmp_path/scratch."""
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATHS_DIR = paths_install(tmp_path)
    settings.VAR_DIR = tmp_path / "var"  # the runs' work folders (leases.work_root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return settings.GIT_ROOT


@pytest.fixture
def path(git_root) -> registry.GoldenPath:  # type: ignore[no-untyped-def]
    found = registry.golden_path_get(STDLIB)
    assert found is not None
    return found


def _request(path, user, owner, **overrides) -> ScaffoldRun:  # type: ignore[no-untyped-def]
    return services.scaffold_request(
        path=path, answers=answers(**overrides), owner=owner, system=None, requested_by=user
    )


def _scaffold(path, user, owner, **overrides) -> ScaffoldRun:  # type: ignore[no-untyped-def]
    run = _request(path, user, owner, **overrides)
    tasks.run_scaffold(run.pk)
    run.refresh_from_db()
    return run


def _fresh(user):  # type: ignore[no-untyped-def]
    """Re-read: guardian caches permissions on the instance."""
    return get_user_model().objects.get(pk=user.pk)


def _nothing_made(git_root: Path, tmp_path: Path, name: str = "ledger-api") -> None:
    assert not Service.objects.filter(slug=name).exists()
    assert not (git_root / f"{name}.git").exists()
    assert tree(git_root) == []
    assert tree(tmp_path / "scratch") == [] and tree(leases.work_root()) == []  # the render folder is gone too


# --- Requesting -------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_request_records_a_queued_run_and_enqueues_it_after_commit(
    world, path, django_capture_on_commit_callbacks, mocker
):
    delay = mocker.patch("scaffolder.tasks.run_scaffold.delay")
    with django_capture_on_commit_callbacks(execute=True):
        run = _request(path, world.owner, world.owner_team)
    assert run.status == ScaffoldRun.Status.QUEUED
    assert (run.golden_path, run.golden_path_version) == (STDLIB, path.version)
    assert run.answers == {**answers(), "greeting": "Hello", "with_feature_flags": False}  # defaults filled in
    assert run.requested_by == world.owner and run.owner == world.owner_team
    delay.assert_called_once_with(run.pk)
    requested = AuditEvent.objects.get(action="scaffold.requested")
    assert (requested.object_id, requested.actor) == (str(run.pk), world.owner)
    assert requested.after == {"golden_path": f"{STDLIB}@{path.version}", "name": "ledger-api", "owner": "payments"}


@pytest.mark.smoke
def test_nothing_is_enqueued_when_the_transaction_rolls_back(world, path, django_capture_on_commit_callbacks, mocker):
    delay = mocker.patch("scaffolder.tasks.run_scaffold.delay")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ValidationError):
            _request(path, world.owner, world.owner_team, name="{{ 7*7 }}")
    assert callbacks == [] and delay.call_count == 0


# --- The happy path ---------------------------------------------------------------------------------------------


def test_scaffold_registers_the_service_with_its_repository_docs_and_grants(world, path, git_root, tmp_path):
    owner = world.owner
    owner.first_name, owner.last_name = "Olivia", "Owens"
    owner.save()
    run = _scaffold(path, owner, world.owner_team)

    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    assert run.error == "" and run.started_at is not None and run.finished_at >= run.started_at
    service = Service.objects.get(slug="ledger-api")
    assert run.service == service
    assert service.owner == world.owner_team
    assert (service.golden_path, service.golden_path_version) == (STDLIB, "1.0.0")
    assert service.lifecycle == Service.Lifecycle.EXPERIMENTAL
    assert service.description == answers()["description"]
    expected_url = f"{settings.PORTAL_URL}{reverse('scaffolder:repository', args=['ledger-api'])}"
    assert service.repository_url == run.repository_url == expected_url
    assert expected_url == "http://127.0.0.1:8000/create/repositories/ledger-api/"
    assert set(service.tags.values_list("name", flat=True)) == {"python", "http", "stdlib"}

    # Ownership: the team's group holds the grants, not the person.
    assert set(get_perms(world.owner_team.group, service)) >= {
        "change_service",
        "deploy_service",
        "decommission_service",
    }
    assert get_perms(world.other_team.group, service) == []
    assert user_can(_fresh(owner), "catalog.deploy_service", service)
    assert not user_can(_fresh(world.outsider), "catalog.deploy_service", service)

    runbook = Runbook.objects.get(service=service)
    assert runbook.title == "ledger-api runbook" and runbook.review_interval_days == 90
    assert "Keeps the ledger of every payment" in runbook.versions.get().body
    assert list(ADR.objects.filter(service=service).values_list("number", "status")) == [
        (1, "accepted"),
        (2, "accepted"),
    ]

    bare = git_root / "ledger-api.git"
    assert git(bare, "rev-parse", "--is-bare-repository").strip() == "true"
    assert git(bare, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(bare, "rev-list", "--count", "main").strip() == "1"
    assert git(bare, "log", "--format=%an|%ae|%cn|%s", "main").splitlines() == [
        f"Olivia Owens|olivia@example.com|Runway|Create ledger-api from {STDLIB} 1.0.0"
    ]
    files = git(bare, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"catalog-info.yaml", "runway.yaml", "docs/runbook.md", "README.md", ".copier-answers.yml"} <= set(files)
    assert {"docs/adr/0001-record-architecture-decisions.md", "app/server.py"} <= set(files)
    catalog_info = yaml.safe_load(git(bare, "show", "main:catalog-info.yaml"))
    assert catalog_info["metadata"]["name"] == "ledger-api"
    assert catalog_info["spec"] == {"type": "service", "lifecycle": "experimental", "owner": "group:payments"}
    assert tree(git_root) != [] and {p.split("/")[0] for p in tree(git_root)} == {"ledger-api.git"}
    assert tree(tmp_path / "scratch") == [] and tree(leases.work_root()) == []  # the working copy is removed


def test_run_records_five_timed_steps_and_two_audit_events(world, path):
    run = _scaffold(path, world.owner, world.owner_team)
    assert [step["name"] for step in run.steps] == list(STEPS) == ["validate", "render", "publish", "register", "audit"]
    assert [step["status"] for step in run.steps] == ["done"] * 5
    assert all(isinstance(step["duration_ms"], int) and step["duration_ms"] >= 0 for step in run.steps)
    assert run.progress == 100
    assert run.steps[0]["message"] == "Minimal HTTP service (Python standard library) 1.0.0"
    assert run.steps[3]["message"] == "ledger-api, owned by Payments"
    events = AuditEvent.objects.filter(object_type="scaffolder.scaffoldrun", object_id=str(run.pk)).order_by("pk")
    assert list(events.values_list("action", flat=True)) == ["scaffold.requested", "scaffold.succeeded"]
    succeeded = events.get(action="scaffold.succeeded")
    assert succeeded.service_id == run.service_id and succeeded.actor == world.owner
    assert succeeded.after == {
        "service": "ledger-api",
        "repository": run.repository_url,
        "golden_path": f"{STDLIB}@1.0.0",
    }
    assert AuditEvent.objects.filter(action="service.created", service_id=run.service_id).count() == 1


def test_a_second_delivery_of_the_task_runs_nothing(world, path, git_root, mocker):
    run = _scaffold(path, world.owner, world.owner_team)
    execute = mocker.spy(services, "scaffold_execute")
    tasks.run_scaffold(run.pk)
    tasks.run_scaffold(run.pk)
    assert execute.call_count == 0
    run.refresh_from_db()
    assert (run.status, run.attempts) == (ScaffoldRun.Status.SUCCEEDED, 1)
    assert Service.objects.filter(slug="ledger-api").count() == 1
    assert git(git_root / "ledger-api.git", "rev-list", "--count", "main").strip() == "1"
    assert AuditEvent.objects.filter(action="scaffold.succeeded").count() == 1


@pytest.mark.smoke
def test_claim_takes_a_queued_run_once(world, path):
    run = _request(path, world.owner, world.owner_team)
    claimed = services.scaffold_claim(run_id=run.pk)
    assert claimed is not None and claimed.status == ScaffoldRun.Status.RUNNING and claimed.attempts == 1
    assert services.scaffold_claim(run_id=run.pk) is None


def test_staff_may_scaffold_for_any_team(world, path):
    run = _scaffold(path, world.staff, world.other_team)
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    assert Service.objects.get(slug="ledger-api").owner == world.other_team


# --- Bad input --------------------------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["{{ 7*7 }}", "../evil", "/abs", "..", "Ledger", "a", "ledger_api", "ledger-api-"])
def test_a_name_that_is_not_a_plain_slug_is_refused_before_anything_is_made(world, path, git_root, tmp_path, name):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, name=name)
    assert set(caught.value.message_dict) == {"name"}
    assert ScaffoldRun.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="scaffold.").exists()
    assert tree(git_root) == [] and tree(tmp_path / "scratch") == []
    assert not (tmp_path / "evil").exists() and not Path("/abs").exists()


@pytest.mark.smoke
def test_pattern_error_reads_as_a_sentence(world, path):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, name="{{ 7*7 }}")
    spec = path.properties["name"]
    expected = spec.get("patternDescription") or spec["description"]
    assert caught.value.message_dict["name"] == [expected]
    assert "letters, digits and hyphens" in expected and "^[a-z]" not in expected  # not the raw regex


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "A description\x00 with a NUL byte"),
        ("description", "A description with an escape \x1b[31m sequence"),
        ("description", "A description with a line\u2028separator"),
        ("greeting", "Hi\x00"),
        ("greeting", "Hi\nthere"),  # a one-line field
        ("greeting", "Hi\r"),
    ],
)
def test_control_characters_in_any_parameter_are_refused(world, path, git_root, field, value):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, **{field: value})
    assert caught.value.message_dict == {field: [CONTROL]}
    assert ScaffoldRun.objects.count() == 0 and tree(git_root) == []


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["evil\x00name", "ledger-api\n", "ledger\napi"])
def test_a_name_with_a_nul_or_a_line_break_is_refused(world, path, git_root, name):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, name=name)
    assert set(caught.value.message_dict) == {"name"} and CONTROL in caught.value.message_dict["name"]
    assert ScaffoldRun.objects.count() == 0 and tree(git_root) == []


def test_a_multiline_description_is_kept(world, path):
    description = "Keeps the ledger.\nTwo lines, as typed in the wizard's text area."
    run = _scaffold(path, world.owner, world.owner_team, description=description)
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    assert Service.objects.get(slug="ledger-api").description == description


def test_path_like_text_in_a_free_text_parameter_stays_text(world, path, git_root, tmp_path):
    """`../evil` is a fine greeting: it only ever lands inside a file, never in a file name."""
    run = _scaffold(path, world.owner, world.owner_team, greeting="../../evil", description="/abs/path ../../evil too")
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    assert {p.split("/")[0] for p in tree(git_root)} == {"ledger-api.git"}
    assert not (tmp_path / "evil").exists() and not (git_root.parent / "evil").exists()
    assert '"greeting": "../../evil"' in git(git_root / "ledger-api.git", "show", "main:app/service.json")


def test_template_syntax_in_answers_stays_literal(world, path, git_root):
    description = "Ledger {{ 7*7 }} {% raw %} and {{ owner }} stay as typed."  # {{ owner }} would be "payments"
    run = _scaffold(path, world.owner, world.owner_team, description=description)
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error
    bare = git_root / "ledger-api.git"
    readme = git(bare, "show", "main:README.md")
    assert description in readme and "49" not in readme and "Ledger 49" not in readme
    catalog_info = git(bare, "show", "main:catalog-info.yaml")
    assert yaml.safe_load(catalog_info)["metadata"]["description"] == description
    assert "49" not in catalog_info
    assert description in git(bare, "show", "main:docs/runbook.md")
    assert "and payments stay" not in readme
    assert Service.objects.get(slug="ledger-api").description == description


@pytest.mark.smoke
def test_an_existing_service_name_is_refused_up_front(world, path, git_root):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, name="payments-api")  # world.service
    assert caught.value.message_dict == {"name": ["A service called payments-api already exists; choose another name."]}
    assert ScaffoldRun.objects.count() == 0 and tree(git_root) == []


@pytest.mark.smoke
def test_an_existing_repository_name_is_refused_up_front(world, path, git_root):
    (git_root / "ledger-api.git").mkdir(parents=True)
    (git_root / "ledger-api.git" / "HEAD").write_text("ref: refs/heads/main\n")
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team)
    assert caught.value.message_dict == {
        "name": ["A repository called ledger-api already exists; choose another name."]
    }
    assert ScaffoldRun.objects.count() == 0
    assert tree(git_root) == ["ledger-api.git", "ledger-api.git/HEAD"]  # someone else's repository is untouched


@pytest.mark.smoke
def test_a_team_the_user_is_not_in_is_refused(world, path, git_root):
    with pytest.raises(PermissionDenied, match="you are not in Search"):
        _request(path, world.owner, world.other_team)
    assert ScaffoldRun.objects.count() == 0 and tree(git_root) == []


@pytest.mark.smoke
def test_unknown_parameter_is_a_field_error(world, path):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, colour="red")
    assert caught.value.message_dict == {"colour": ["This golden path has no such parameter."]}
    assert ScaffoldRun.objects.count() == 0


@pytest.mark.smoke
@pytest.mark.parametrize("reserved", ["owner", "author", "golden_path"])
def test_an_answer_named_like_a_value_runway_fills_in_is_a_field_error_not_a_403(world, path, reserved):
    with pytest.raises(ValidationError) as caught:
        services.scaffold_request(
            path=path,
            answers=answers(**{reserved: "someone-else"}),
            owner=world.owner_team,
            system=None,
            requested_by=world.owner,
        )
    assert caught.value.message_dict == {reserved: ["This golden path has no such parameter."]}
    assert ScaffoldRun.objects.count() == 0


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "At least 1."), (11, "At most 10."), ("three", "Enter a whole number."), (2.5, "Enter a whole number.")],
)
def test_integer_out_of_range_or_of_the_wrong_type_is_a_field_error(world, git_root, value, message):
    sized = registry.golden_path_get(SIZED)
    with pytest.raises(ValidationError) as caught:
        _request(sized, world.owner, world.owner_team, replicas=value)
    assert caught.value.message_dict == {"replicas": [message]}
    assert ScaffoldRun.objects.count() == 0


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("greeting", 5, "Enter text."),
        ("greeting", "", "At least 1 characters."),
        ("description", "too short", "At least 10 characters."),
        ("description", "x" * 301, "At most 300 characters."),
    ],
)
def test_wrong_type_or_length_on_the_real_path_is_a_field_error(world, path, field, value, message):
    with pytest.raises(ValidationError) as caught:
        _request(path, world.owner, world.owner_team, **{field: value})
    assert caught.value.message_dict == {field: [message]}


@pytest.mark.smoke
def test_missing_required_answers_are_field_errors(world, path):
    with pytest.raises(ValidationError) as caught:
        services.scaffold_request(path=path, answers={}, owner=world.owner_team, system=None, requested_by=world.owner)
    assert caught.value.message_dict == {
        "name": ["This field is required."],
        "description": ["This field is required."],
    }


# --- Failures leave nothing half-made ---------------------------------------------------------------------------


def test_registration_failure_after_publish_removes_the_repository(world, path, git_root, tmp_path, monkeypatch):
    published = []
    real_publish = publishers.local_publish

    def publish_and_note(**kwargs):  # type: ignore[no-untyped-def]
        result = real_publish(**kwargs)
        published.append(result.path.exists())
        return result

    def refuse(**kwargs):  # type: ignore[no-untyped-def]
        raise ValidationError({"slug": "The catalog refused it."})

    monkeypatch.setattr(publishers, "local_publish", publish_and_note)
    monkeypatch.setattr("catalog.services.service_create", refuse)
    run = _scaffold(path, world.owner, world.owner_team)

    assert published == [True]  # the repository did exist before registration failed
    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error == "The catalog refused it."
    assert [(s["name"], s["status"]) for s in run.steps] == [
        ("validate", "done"),
        ("render", "done"),
        ("publish", "done"),
        ("register", "failed"),
    ]
    assert run.steps[-1]["message"] == "{'slug': ['The catalog refused it.']}"
    assert run.service is None and run.repository_url == "" and run.finished_at is not None
    _nothing_made(git_root, tmp_path)
    assert not Runbook.objects.exists() and not ADR.objects.exists()
    assert not AuditEvent.objects.filter(action="scaffold.succeeded").exists()


def test_failure_while_importing_docs_rolls_back_the_service_too(world, path, git_root, tmp_path, monkeypatch):
    def refuse(**kwargs):  # type: ignore[no-untyped-def]
        raise ValidationError({"number": "ADR numbers clash."})

    monkeypatch.setattr("techdocs.services.adr_create", refuse)
    run = _scaffold(path, world.owner, world.owner_team)
    assert run.status == ScaffoldRun.Status.FAILED and run.error == "ADR numbers clash."
    _nothing_made(git_root, tmp_path)
    assert not Runbook.objects.exists()
    assert not AuditEvent.objects.filter(action="service.created", object_repr__contains="ledger-api").exists()


def test_a_service_registered_between_request_and_run_fails_the_run_before_publishing(world, path, git_root, tmp_path):
    run = _request(path, world.owner, world.owner_team)
    rival = service_make(owner=world.other_team, slug="ledger-api")
    tasks.run_scaffold(run.pk)
    run.refresh_from_db()
    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error == "name: A service called ledger-api already exists; choose another name."
    assert [(s["name"], s["status"]) for s in run.steps] == [("validate", "failed")]
    assert Service.objects.get(slug="ledger-api") == rival and rival.owner == world.other_team
    assert tree(git_root) == [] and tree(tmp_path / "scratch") == []


def test_a_service_registered_during_the_run_fails_registration_and_removes_the_repository(
    world, path, git_root, tmp_path, monkeypatch
):
    real_publish = publishers.local_publish

    def publish_then_rival(**kwargs):  # type: ignore[no-untyped-def]
        result = real_publish(**kwargs)
        service_make(owner=world.other_team, slug="ledger-api")  # someone else wins the name now
        return result

    monkeypatch.setattr(publishers, "local_publish", publish_then_rival)
    run = _scaffold(path, world.owner, world.owner_team)
    assert run.status == ScaffoldRun.Status.FAILED
    assert "already exists" in run.error
    assert run.steps[-1]["name"] == "register" and run.steps[-1]["status"] == "failed"
    assert Service.objects.get(slug="ledger-api").owner == world.other_team
    assert tree(git_root) == []


def test_render_failure_makes_no_repository_and_no_service(world, path, git_root, tmp_path, monkeypatch):
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RenderError("The template could not be rendered: UndefinedError: 'colour' is undefined")

    monkeypatch.setattr(services, "render_in_child", broken)
    run = _scaffold(path, world.owner, world.owner_team)
    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error == "The template could not be rendered: UndefinedError: 'colour' is undefined"
    assert [(s["name"], s["status"]) for s in run.steps] == [("validate", "done"), ("render", "failed")]
    _nothing_made(git_root, tmp_path)


def test_publish_failure_makes_no_service(world, path, git_root, tmp_path, monkeypatch):
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise publishers.PublishError("git clone failed: disk full")

    monkeypatch.setattr(publishers, "local_publish", broken)
    run = _scaffold(path, world.owner, world.owner_team)
    assert (run.status, run.error) == (ScaffoldRun.Status.FAILED, "git clone failed: disk full")
    assert [s["status"] for s in run.steps] == ["done", "done", "failed"]
    _nothing_made(git_root, tmp_path)


def test_retry_queues_a_new_run_with_the_same_answers_which_then_succeeds(
    world, path, git_root, monkeypatch, django_capture_on_commit_callbacks, mocker
):
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RenderError("boom")

    monkeypatch.setattr(services, "render_in_child", broken)
    failed = _scaffold(path, world.owner, world.owner_team, greeting="Bonjour")
    assert failed.status == ScaffoldRun.Status.FAILED
    monkeypatch.undo()

    delay = mocker.patch("scaffolder.tasks.run_scaffold.delay")
    teammate = world.owner  # the requester retries here; a teammate could too (see the view tests)
    with django_capture_on_commit_callbacks(execute=True):
        retry = services.scaffold_retry(run=failed, requested_by=teammate)
    delay.assert_called_once_with(retry.pk)
    assert retry.pk != failed.pk and retry.uuid != failed.uuid
    assert retry.status == ScaffoldRun.Status.QUEUED and retry.steps == [] and retry.attempts == 0
    assert retry.answers == failed.answers == {**answers(), "greeting": "Bonjour", "with_feature_flags": False}
    assert (retry.owner, retry.golden_path, retry.golden_path_version) == (world.owner_team, STDLIB, "1.0.0")
    failed.refresh_from_db()
    assert failed.status == ScaffoldRun.Status.FAILED and failed.steps[-1]["status"] == "failed"

    tasks.run_scaffold(retry.pk)
    retry.refresh_from_db()
    assert retry.status == ScaffoldRun.Status.SUCCEEDED, retry.error
    assert Service.objects.get(slug="ledger-api") == retry.service


def test_only_a_failed_run_can_be_retried(world, path):
    queued = _request(path, world.owner, world.owner_team)
    with pytest.raises(ValidationError, match="Only a failed run can be retried."):
        services.scaffold_retry(run=queued, requested_by=world.owner)
    assert ScaffoldRun.objects.count() == 1


def test_retry_is_checked_again_like_a_new_request(world, path, monkeypatch):
    monkeypatch.setattr(services, "render_in_child", lambda **kwargs: (_ for _ in ()).throw(RenderError("boom")))
    failed = _scaffold(path, world.owner, world.owner_team)
    service_make(owner=world.other_team, slug="ledger-api")  # the name was taken meanwhile
    with pytest.raises(ValidationError) as caught:
        services.scaffold_retry(run=failed, requested_by=world.owner)
    assert "already exists" in caught.value.message_dict["name"][0]
    assert ScaffoldRun.objects.count() == 1


# --- The stale-run sweeper --------------------------------------------------------------------------------------


def _died(run: ScaffoldRun, *, attempts: int = 1, lapsed: bool = True, step: str = "render") -> Path:
    """`run` as a worker that died in `step` leaves it: RUNNING, its lease lapsed (or not yet), its folder there."""
    ScaffoldRun.objects.filter(pk=run.pk).update(
        status=ScaffoldRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(minutes=1),
        attempts=attempts,
        lease_until=timezone.now() + timedelta(seconds=-1 if lapsed else 60),
        steps=[{"name": "validate", "status": "done", "message": "ok"}, {"name": step, "status": "running"}],
    )
    folder = leases.work_folder("scaffold", run)
    (folder / run.answers["name"] / "half-rendered.txt").parent.mkdir()
    (folder / run.answers["name"] / "half-rendered.txt").write_text("x")
    return folder


def _bare_repo(git_root: Path, name: str, tmp_path: Path) -> Path:
    worktree = tmp_path / f"work-{name}"
    worktree.mkdir()
    (worktree / "README.md").write_text(f"# {name}\n")
    return publishers.local_publish(name=name, worktree=worktree, author=("A", "a@example.com"), message="x").path


def test_the_sweeper_retries_a_run_whose_worker_died_and_the_retry_finishes_it(
    world, path, git_root, tmp_path, django_capture_on_commit_callbacks, mocker
):
    died = _request(path, world.owner, world.owner_team)
    folder = _died(died, step="publish")
    bare = _bare_repo(git_root, "ledger-api", tmp_path)  # half-published by the dead attempt
    alive = _request(path, world.owner, world.owner_team, name="fresh-api")
    alive_folder = _died(alive, lapsed=False)
    delay = mocker.patch("scaffolder.tasks.run_scaffold.delay")

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.fail_stale_runs() == 1

    died.refresh_from_db()
    assert (died.status, died.lease_until, died.error) == (ScaffoldRun.Status.QUEUED, None, "")
    assert [(s["name"], s["status"]) for s in died.steps] == [("validate", "done"), ("publish", "interrupted")]
    assert died.steps[1]["message"] == services.INTERRUPTED
    delay.assert_called_once_with(died.pk)
    assert not bare.exists() and not folder.exists()
    retried = AuditEvent.objects.get(action="scaffold.retried")
    assert retried.after == {"attempt": 2, "reason": "the worker running it stopped"} and retried.actor is None
    alive.refresh_from_db()  # its worker still renews its lease: untouched
    assert alive.status == ScaffoldRun.Status.RUNNING and alive_folder.exists()

    tasks.run_scaffold(died.pk)  # what the re-sent message does on another worker

    died.refresh_from_db()
    assert died.status == ScaffoldRun.Status.SUCCEEDED, died.error
    assert died.attempts == 2 and died.lease_until is None
    # The interrupted attempt stays at the top of the timeline; the retry's five steps follow.
    assert [(s["name"], s["status"]) for s in died.steps] == [("publish", "interrupted")] + [
        (name, "done") for name in STEPS
    ]
    assert git(git_root / "ledger-api.git", "rev-list", "--count", "main").strip() == "1"
    assert sorted(p.name for p in leases.work_root().iterdir()) == [alive_folder.name]


def test_a_run_that_keeps_killing_its_worker_fails_with_a_finished_timeline(world, path, git_root, tmp_path):
    stuck = _request(path, world.owner, world.owner_team)
    folder = _died(stuck, attempts=services.MAX_ATTEMPTS)
    bare = _bare_repo(git_root, "ledger-api", tmp_path)

    assert services.scaffold_sweep() == 1

    stuck.refresh_from_db()
    assert stuck.status == ScaffoldRun.Status.FAILED and stuck.finished_at is not None
    assert stuck.error == (
        "The worker running this scaffold stopped before it finished (3 times); nothing was kept. Retry it."
    )
    assert [(s["name"], s["status"]) for s in stuck.steps] == [("validate", "done"), ("render", "interrupted")]
    assert not bare.exists() and not folder.exists() and tree(leases.work_root()) == []
    assert tasks.fail_stale_runs() == 0  # the periodic task finds nothing left


def test_a_run_whose_worker_died_after_registering_succeeded(world, path, git_root):
    run = _scaffold(path, world.owner, world.owner_team)
    service = run.service
    ScaffoldRun.objects.filter(pk=run.pk).update(
        status=ScaffoldRun.Status.RUNNING,
        service=None,
        repository_url="",
        finished_at=None,
        lease_until=timezone.now() - timedelta(seconds=1),
        steps=[*run.steps[:4], {"name": "audit", "status": "running"}],
    )

    assert services.scaffold_sweep() == 1

    run.refresh_from_db()
    assert (run.status, run.service, run.error) == (ScaffoldRun.Status.SUCCEEDED, service, "")
    assert run.repository_url == service.repository_url and run.progress == 100
    assert (git_root / "ledger-api.git").exists()


def test_the_sweeper_keeps_the_repository_of_a_registered_service(world, path, git_root, tmp_path):
    stuck = _request(path, world.owner, world.owner_team)
    _died(stuck, attempts=services.MAX_ATTEMPTS)
    bare = _bare_repo(git_root, "ledger-api", tmp_path)
    service_make(owner=world.owner_team, slug="ledger-api")
    assert services.scaffold_sweep() == 1
    stuck.refresh_from_db()
    assert stuck.status == ScaffoldRun.Status.FAILED
    assert bare.exists()


def test_runs_claimed_before_leases_existed_are_swept_after_fifteen_minutes(world, path):
    old = _request(path, world.owner, world.owner_team)
    recent = _request(path, world.owner, world.owner_team, name="fresh-api")
    for run, minutes in ((old, 60), (recent, 2)):
        ScaffoldRun.objects.filter(pk=run.pk).update(
            status=ScaffoldRun.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=minutes), attempts=3
        )
    assert services.scaffold_sweep() == 1
    assert ScaffoldRun.objects.get(pk=old.pk).status == ScaffoldRun.Status.FAILED
    assert ScaffoldRun.objects.get(pk=recent.pk).status == ScaffoldRun.Status.RUNNING


def test_the_sweeper_ignores_queued_and_finished_runs(world, path):
    queued = _request(path, world.owner, world.owner_team)
    ScaffoldRun.objects.filter(pk=queued.pk).update(
        started_at=timezone.now() - timedelta(hours=3), lease_until=timezone.now() - timedelta(hours=3)
    )
    assert services.scaffold_sweep() == 0
    queued.refresh_from_db()
    assert queued.status == ScaffoldRun.Status.QUEUED


def test_a_starting_worker_removes_the_work_folders_dead_workers_left(world, path, git_root):
    dead = _request(path, world.owner, world.owner_team)
    dead_folder = _died(dead)
    alive = _request(path, world.owner, world.owner_team, name="fresh-api")
    alive_folder = _died(alive, lapsed=False)
    finished_folder = leases.work_root() / "update-00000000-0000-0000-0000-000000000000"  # no such update
    finished_folder.mkdir()
    stranger = leases.work_root() / "notes"  # not a work folder: left alone
    stranger.mkdir()
    # A preview render's folder whose web worker was killed an hour ago, and one in use by a request now.
    with leases.scratch("preview") as old_scratch, leases.scratch("preview") as busy_scratch:
        hour_ago = time.time() - leases.SCRATCH_MAX_AGE - 60
        os.utime(old_scratch, (hour_ago, hour_ago))

        tasks._work_folders_sweep(sender=None)

        assert not old_scratch.exists() and busy_scratch.exists()
    assert sorted(p.name for p in leases.work_root().iterdir()) == sorted([alive_folder.name, "notes"])
    assert not dead_folder.exists() and not finished_folder.exists()
    dead.refresh_from_db()
    assert dead.status == ScaffoldRun.Status.RUNNING  # the sweeper, not a starting worker, decides about the run


def test_a_golden_path_with_a_broken_runbook_fails_cleanly(world, git_root, tmp_path, settings):
    """A path author's mistake surfaces at registration: the run fails with the reason and the repository goes."""
    folder = tmp_path / "broken_paths"
    shutil.copytree(Path(settings.BASE_DIR) / "golden_paths" / STDLIB, folder / STDLIB)
    runbook = folder / STDLIB / "template" / "docs" / "runbook.md.jinja"
    runbook.write_text(runbook.read_text().replace("review_interval_days: 90", "review_interval_days: 0"))
    settings.GOLDEN_PATHS_DIR = folder
    broken = registry.golden_path_get(STDLIB)
    assert broken is not None and broken.folder == folder / STDLIB

    run = _scaffold(broken, world.owner, world.owner_team)
    assert run.status == ScaffoldRun.Status.FAILED
    assert run.error == "review_interval_days must be a whole number of days between 1 and 3650."
    assert [(s["name"], s["status"]) for s in run.steps][-1] == ("register", "failed")
    assert run.finished_at is not None and run.repository_url == ""
    _nothing_made(git_root, tmp_path)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_and_notices_when_another_attempt_took_the_run(world, path, settings):
    settings.SCAFFOLD_LEASE_SECONDS = 3  # a beat every second
    run = services.scaffold_claim(run_id=_request(path, world.owner, world.owner_team).pk)
    assert run is not None
    first = run.lease_until
    with leases.Heartbeat(run) as heartbeat:
        deadline = time.monotonic() + 60
        while ScaffoldRun.objects.get(pk=run.pk).lease_until == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
        assert not heartbeat.lost.is_set()
        ScaffoldRun.objects.filter(pk=run.pk).update(attempts=run.attempts + 1)  # the sweeper sent it again
        while not heartbeat.lost.is_set():
            assert time.monotonic() < deadline, "the heartbeat never noticed"
            time.sleep(0.05)
    with pytest.raises(leases.LeaseLost):
        services.Timeline(run, heartbeat).step("render")
