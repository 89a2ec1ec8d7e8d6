"""Uploaded catalog archives run by a worker (page, API, the task itself, a real worker) and zip exports."""

import io
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from catalog import imports, sync, tasks
from catalog.models import ImportRun, Service
from portal.celery import app
from teams.models import Team
from techdocs import services as techdocs_services
from techdocs.models import ADR, Runbook
from tests.factories import UserFactory, service_make

pytestmark = [pytest.mark.django_db]

LOGIN = "/accounts/login/"
IMPORT = reverse("catalog:import-create")
EXPORT = reverse("catalog:export")
API_IMPORTS = "/api/v1/catalog/imports/"
API_EXPORT = "/api/v1/catalog/export/"

DESCRIPTORS = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: ledger-team
  description: Owns the ledger.
spec:
  type: team
  profile:
    displayName: Ledger team
  children: []
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger
  title: Ledger
  description: Double-entry ledger.
spec:
  type: service
  lifecycle: production
  owner: group:ledger-team
"""
RUNBOOK = "---\ntitle: Ledger on-call\nreview_interval_days: 30\n---\n# Ledger on-call\n\nRestart it.\n"
ADR_FILE = "# 1. Use PostgreSQL\n\nDate: 2026-01-10\n\n## Status\n\nAccepted\n\n## Context\n\nWe need a ledger.\n"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


VALID = {
    "ledger/catalog-info.yaml": DESCRIPTORS,
    "ledger/docs/runbook.md": RUNBOOK,
    "ledger/docs/adr/0001-use-postgresql.md": ADR_FILE,
}


@pytest.fixture
def var_dir(settings, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


def _uploads(var_dir: Path) -> list[Path]:
    folder = var_dir / "imports"
    return sorted(folder.iterdir()) if folder.exists() else []


def _upload(client, data: bytes, name: str = "catalog.zip", source: str = "upload-test"):  # type: ignore[no-untyped-def]
    return client.post(IMPORT, {"archive": SimpleUploadedFile(name, data), "source": source})


def _request(world, data: bytes, filename: str = "catalog.zip") -> ImportRun:  # type: ignore[no-untyped-def]
    return imports.import_request(data=data, filename=filename, source_name="direct", requested_by=world.staff)


# --- the page and the task --------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_staff_upload_queues_a_run_and_redirects_to_it(client, world, var_dir, django_capture_on_commit_callbacks):
    client.force_login(world.staff)
    assert client.get(IMPORT).status_code == 200
    archive = _zip(VALID)  # once: a zip records the time it was made, to two seconds

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(client, archive)

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == run.get_absolute_url() == f"/catalog/import/{run.pk}/"
    assert (run.status, run.filename, run.source_name, run.created_by) == (
        "queued",
        "catalog.zip",
        "upload-test",
        world.staff,
    )
    assert [Path(run.archive_path)] == _uploads(var_dir)
    assert Path(run.archive_path).read_bytes() == archive
    assert len(callbacks) == 1  # the task is sent once the request's transaction commits
    assert AuditEvent.objects.filter(action="catalog.import_requested", actor=world.staff).count() == 1
    # Nothing is imported by the request itself.
    assert not Service.objects.filter(slug="ledger").exists()


def test_uploaded_filename_cannot_choose_where_the_file_lands(client, world, var_dir):
    client.force_login(world.staff)
    _upload(client, _zip(VALID), name="../../evil.zip")
    run = ImportRun.objects.get()
    assert run.filename == "evil.zip"
    assert Path(run.archive_path).parent == var_dir / "imports"
    assert Path(run.archive_path).name.endswith(".upload")


@pytest.mark.smoke
def test_running_the_task_imports_the_archive(world, var_dir):
    run = _request(world, _zip(VALID))

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error
    assert run.started_at is not None and run.finished_at >= run.started_at
    assert run.report["created"] == {"Group": 1, "Component": 1}
    assert run.report["errors"] == []
    ledger = Service.objects.get(slug="ledger")
    assert ledger.owner == Team.objects.get(slug="ledger-team")
    runbook = Runbook.objects.get(service=ledger)
    assert (runbook.title, runbook.source_path) == ("Ledger on-call", "ledger/docs/runbook.md")
    assert ADR.objects.get(service=ledger).title == "Use PostgreSQL"
    assert _uploads(var_dir) == []  # the upload is deleted once imported


def test_the_task_runs_once_even_if_delivered_twice(world, var_dir, monkeypatch):
    calls = []
    real = sync.catalog_import_archive

    def counting(**kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["filename"])
        return real(**kwargs)

    monkeypatch.setattr(sync, "catalog_import_archive", counting)
    run = _request(world, _zip(VALID))

    tasks.run_import(run.pk)
    first = ImportRun.objects.get(pk=run.pk)
    tasks.run_import(run.pk)

    assert calls == ["catalog.zip"]
    again = ImportRun.objects.get(pk=run.pk)
    assert (again.status, again.finished_at, again.report) == (first.status, first.finished_at, first.report)
    assert Service.objects.filter(slug="ledger").count() == 1


def test_a_running_or_unknown_run_is_not_claimed(world, var_dir):
    run = _request(world, _zip(VALID))
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
    tasks.run_import(run.pk)
    tasks.run_import(987654)
    assert ImportRun.objects.get(pk=run.pk).status == ImportRun.Status.RUNNING
    assert not Service.objects.filter(slug="ledger").exists()


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("broken.zip", b"this is not a zip file", "zip"),
        ("broken.tar.gz", b"\x1f\x8b garbage", "Upload a .zip, .tar or .tar.gz archive"),
        ("truncated.zip", _zip(VALID)[:-40], "zip"),
        ("truncated.tar.gz", _tar_gz(VALID)[:30], "Upload a .zip, .tar or .tar.gz archive"),
    ],
    # By name: the gzip header holds the time it was made, and test ids must be the same in every xdist worker.
    ids=["broken.zip", "broken.tar.gz", "truncated.zip", "truncated.tar.gz"],
)
def test_broken_archive_fails_with_a_clear_error_and_writes_nothing(client, world, var_dir, filename, data, message):
    counts = (Team.objects.count(), Service.objects.count(), Runbook.objects.count())
    run = _request(world, data, filename=filename)

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert message.lower() in run.error.lower()
    assert run.report == {}
    assert (Team.objects.count(), Service.objects.count(), Runbook.objects.count()) == counts
    assert _uploads(var_dir) == []
    client.force_login(world.staff)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "The import failed" in page and "Nothing was written." in page


def test_invalid_descriptors_are_reported_per_file(client, world, var_dir):
    run = _request(world, _zip({**VALID, "broken/catalog-info.yaml": "kind: [unclosed\n"}))

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED
    (problem,) = run.report["errors"]
    assert problem["file"] == "broken/catalog-info.yaml" and "not valid YAML" in problem["message"]
    assert Service.objects.filter(slug="ledger").exists()  # valid entities are imported anyway
    client.force_login(world.staff)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Imported, with 1 problem" in page and "broken/catalog-info.yaml" in page


def test_a_deeply_nested_descriptor_or_runbook_is_reported_and_the_run_succeeds(world, var_dir):
    deep = "[" * 600 + "]" * 600
    files = {
        **VALID,
        "deep/catalog-info.yaml": f"apiVersion: {deep}\n",
        "ledger/docs/runbook-deep.md": f"---\ntitle: {deep}\n---\n# Deep\n",
    }
    run = _request(world, _zip(files))

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error
    problems = {p["file"]: p["message"] for p in run.report["errors"]}
    assert set(problems) == {"deep/catalog-info.yaml", "ledger/docs/runbook-deep.md"}
    assert all("nested more than 100 levels deep" in message for message in problems.values())
    assert Runbook.objects.filter(service__slug="ledger").count() == 1


def _bomb(kind: str, *, members: int, size: int) -> bytes:
    """A small archive that unpacks to `members` files of `size` zero bytes each (beside a valid tree)."""
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in VALID.items():
                archive.writestr(name, text)
            for number in range(members):
                archive.writestr(f"filler/{number}.bin", b"\0" * size)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, text in VALID.items():
                info = tarfile.TarInfo(name)
                info.size = len(text.encode())
                archive.addfile(info, io.BytesIO(text.encode()))
            for number in range(members):
                info = tarfile.TarInfo(f"filler/{number}.bin")
                info.size = size
                archive.addfile(info, io.BytesIO(b"\0" * size))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize(
    ("members", "size", "message"),
    [
        (40, 900_000, "unpacks to more than 30 MB"),  # 36 MB from about 40 KB
        (200, 10, "more than 100 files"),
    ],
)
def test_an_archive_over_the_unpacked_size_or_file_count_fails_cleanly(
    world, var_dir, settings, tmp_path, monkeypatch, kind, members, size, message
):
    settings.CATALOG_ARCHIVE_MAX_UNPACKED_BYTES = 30_000_000
    settings.CATALOG_ARCHIVE_MAX_FILES = 100
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    data = _bomb(kind, members=members, size=size)
    assert len(data) < 200_000
    run = _request(world, data, filename=f"catalog.{kind}")

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert message in run.error and "Nothing was imported" in run.error
    assert not Service.objects.filter(slug="ledger").exists()
    assert list(scratch.iterdir()) == []  # the partly unpacked folder is gone
    assert _uploads(var_dir) == []


def test_an_archive_within_the_limits_imports(world, var_dir, settings):
    settings.CATALOG_ARCHIVE_MAX_UNPACKED_BYTES = 30_000_000
    settings.CATALOG_ARCHIVE_MAX_FILES = 100
    run = _request(world, _bomb("zip", members=20, size=900_000))

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error
    assert Service.objects.filter(slug="ledger").exists()


def test_import_detail_polls_until_the_run_is_done(client, world, var_dir):
    run = _request(world, _zip(VALID))
    client.force_login(world.staff)

    queued = client.get(run.get_absolute_url()).content.decode()
    assert f'hx-get="{run.get_absolute_url()}" hx-trigger="every 1s"' in queued
    fragment = client.get(run.get_absolute_url(), headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="status"') and "<html" not in fragment

    tasks.run_import(run.pk)

    done = client.get(run.get_absolute_url()).content.decode()
    # The run's own poll is gone (the navigation polls the approvals count on every page, so not any hx-get).
    assert f'hx-get="{run.get_absolute_url()}"' not in done and "every 1s" not in done
    assert "<h2>Imported</h2>" in done
    last_poll = client.get(run.get_absolute_url(), headers={"HX-Request": "true"}).content.decode()
    assert "hx-get" not in last_poll and "Imported" in last_poll


@pytest.mark.smoke
@pytest.mark.parametrize("role", ["owner", "outsider"])
def test_non_staff_cannot_import(client, api_client, world, var_dir, role):
    run = _request(world, _zip(VALID))
    user = getattr(world, role)
    client.force_login(user)
    api_client.force_authenticate(user)

    assert client.get(IMPORT).status_code == 403
    assert _upload(client, _zip(VALID)).status_code == 403
    assert client.get(run.get_absolute_url()).status_code == 403
    archive = SimpleUploadedFile("catalog.zip", _zip(VALID))
    assert api_client.post(API_IMPORTS, {"archive": archive}, format="multipart").status_code == 403
    assert api_client.get(API_IMPORTS).status_code == 403
    assert api_client.get(f"{API_IMPORTS}{run.pk}/").status_code == 403
    assert ImportRun.objects.count() == 1
    assert len(_uploads(var_dir)) == 1


def test_anonymous_is_sent_to_sign_in_or_gets_401(client, api_client, world, var_dir):
    assert client.get(IMPORT)["Location"].startswith(LOGIN)
    assert _upload(client, _zip(VALID))["Location"].startswith(LOGIN)
    assert api_client.get(API_IMPORTS).status_code == 401
    assert not ImportRun.objects.exists()


# --- the API ----------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_api_upload_is_accepted_and_the_run_shows_its_report(api_client, world, var_dir):
    api_client.force_authenticate(world.staff)

    archive = SimpleUploadedFile("catalog.zip", _zip(VALID))
    response = api_client.post(API_IMPORTS, {"archive": archive, "source": "api-source"}, format="multipart")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["source_name"], body["filename"], body["created_by"]) == (
        "queued",
        "api-source",
        "catalog.zip",
        "stella",
    )
    assert body["report"] == {}

    tasks.run_import(body["id"])

    detail = api_client.get(f"{API_IMPORTS}{body['id']}/")
    assert detail.status_code == 200
    assert detail.json()["status"] == "succeeded"
    assert detail.json()["report"]["created"] == {"Group": 1, "Component": 1}
    assert [row["id"] for row in api_client.get(API_IMPORTS).json()["results"]] == [body["id"]]
    assert Service.objects.filter(slug="ledger").exists()


def test_api_upload_without_an_archive_is_a_400(api_client, world, var_dir):
    api_client.force_authenticate(world.staff)
    response = api_client.post(API_IMPORTS, {"source": "x"}, format="multipart")
    assert response.status_code == 400 and "archive" in response.json()
    assert not ImportRun.objects.exists()


# --- a real worker ----------------------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_an_upload_end_to_end(client, var_dir):
    staff = UserFactory(username="stella", is_staff=True)
    client.force_login(staff)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        response = _upload(client, _zip(VALID))
        assert response.status_code == 302
        run = ImportRun.objects.get()
        deadline = time.monotonic() + 30
        while not run.is_done and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()

    assert run.status == ImportRun.Status.SUCCEEDED, run.error
    assert run.report["created"] == {"Group": 1, "Component": 1}
    assert Service.objects.get(slug="ledger").owner.slug == "ledger-team"
    assert _uploads(var_dir) == []
    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="{response["Location"]}"' not in page and "every 1s" not in page and "<h2>Imported</h2>" in page


# --- export -----------------------------------------------------------------------------------------------------


@pytest.fixture
def exported(world):  # type: ignore[no-untyped-def]
    techdocs_services.runbook_create(service=world.service, title="On-call", body="# On-call\n", created_by=None)
    service_make(owner=world.owner_team, slug="ledger", name="Ledger")
    service_make(owner=world.other_team, slug="search-api", name="Search API")
    return world


def _zip_names(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


@pytest.mark.smoke
def test_export_of_a_team_contains_its_services(client, exported):
    client.force_login(exported.outsider)

    response = client.get(EXPORT, {"team": "payments"})

    files = _zip_names(response)
    assert response["Content-Disposition"] == 'attachment; filename="payments-catalog.zip"'
    assert {"payments-api/catalog-info.yaml", "ledger/catalog-info.yaml"} <= set(files)
    assert not any(name.startswith("search-api/") for name in files)
    assert "payments-api/docs/runbook-on-call.md" in files
    component = next(yaml.safe_load_all(files["payments-api/catalog-info.yaml"]))
    assert (component["kind"], component["metadata"]["name"]) == ("Component", "payments-api")


def test_export_of_one_service_and_unknown_names(client, exported):
    client.force_login(exported.owner)
    files = _zip_names(client.get(EXPORT, {"service": "search-api"}))
    assert [name for name in files if name.endswith("catalog-info.yaml")] == ["search-api/catalog-info.yaml"]
    assert client.get(EXPORT, {"service": "unknown"}).status_code == 404
    assert client.get(EXPORT, {"team": "unknown"}).status_code == 404


def test_export_needs_sign_in(client, exported):
    response = client.get(EXPORT, {"team": "payments"})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_export_api(api_client, exported):
    assert api_client.get(API_EXPORT, {"team": "payments"}).status_code == 401
    api_client.force_authenticate(exported.outsider)
    files = _zip_names(api_client.get(API_EXPORT, {"team": "payments"}))
    assert "payments-api/catalog-info.yaml" in files and not any(n.startswith("search-api/") for n in files)
    assert api_client.get(API_EXPORT, {"service": "unknown"}).status_code == 404
    assert api_client.get(API_EXPORT, {"team": "unknown"}).status_code == 404


@pytest.mark.smoke
def test_a_run_left_running_by_a_dead_worker_is_failed_by_the_sweeper(world, var_dir):
    run = _request(world, _zip(VALID))
    assert imports.import_claim(run_id=run.pk) is not None  # a worker claimed it, then died
    ImportRun.objects.filter(pk=run.pk).update(started_at=run.created_at - imports.STALE_AFTER)
    fresh = _request(world, _zip(VALID))
    imports.import_claim(run_id=fresh.pk)  # claimed just now: still legitimately running

    assert tasks.fail_stale_imports() == 1
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED and "stopped before it finished" in run.error
    assert not Path(run.archive_path).exists()
    assert ImportRun.objects.get(pk=fresh.pk).status == ImportRun.Status.RUNNING
