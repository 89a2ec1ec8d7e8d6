"""Where new repositories go. `local` (the default) keeps bare git repositories under GIT_ROOT; GitHub and GitLab
publishers plug in behind the same two functions by settings (SCAFFOLD_PUBLISHER)."""

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.urls import reverse

REPO_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$")


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Published:
    url: str
    path: Path


def _git(*args: str, cwd: Path, author: tuple[str, str] | None = None) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LANG": "C.UTF-8",
    }
    if author:
        env |= {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": "Runway",
            "GIT_COMMITTER_EMAIL": "runway@localhost",
        }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise PublishError(f"git {args[0]} failed: {result.stderr.strip()[:300]}")
    return result.stdout


def _bare_path(name: str) -> Path:
    if not REPO_NAME.match(name):
        raise PublishError(f"{name!r} is not a valid repository name.")
    root = Path(settings.GIT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{name}.git"


def local_path(*, name: str) -> str:
    return str(_bare_path(name))


def local_exists(*, name: str) -> bool:
    return REPO_NAME.match(name) is not None and _bare_path(name).exists()


def local_publish(*, name: str, worktree: Path, author: tuple[str, str], message: str) -> Published:
    """Create a bare repository `name.git` with the rendered files as its first commit on `main`."""
    bare = _bare_path(name)
    if bare.exists():
        raise PublishError(f"A repository called {name} already exists.")
    _git("init", "--quiet", "--initial-branch=main", cwd=worktree)
    _git("add", "--all", cwd=worktree)
    _git("commit", "--quiet", "--no-verify", "-m", message, cwd=worktree, author=author)
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git("clone", "--quiet", "--bare", "--", str(worktree), str(bare), cwd=bare.parent)
    # The catalog links to the portal's view of the repository; the page shows the path to clone from.
    return Published(url=f"{settings.PORTAL_URL}{reverse('scaffolder:repository', args=[name])}", path=bare)


def local_unpublish(*, name: str) -> None:
    """Remove a repository made by a run that then failed, so nothing is left half-made."""
    bare = _bare_path(name)
    if bare.exists():
        shutil.rmtree(bare)


def local_archive(*, name: str, reason: str) -> None:
    """Make a repository read-only, as a forge's "archive" does: it can still be cloned, every push is refused."""
    bare = _bare_path(name)
    if not bare.exists():
        raise PublishError(f"There is no repository called {name}.")
    hook = bare / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    message = shlex.quote(f"This repository is archived and takes no pushes: {reason}")
    hook.write_text(f"#!/bin/sh\necho {message} >&2\nexit 1\n")
    hook.chmod(0o755)
    (bare / "ARCHIVED").write_text(reason + "\n")


def local_archived(*, name: str) -> bool:
    return local_exists(name=name) and (_bare_path(name) / "ARCHIVED").exists()


def local_browse(*, name: str, limit: int = 10) -> tuple[list[str], list[dict[str, str]]]:
    """The file list of `main` and its latest commits, for the service page; empty when there is no repository."""
    bare = _bare_path(name)
    if not bare.exists():
        return [], []
    files = _git("ls-tree", "-r", "--name-only", "main", "--", cwd=bare).splitlines()
    log = _git("log", f"-{limit}", "--format=%h%x1f%an%x1f%aI%x1f%s", "main", "--", cwd=bare).splitlines()
    commits = [dict(zip(("sha", "author", "date", "subject"), line.split("\x1f"), strict=False)) for line in log]
    return files, commits
