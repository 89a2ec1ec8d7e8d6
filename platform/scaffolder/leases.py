"""Leases on scaffold runs and golden path updates, held the way the deployment engine holds its steps.

A worker that claims a run (or an update) takes a lease of `SCAFFOLD_LEASE_SECONDS` and renews it from a heartbeat
thread every third of that while it works, however long a step takes. A worker that dies (SIGKILL, out of memory, a
lost host) stops renewing, and the sweeper (`scaffolder.fail_stale_runs`, beat every 10 s) finds the lapsed lease
within a lease and a sweep: it marks the step that was running as interrupted, so the timeline is finished, and then
retries the run or fails it (scaffolder/services.py, drift.py).

The claim counts attempts, and the attempt number is the lease's owner: a worker whose lease was taken from it (it
stalled past its lease and the sweeper moved on) finds no row to renew or write and stops, instead of racing the
worker that took over.

Each run works in a folder of its own, `VAR_DIR/work/<kind>-<uuid>`. A folder whose run holds no live lease was
left by a dead worker; the sweeper removes it, and so does every worker as it starts. Work done inside a request (the
wizard's preview render, a merge, a review clone) uses `scratch()` folders there too, which hold no lease: one older
than SCRATCH_MAX_AGE was left by a process that died (a web worker killed by its timeout) and is removed the same way.
"""

import contextlib
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

log = structlog.get_logger(__name__)

FOLDER = re.compile(r"\A(?P<kind>scaffold|update)-(?P<uuid>[0-9a-f-]{36})\Z")
SCRATCH = re.compile(r"\Ascratch-[a-z]+-[0-9a-f]{32}\Z")
SCRATCH_MAX_AGE = 3600  # seconds; far beyond any request (a render stops at 60 s, git at 120 s)
RUNNING = "running"  # ScaffoldRun.Status.RUNNING == GoldenPathUpdate.Status.RUNNING


class LeaseLost(RuntimeError):
    """Another worker (or the sweeper) owns the run now; this worker must stop without writing anything."""


def lease_seconds() -> int:
    return max(int(settings.SCAFFOLD_LEASE_SECONDS), 3)


def lease_until() -> Any:
    return timezone.now() + timedelta(seconds=lease_seconds())


def owned(run: Any) -> Any:
    """The run's row, as long as this worker's attempt still holds it."""
    return type(run).objects.filter(pk=run.pk, status=RUNNING, attempts=run.attempts)


class Heartbeat:
    """Renews `run`'s lease every third of a lease from a thread, until the block ends; `lost` says it was taken."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{run.uuid}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        # Inside an uncommitted transaction (a management command's, a test's) the run is invisible to every other
        # connection: no sweeper can see its lease lapse, and the heartbeat's own connection could not find the row.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(lease_seconds() / 3):
                try:
                    renewed = owned(self.run).update(lease_until=lease_until())
                except DatabaseError as error:  # a blip: the lease lasts three beats, so the next one may save it
                    log.warning("lease_renewal_failed", run=str(self.run.uuid), error=str(error))
                    close_old_connections()
                    continue
                if not renewed:
                    log.warning("lease_lost", run=str(self.run.uuid), attempt=self.run.attempts)
                    self.lost.set()
                    return
        finally:
            connection.close()  # this thread's own connection


def interrupt(steps: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """The timeline with the step that was running when the worker died marked as interrupted, with the reason."""
    finished = []
    for step in steps or []:
        if step.get("status") == "running":
            step = {**step, "status": "interrupted", "message": reason}
        finished.append(step)
    return finished


# --- work folders ----------------------------------------------------------------------------------------------------


def work_root() -> Path:
    return Path(settings.VAR_DIR) / "work"


def work_folder(kind: str, run: Any) -> Path:
    """A fresh, empty folder for `run` (anything a dead attempt left there is removed first)."""
    folder = work_root() / f"{kind}-{run.uuid}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def work_remove(kind: str, run: Any) -> None:
    shutil.rmtree(work_root() / f"{kind}-{run.uuid}", ignore_errors=True)


@contextlib.contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """A folder for work done inside a request, removed afterwards (or by `work_sweep`, if the process dies)."""
    folder = work_root() / f"scratch-{kind}-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def work_sweep() -> list[str]:
    """Remove every work folder whose run holds no live lease (its worker is gone), and scratch folders older than
    SCRATCH_MAX_AGE; returns the names removed."""
    from scaffolder.models import GoldenPathUpdate, ScaffoldRun

    root = work_root()
    if not root.is_dir():
        return []
    found: dict[str, dict[str, Path]] = {"scaffold": {}, "update": {}}
    stale: list[Path] = []
    for folder in root.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        if (match := FOLDER.match(folder.name)) is not None:
            found[match["kind"]][match["uuid"]] = folder
        elif SCRATCH.match(folder.name):
            with contextlib.suppress(OSError):  # gone already: its request finished
                if time.time() - folder.stat().st_mtime > SCRATCH_MAX_AGE:
                    stale.append(folder)
    now = timezone.now()
    live: set[str] = set()
    for model, kind in ((ScaffoldRun, "scaffold"), (GoldenPathUpdate, "update")):
        if found[kind]:
            held = model.objects.filter(uuid__in=list(found[kind]), status=RUNNING, lease_until__gt=now)
            live |= {f"{kind}-{uuid}" for uuid in held.values_list("uuid", flat=True)}
    removed = []
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    for folders in found.values():
        for folder in folders.values():
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    if removed:
        log.info("work_folders_removed", folders=removed)
    return removed
