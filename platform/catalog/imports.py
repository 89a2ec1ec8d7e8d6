"""Uploaded catalog archives: stored under var/imports, imported by a worker, reported on the page and API."""

import uuid
from datetime import timedelta
from pathlib import Path

import structlog
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from catalog import sync, tasks
from catalog.models import ImportRun

log = structlog.get_logger(__name__)


def _folder() -> Path:
    folder = Path(settings.VAR_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@transaction.atomic
def import_request(*, data: bytes, filename: str, source_name: str, requested_by: User) -> ImportRun:
    """Keep the upload and queue its import; a worker picks it up once this transaction commits."""
    if len(data) > sync.MAX_ARCHIVE_BYTES:
        raise ValueError("The archive is larger than 200 MB.")
    # The stored name is ours, never the user's, so an upload cannot choose where it lands.
    path = _folder() / f"{uuid.uuid4().hex}.upload"
    path.write_bytes(data)
    try:
        run = ImportRun.objects.create(
            source_name=source_name,
            filename=Path(filename).name[:255],
            archive_path=str(path),
            created_by=requested_by,
        )
        audit.event_record(
            actor=requested_by,
            action="catalog.import_requested",
            target=run,
            after={"source": source_name, "filename": run.filename},
        )
    except BaseException:
        path.unlink(missing_ok=True)  # no run will ever read it
        raise
    tasks.run_import.delay_on_commit(run.pk)
    return run


STALE_AFTER = timedelta(minutes=30)


def import_fail_stale() -> int:
    """Fail runs left RUNNING by a worker that died (a redelivery cannot claim them); returns how many."""
    stale = ImportRun.objects.filter(status=ImportRun.Status.RUNNING, started_at__lt=timezone.now() - STALE_AFTER)
    for run in stale:
        Path(run.archive_path).unlink(missing_ok=True)
    return stale.update(
        status=ImportRun.Status.FAILED,
        finished_at=timezone.now(),
        error="The worker running this import stopped before it finished; nothing was written. Upload it again.",
    )


def import_claim(*, run_id: int) -> ImportRun | None:
    """QUEUED → RUNNING; None if another delivery got there first."""
    claimed = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=timezone.now()
    )
    return ImportRun.objects.select_related("created_by").get(pk=run_id) if claimed else None


def import_execute(*, run: ImportRun) -> ImportRun:
    """Run the import and record its report; the upload is deleted either way."""
    path = Path(run.archive_path)
    try:
        report = sync.catalog_import_archive(
            data=path.read_bytes(), filename=run.filename, source_name=run.source_name, actor=run.created_by
        )
    except Exception as error:  # the run must end FAILED with a reason, whatever went wrong
        log.exception("catalog_import_failed", run_id=run.pk)
        run.status, run.error = ImportRun.Status.FAILED, str(error)[:2000] or error.__class__.__name__
    else:
        run.status, run.report = ImportRun.Status.SUCCEEDED, report.as_dict()
    finally:
        path.unlink(missing_ok=True)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "report", "error", "finished_at"])
    return run
