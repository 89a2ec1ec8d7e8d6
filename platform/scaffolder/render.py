"""Render a golden path with copier, in a child process that has no portal secrets.

Run as `python -m scaffolder.render` with a JSON request on stdin: {"template", "destination", "data", "ref",
"update"}. It imports nothing from the portal (no Django, no settings), is started with a minimal environment, and
refuses any result that places a file outside the destination or contains a link.

With "update", the destination is a clean git clone of a project copier made before: copier renders the version
recorded in its .copier-answers.yml and the version `ref`, and merges the difference into it, leaving conflict
markers where the project and the template changed the same lines.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RENDER_TIMEOUT_SECONDS = 60


class RenderError(RuntimeError):
    """The template could not be rendered with these answers; the message is shown on the run's timeline."""


def render_in_child(
    *, template: Path, destination: Path, data: dict[str, Any], ref: str | None = None, update: bool = False
) -> list[str]:
    """Render `template` (a folder, or a git repository at tag `ref`) into `destination` in a clean child process, or
    update the project in `destination` to `ref`; returns the relative paths in the destination."""
    request = json.dumps(
        {
            "template": str(template),
            "destination": str(destination),
            "data": data,
            "ref": ref,
            "update": update,
            "parent": os.getpid(),
        }
    )
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(destination.parent),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),  # this module only; copier comes from site
        "PYTHONDONTWRITEBYTECODE": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        # Copier commits in scratch repositories while it updates a project; they need an identity, never a real one.
        "GIT_AUTHOR_NAME": "Runway",
        "GIT_AUTHOR_EMAIL": "runway@localhost",
        "GIT_COMMITTER_NAME": "Runway",
        "GIT_COMMITTER_EMAIL": "runway@localhost",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "scaffolder.render"],
            input=request,
            capture_output=True,
            text=True,
            env=environment,
            cwd=destination.parent,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RenderError(f"Rendering took longer than {RENDER_TIMEOUT_SECONDS} s and was stopped.") from error
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RenderError(f"The template could not be rendered: {last[:500]}")
    return list(json.loads(result.stdout)["files"])


def _confined(destination: Path) -> list[str]:
    root = destination.resolve()
    files = []
    for folder, dirs, names in os.walk(root):
        if ".git" in dirs and Path(folder) == root:
            dirs.remove(".git")  # an updated project's own repository
        for name in names:
            path = Path(folder) / name
            if path.is_symlink() or not str(path.resolve()).startswith(str(root) + os.sep):
                raise RenderError(f"The rendered project contains {path.name}, which points outside it.")
            files.append(path.relative_to(root).as_posix())
    return sorted(files)


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Be killed when the process that started this render dies (Linux): a worker SIGKILLed mid-render must not leave
    copier writing on into a work folder the sweeper removes, for up to RENDER_TIMEOUT_SECONDS. Done here, in the
    child, rather than in a preexec_fn, which is unsafe in a worker that runs a lease heartbeat thread."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def main() -> None:
    request = json.loads(sys.stdin.read())
    if isinstance(request.get("parent"), int):
        _die_with_parent(request["parent"])

    import copier

    destination = Path(request["destination"])
    if request.get("update"):
        copier.run_update(
            str(destination),
            data=request["data"],
            defaults=True,
            overwrite=True,
            conflict="inline",
            unsafe=False,
            skip_tasks=True,
            quiet=True,
            vcs_ref=request["ref"],
        )
        print(json.dumps({"files": _confined(destination)}))
        return
    copier.run_copy(
        request["template"],
        str(destination),
        data=request["data"],
        defaults=True,
        unsafe=False,
        skip_tasks=True,
        quiet=True,
        overwrite=False,
        vcs_ref=request.get("ref"),
    )
    print(json.dumps({"files": _confined(destination)}))


if __name__ == "__main__":
    main()
