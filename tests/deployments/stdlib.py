"""The stdlib-http-service golden path as a deployable service: rendered by copier, published to a bare git repository.

The repository is made the way a scaffold run makes it (`render_in_child`, then `publishers.local_publish`), then gets
a few more commits, each tagged with its version, so tests deploy real releases of the real template:
- 1.0.0: the template as rendered, greeting "Hello";
- 2.0.0: a healthy change, greeting "Bonjour";
- 2.1.0: a broken release whose /healthz answers 500.
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.test import override_settings

from scaffolder import publishers
from scaffolder.render import render_in_child

PATH_NAME = "stdlib-http-service"
AUTHOR = ("Olivia Tests", "olivia@example.com")
GREETINGS = {"1.0.0": "Hello", "2.0.0": "Bonjour"}
HEALTHY = 'return json_response(HTTPStatus.OK, {"status": "ok"})'
BROKEN = 'return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "broken on purpose"})'


@dataclass(frozen=True)
class StdlibRepo:
    """A published stdlib-http-service repository; `tags` maps each version to its commit."""

    git_root: Path
    bare: Path
    tags: dict[str, str]


def _git(worktree: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(worktree),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }
    done = subprocess.run(["git", *args], cwd=worktree, env=env, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def _edit(path: Path, old: str, new: str) -> None:
    """Replace `old` once, loudly: a template that no longer contains it must break the fixture, not the test."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name} no longer contains {old!r}; update tests/deployments/stdlib.py"
    path.write_text(text.replace(old, new), encoding="utf-8")


def stdlib_repo_make(*, name: str, root: Path) -> StdlibRepo:
    """Render the golden path as `name` under `root`, publish it to `root/git`, and add the tagged releases."""
    git_root = root / "git"
    worktree = root / "render" / name
    worktree.parent.mkdir(parents=True)
    data = {
        "name": name,
        "description": "Takes the payments of the shop, for the fault tests.",
        "greeting": GREETINGS["1.0.0"],
        "owner": "payments",
        "system": "",
        "golden_path": PATH_NAME,
        "golden_path_version": "1.0.0",
        "author": "olivia",
        "today": "2025-01-01",
    }
    files = render_in_child(
        template=Path(settings.BASE_DIR) / "golden_paths" / PATH_NAME, destination=worktree, data=data
    )
    assert "runway.yaml" in files and "app/server.py" in files, files
    with override_settings(GIT_ROOT=git_root):
        bare = publishers.local_publish(
            name=name, worktree=worktree, author=AUTHOR, message="Create from golden path"
        ).path
    tags = {}

    def release(version: str, message: str) -> None:
        if message:
            _git(worktree, "commit", "--quiet", "--all", "-m", message)
            _git(worktree, "push", "--quiet", str(bare), "HEAD:main")
        _git(worktree, "tag", version)
        _git(worktree, "push", "--quiet", str(bare), f"refs/tags/{version}")
        tags[version] = _git(worktree, "rev-parse", "HEAD")

    release("1.0.0", "")
    _edit(worktree / "app" / "service.json", f'"{GREETINGS["1.0.0"]}"', f'"{GREETINGS["2.0.0"]}"')
    release("2.0.0", "Greet in French")
    _edit(worktree / "app" / "server.py", HEALTHY, BROKEN)
    release("2.1.0", "Break the health check")
    return StdlibRepo(git_root=git_root, bare=bare, tags=tags)
