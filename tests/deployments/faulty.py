"""A fault-injecting release of the stdlib golden path: the template rendered as stdlib.py renders it, plus
`app/faults.py` (tests/deployments/fault_service/faults.py), installed by `app/__main__.py` before the server starts.
Each release is a commit whose `app/fault.json` chooses its misbehaviour (see faults.py), tagged with its version.
"""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import override_settings

from scaffolder import publishers
from scaffolder.render import render_in_child
from tests.deployments.stdlib import AUTHOR, PATH_NAME, _git

FAULTS_SOURCE = Path(__file__).with_name("fault_service") / "faults.py"
MAIN = (
    "from app import faults\n\nfaults.install()\n\n"
    "from app.server import main  # noqa: E402\n\nraise SystemExit(main())\n"
)
GOOD: dict[str, Any] = {"mode": "good"}


@dataclass
class FaultyRepo:
    """A published repository of the fault service; `release` commits a fault and tags it."""

    git_root: Path
    bare: Path
    worktree: Path
    tags: dict[str, str] = field(default_factory=dict)

    def release(self, version: str, fault: dict[str, Any]) -> str:
        (self.worktree / "app" / "fault.json").write_text(json.dumps(fault, sort_keys=True) + "\n", encoding="utf-8")
        _git(self.worktree, "add", "app/fault.json")
        _git(self.worktree, "commit", "--quiet", "--allow-empty", "-m", f"Release {version}: {fault['mode']}")
        _git(self.worktree, "tag", version)
        _git(self.worktree, "push", "--quiet", str(self.bare), "HEAD:main", f"refs/tags/{version}")
        self.tags[version] = _git(self.worktree, "rev-parse", "HEAD")
        return self.tags[version]


def render_faulty(*, name: str, destination: Path) -> Path:
    """The golden path rendered as `name` into `destination`, with the fault layer in place (good by default)."""
    data = {
        "name": name,
        "description": "Misbehaves on purpose, for the safe-delivery benchmark.",
        "greeting": "Hello",
        "owner": "payments",
        "system": "",
        "golden_path": PATH_NAME,
        "golden_path_version": "1.0.0",
        "author": "olivia",
        "today": "2025-01-01",
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    files = render_in_child(
        template=Path(settings.BASE_DIR) / "golden_paths" / PATH_NAME, destination=destination, data=data
    )
    assert "app/__main__.py" in files and "app/server.py" in files, files
    shutil.copyfile(FAULTS_SOURCE, destination / "app" / "faults.py")
    (destination / "app" / "__main__.py").write_text(MAIN, encoding="utf-8")
    (destination / "app" / "fault.json").write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    return destination


def faulty_repo_make(*, name: str, root: Path, first: str = "1.0.0") -> FaultyRepo:
    """Render, publish to `root/git`, and tag the first (good) release `first`."""
    git_root = root / "git"
    worktree = render_faulty(name=name, destination=root / "render" / name)
    with override_settings(GIT_ROOT=git_root):
        bare = publishers.local_publish(name=name, worktree=worktree, author=AUTHOR, message="Create from golden path")
    repo = FaultyRepo(git_root=git_root, bare=bare.path, worktree=worktree)
    _git(worktree, "tag", first)
    _git(worktree, "push", "--quiet", str(repo.bare), f"refs/tags/{first}")
    repo.tags[first] = _git(worktree, "rev-parse", "HEAD")
    return repo
