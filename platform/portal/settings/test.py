"""Tests: fast password hashing; everything else as configured by the environment (PostgreSQL and Redis in CI)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Everything a test run writes (repositories, deployed releases, the embedded broker's queue) goes to a scratch
# folder, never into the var/ that `make run` uses: a test must not find the demo's repositories, and a worker
# started by a test must not take messages from another run's queue. Workers a test starts in a subprocess inherit
# RUNWAY_VAR_DIR, so they share this run's queue.
_scratch = Path(tempfile.mkdtemp(prefix="runway-tests-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
os.environ.setdefault("RUNWAY_VAR_DIR", str(_scratch / "var"))

_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
# Under pytest-xdist the controller imports these settings first, and its RUNWAY_VAR_DIR reaches every worker it
# spawns. Each worker needs a folder of its own: a Celery worker sweeps `VAR_DIR/work` as it starts and removes every
# run folder that its own database holds no lease for, which were another xdist worker's scaffolding runs (their
# template files vanished mid-render). Once per worker, as for Redis below: processes a test starts inherit it.
if _xdist_worker.startswith("gw") and os.environ.get("RUNWAY_TEST_VAR_FOR") != _xdist_worker:
    os.environ["RUNWAY_VAR_DIR"] = str(Path(os.environ["RUNWAY_VAR_DIR"]) / _xdist_worker)
    os.environ["RUNWAY_TEST_VAR_FOR"] = _xdist_worker

# Under pytest-xdist each worker has its own test database (pytest-django adds the suffix); it needs its own Redis
# database too, or one worker's `cache.clear()` empties the other's cache and its Celery workers take the other's
# tasks against the wrong database. Workers count up from the database REDIS_URL names, wrapping at Redis's 16.
# Once per worker: processes a test starts (Celery workers, a second installation) inherit both variables and the
# REDIS_URL already moved, and must use the same database as the test that started them.
if (
    _xdist_worker.startswith("gw")
    and os.environ.get("REDIS_URL")
    and os.environ.get("RUNWAY_TEST_REDIS_FOR") != _xdist_worker
):
    _url = urlsplit(os.environ["REDIS_URL"])
    _db = _url.path.strip("/")
    _index = (int(_db if _db.isdigit() else 0) + int(_xdist_worker.removeprefix("gw"))) % 16
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_index}"))
    os.environ["RUNWAY_TEST_REDIS_FOR"] = _xdist_worker

from portal.settings.base import *  # noqa: E402, F403
from portal.settings.base import STATIC_ROOT  # noqa: E402

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request when it is missing

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

GIT_ROOT = Path(os.environ.get("GIT_ROOT") or _scratch / "git")
DEPLOY_ROOT = Path(os.environ.get("DEPLOY_ROOT") or _scratch / "deploy")

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file in WAL mode, as SQLite runs outside tests, not Django's shared-cache in-memory test database: with a live
    # server and Celery workers in threads (the e2e journeys), in-memory SQLite fails at once with "database table is
    # locked" where a file waits for the writer (base.py's busy timeout). Kept in RAM and never synced, it is as fast.
    _test_db = (Path("/dev/shm") if Path("/dev/shm").is_dir() else _scratch) / f"{_scratch.name}.sqlite3"
    for _end in ("", "-wal", "-shm"):
        atexit.register(Path(f"{_test_db}{_end}").unlink, missing_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(_test_db)}  # noqa: F405
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # The audit log refuses TRUNCATE (audit migration 0003) unless the session allows it; Django's flush between
    # transactional tests empties every table, the log included, with one TRUNCATE.
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c runway.audit_truncate=allow".strip()
