"""Every version of every golden path, kept as tagged commits in a bare git repository per path.

Copier can only update a project from a template kept in git: it renders the version a project was made from and the
newer one, and merges the difference into the project. Golden paths ship as plain folders in golden_paths/, so
Runway records each version it renders: the folder's tree is committed to GOLDEN_PATH_STORE/<name>.git and tagged
with the path's version. The tag is what copier writes as `_commit` in a new project's .copier-answers.yml.

A folder whose files changed without a version bump is recorded too, as `1.0.0+r1`, `1.0.0+r2`... (PEP 440 local
versions, which copier orders after 1.0.0), so that a tag always names one exact content and no project's
baseline is ever rewritten.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from django.conf import settings

from scaffolder.registry import GoldenPath

log = structlog.get_logger(__name__)

# Files that appear in a golden path folder when its generated tests run in place; never part of a version. The
# folder's own .gitignore files are the generated project's, not the path's, so they are not obeyed here.
EXCLUDED = tuple(
    f":(exclude,glob){pattern}"
    for pattern in ("**/__pycache__/**", "**/*.py[co]", "**/.pytest_cache/**", "**/.DS_Store")
)


class VersionStoreError(RuntimeError):
    """The store could not record or find a version; the message says which path and what went wrong."""


@dataclass(frozen=True)
class Recorded:
    """One recorded version: the store to give copier as its source and the tag to check out."""

    store: Path
    ref: str


def _git(store: Path, *args: str, env: dict[str, str] | None = None, input_text: str | None = None) -> str:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(store),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_DIR": str(store),
        "GIT_AUTHOR_NAME": "Runway",
        "GIT_AUTHOR_EMAIL": "runway@localhost",
        "GIT_COMMITTER_NAME": "Runway",
        "GIT_COMMITTER_EMAIL": "runway@localhost",
        **(env or {}),
    }
    result = subprocess.run(
        ["git", *args],
        env=environment,
        cwd=environment.get("GIT_WORK_TREE", str(store)),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise VersionStoreError(f"git {args[0]} failed in {store.name}: {result.stderr.strip()[:300]}")
    return result.stdout.strip()


def store_path(name: str) -> Path:
    return Path(settings.GOLDEN_PATH_STORE) / f"{name}.git"


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One writer per store at a time: two workers scaffolding the same new version must not race on the tag."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.parent / f"{store.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tags(store: Path) -> dict[str, str]:
    """Tag name → tree id of the commit it names (the tags are lightweight: one git call for all of them)."""
    lines = _git(store, "for-each-ref", "--format=%(refname:short) %(tree)", "refs/tags").splitlines()
    return dict(line.split(" ", 1) for line in lines)


def version_record(path: GoldenPath) -> Recorded:
    """The tag holding exactly the files of `path` as they are now, recorded first if it is new."""
    store = store_path(path.name)
    with _locked(store):
        _store_init(store)
        index = store / "runway-index"
        # Under the store's lock nobody else uses the scratch index, so a lock file beside it is a dead worker's (one
        # SIGKILLed during `git add`); left there, git would refuse every later record of this path.
        for leftover in (index, index.with_name(f"{index.name}.lock")):
            leftover.unlink(missing_ok=True)
        # The folder is read as a work tree with a scratch index: its tree id says whether this content is recorded.
        folder = {"GIT_WORK_TREE": str(path.folder.resolve()), "GIT_INDEX_FILE": str(index)}
        try:
            _git(store, "add", "--all", "--force", "--", ".", *EXCLUDED, env=folder)
            tree = _git(store, "write-tree", env=folder)
        finally:
            index.unlink(missing_ok=True)
        tags = _tags(store)
        same = [tag for tag, recorded in tags.items() if recorded == tree and _release_of(tag) == path.version]
        if same:
            return Recorded(store=store, ref=same[0])
        ref = path.version
        if ref in tags:
            revisions = [tag for tag in tags if _release_of(tag) == path.version]
            ref = f"{path.version}+r{len(revisions)}"
            log.warning("golden_path_changed_without_version_bump", golden_path=path.name, version=ref)
        parent = _git(store, "rev-parse", "--verify", "--quiet", "main^{commit}") if _has_main(store) else ""
        commit = _git(
            store,
            "commit-tree",
            tree,
            *(["-p", parent] if parent else []),
            "-m",
            f"{path.name} {ref}",
        )
        _git(store, "update-ref", "refs/heads/main", commit)
        _git(store, "tag", "--", ref, commit)
        log.info("golden_path_version_recorded", golden_path=path.name, version=ref)
        return Recorded(store=store, ref=ref)


def _store_init(store: Path) -> None:
    """Make the bare repository if it is not there, all at once: a worker killed inside `git init` must not leave a
    folder that looks like a store and is not one (every later scaffold of the path would fail on it)."""
    if (store / "HEAD").is_file() and (store / "objects").is_dir() and (store / "refs").is_dir():
        return
    if store.exists():  # a half-made init from before it was atomic: it cannot hold a recorded version
        log.warning("golden_path_store_half_made", store=str(store))
        shutil.rmtree(store)
    scratch = store.with_name(f".{store.name}.init")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _git(scratch, "init", "--quiet", "--bare", "--initial-branch=main")
    scratch.rename(store)


def _has_main(store: Path) -> bool:
    try:
        _git(store, "rev-parse", "--verify", "--quiet", "refs/heads/main")
    except VersionStoreError:
        return False
    return True


def _release_of(tag: str) -> str:
    return tag.split("+", 1)[0]


def version_recorded(*, name: str, ref: str) -> bool:
    """Whether `ref` is a version of golden path `name` this Runway recorded (so a project made from it can update)."""
    store = store_path(name)
    if not (store / "HEAD").exists():
        return False
    try:
        _git(store, "rev-parse", "--verify", "--quiet", f"refs/tags/{ref}")
    except VersionStoreError:
        return False
    return True


@contextmanager
def history_versions(path: GoldenPath) -> Iterator[dict[str, GoldenPath]]:
    """The earlier versions a golden path ships as patches in `history/`, rebuilt in a scratch folder and recorded.

    Each `history/<from>..<to>.patch` is the change that made release <to> out of <from> (`git diff` of the path's
    folder). Runway can then update services made from releases it never rendered itself: before it was deployed,
    by another Runway, or by the copier command line. Yields {version: GoldenPath} while the folders exist.
    """
    from scaffolder import registry

    patches = {}
    for patch in (path.folder / "history").glob("*..*.patch"):
        older, _, newer = patch.name.removesuffix(".patch").partition("..")
        patches[newer] = (older, patch)
    found: dict[str, GoldenPath] = {}
    with tempfile.TemporaryDirectory(prefix="runway-history-") as scratch:
        current, version = path.folder.resolve(), path.version
        while version in patches:
            older, patch = patches[version]
            folder = Path(scratch) / older / path.name
            shutil.copytree(current, folder, ignore=shutil.ignore_patterns("history", "__pycache__", "*.py[co]"))
            result = subprocess.run(
                ["git", "apply", "--reverse", "--", str(patch.resolve())],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch, "GIT_CONFIG_NOSYSTEM": "1"},
            )
            if result.returncode != 0:
                raise VersionStoreError(f"{patch.name} does not apply to {path.name} {version}: {result.stderr[:300]}")
            earlier = registry.load(folder)
            if earlier.version != older:
                raise VersionStoreError(f"{patch.name} makes {path.name} {earlier.version}, not {older}.")
            version_record(earlier)
            found[older] = earlier
            current, version = folder, older
        yield found
