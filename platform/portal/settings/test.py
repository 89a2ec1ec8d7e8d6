"""Tests: fast password hashing; everything else as configured by the environment (PostgreSQL and Redis in CI)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from portal.settings.base import *  # noqa: F403
from portal.settings.base import STATIC_ROOT

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request when it is missing

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Repositories and deployed releases go to a scratch folder per test run, never into the var/ that `make run` uses
# (a test that expects no repository must not find the demo's). Workers started by a test are told their folders
# through the environment, which wins.
_scratch = Path(tempfile.mkdtemp(prefix="runway-tests-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
GIT_ROOT = Path(os.environ.get("GIT_ROOT") or _scratch / "git")
DEPLOY_ROOT = Path(os.environ.get("DEPLOY_ROOT") or _scratch / "deploy")
