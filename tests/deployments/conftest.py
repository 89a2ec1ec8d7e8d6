"""Fixtures for deployment tests: environments, a deploy target, and a real git repository for the service."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployments.models import DeployTarget, Environment
from scaffolder import publishers

AUTHOR = ("Runway Tests", "tests@example.com")


def git(worktree: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "PATH": "/usr/bin:/bin",
        "HOME": str(worktree),
    }
    done = subprocess.run(["git", *args], cwd=worktree, env=env, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


@dataclass
class Repo:
    bare: Path
    first: str  # sha of the commit tagged v1.0.0
    second: str  # sha of the next commit on main


@pytest.fixture
def repo(world, settings, tmp_path) -> Repo:  # type: ignore[no-untyped-def]
    """payments-api's repository: v1.0.0, then one more commit on main."""
    settings.GIT_ROOT = tmp_path / "git"
    worktree = tmp_path / "work"
    worktree.mkdir()
    (worktree / "runway.yaml").write_text('build: ""\nstart: "python app.py"\n')
    (worktree / "app.py").write_text("print('v1')\n")
    published = publishers.local_publish(name=world.service.slug, worktree=worktree, author=AUTHOR, message="v1")
    git(published.path, "tag", "v1.0.0", "main")
    first = git(published.path, "rev-parse", "main")
    (worktree / "app.py").write_text("print('v2')\n")
    git(worktree, "commit", "-qam", "v2")
    git(worktree, "push", "-q", str(published.path), "HEAD:main")
    second = git(published.path, "rev-parse", "main")
    return Repo(bare=published.path, first=first, second=second)


@pytest.fixture
def staging(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Staging", slug="staging", order=1)


@pytest.fixture
def target(world, staging) -> DeployTarget:  # type: ignore[no-untyped-def]
    return DeployTarget.objects.create(
        service=world.service, environment=staging, runtime="simulated", strategy="canary", bake_seconds=0
    )
