"""Fixtures shared by the golden path update tests (local and forge publishers)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.scaffolder.support import STDLIB


@pytest.fixture
def paths(settings, tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A copy of stdlib-http-service that a test can bump, with its own repositories, version store and scratch."""
    folder = tmp_path / "golden_paths"
    shutil.copytree(Path(settings.BASE_DIR) / "golden_paths" / STDLIB, folder / STDLIB)
    settings.GOLDEN_PATHS_DIR = folder
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATH_STORE = tmp_path / "store"
    settings.VAR_DIR = tmp_path / "var"  # work and scratch folders (scaffolder.leases)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return folder / STDLIB
