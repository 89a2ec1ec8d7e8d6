"""Helpers shared by the scaffolder tests: an isolated golden-path folder, a per-test GIT_ROOT, git inspection."""

import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings

STDLIB = "stdlib-http-service"
SIZED = "sized-service"
DESCRIPTION = "Keeps the ledger of every payment, for the finance team."
# registry.GoldenPath.validate's message for control characters (and line breaks in one-line fields).
CONTROL = "Control characters and line breaks are not allowed here."

# A second, validation-only path (never rendered): it has the integer and boolean parameters stdlib lacks.
SIZED_TEMPLATE = """\
name: sized-service
title: Sized service (test)
description: A path with an integer parameter, for validation tests.
owner: platform
version: 2.1.0
tags: [test]
parameters:
  type: object
  required: [name, description]
  properties:
    name: {type: string, pattern: "^[a-z][a-z0-9-]{2,38}[a-z0-9]$", minLength: 4, maxLength: 40}
    description: {type: string, minLength: 10, maxLength: 300}
    replicas: {type: integer, title: Replicas, minimum: 1, maximum: 10, default: 2}
    public: {type: boolean, title: Public, default: false}
steps:
  - {title: About, fields: [name, description]}
  - {title: Size, fields: [replicas, public]}
"""


def paths_install(root: Path) -> Path:
    """A golden-path folder holding the real stdlib-http-service (linked, not copied) and the test-only path.

    The other shipped paths are being edited elsewhere; these tests depend on stdlib-http-service alone.
    """
    folder = root / "golden_paths"
    folder.mkdir(parents=True)
    (folder / STDLIB).symlink_to(Path(settings.BASE_DIR) / "golden_paths" / STDLIB, target_is_directory=True)
    (folder / SIZED).mkdir()
    (folder / SIZED / "template.yaml").write_text(SIZED_TEMPLATE)
    return folder


def answers(**overrides: Any) -> dict[str, Any]:
    return {"name": "ledger-api", "description": DESCRIPTION, **overrides}


def git(bare: Path, *args: str) -> str:
    """Read a bare repository with the real git binary."""
    result = subprocess.run(["git", f"--git-dir={bare}", *args], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout


def tree(root: Path) -> list[str]:
    """Every path under `root`, relative, sorted (empty when it does not exist)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
