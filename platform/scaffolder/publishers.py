"""Where new repositories go, behind one interface chosen by SCAFFOLD_PUBLISHER: `local` (the default) keeps bare git
repositories under GIT_ROOT; `github` and `gitlab` create them on a forge (PyGithub, python-gitlab) and push over HTTPS.

Names, branches and URLs are checked against strict patterns before anything runs and reach git after `--`, never
through a shell. A forge's token reaches git only through the environment (an `http.<url>.extraHeader` scoped to the
one repository), never argv, URLs or the database, and is scrubbed from every error this module raises.
"""

import base64
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

# Every pattern here is used with fullmatch(): match() with "$" also takes a name that ends in a line break.
REPO_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$")
# Slash-separated parts of letters, digits, '.', '_' and '-', each starting with a letter or digit; no "..", no part
# ending in ".lock", no trailing "." (a subset of what `git check-ref-format --branch` accepts).
BRANCH_NAME = re.compile(
    r"^(?!.*\.\.)(?!.*\.lock(?:/|$))(?!.*\.$)[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)*$", re.ASCII
)
BRANCH_MAX = 200
# API and repository URLs: http(s), a plain host name or address (or loopback IPv6), a port, path parts of URL-safe
# characters; no user, query or fragment. A repository URL given to git must also end in ".git".
HTTP_URL = re.compile(
    r"^(?P<scheme>https?)://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[::1\])(?::[0-9]{1,5})?"
    r"(?P<path>(?:/[A-Za-z0-9._~-]+)*)$",
    re.ASCII,
)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
GITHUB_ORG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
GITLAB_NAMESPACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}(?:/[A-Za-z0-9_][A-Za-z0-9_.-]{0,254})*$")
VISIBILITIES = ("private", "internal", "public")
PUBLISHERS = ("local", "github", "gitlab")
# A file path inside a repository, read through a forge's API: parts of letters, digits, '.', '_' and '-', none "..".
FILE_PATH = re.compile(r"^(?!.*(?:^|/)\.\.?(?:/|$))[\w.-]+(?:/[\w.-]+)*$", re.ASCII)
CHANGE_STATES = ("open", "merged", "closed")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# At most this many commits of a change set are listed (a forge pages them); its first commit is the oldest listed.
COMMITS_LIMIT = 1000
SCRUBBED = "***"

T = TypeVar("T")


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Published:
    url: str  # the repository's web page: the portal's for `local`, the forge's otherwise
    path: Path | None = None  # the bare repository on disk (`local` only)


def git_run(
    *args: str,
    cwd: Path,
    author: tuple[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    timeout: int = 60,
    ok: tuple[int, ...] = (0,),
) -> str:
    """git in `cwd` with no user or system configuration, never through a shell; PublishError (with `secrets`
    scrubbed) when it exits with a status not in `ok`."""
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
    env |= extra_env or {}
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise PublishError(f"git {args[0]} did not finish within {timeout} s.") from None
    if result.returncode not in ok:
        message = (result.stderr or result.stdout).strip()
        raise PublishError(f"git {args[0]} failed: {_scrub(message, secrets)[:300]}")
    return result.stdout


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, SCRUBBED)
    return text


def _name_check(name: str) -> str:
    if not isinstance(name, str) or not REPO_NAME.fullmatch(name):
        raise PublishError(f"{name!r} is not a valid repository name.")
    return name


def _branch_check(branch: str) -> str:
    if not isinstance(branch, str) or len(branch) > BRANCH_MAX or not BRANCH_NAME.fullmatch(branch):
        raise PublishError(f"{branch!r} is not a valid branch name.")
    return branch


def _file_check(path: str) -> str:
    if not isinstance(path, str) or len(path) > 500 or not FILE_PATH.fullmatch(path):
        raise PublishError(f"{path!r} is not a file path Runway reads.")
    return path


def _bare_path(name: str) -> Path:
    _name_check(name)
    root = Path(settings.GIT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{name}.git"


def _commit_all(*, worktree: Path, author: tuple[str, str], message: str) -> None:
    """Make `worktree` a repository whose `main` holds every file in it as one commit."""
    git_run("init", "--quiet", "--initial-branch=main", cwd=worktree)
    git_run("add", "--all", cwd=worktree)
    git_run("commit", "--quiet", "--no-verify", "-m", message, cwd=worktree, author=author)


def local_path(*, name: str) -> str:
    return str(_bare_path(name))


def local_exists(*, name: str) -> bool:
    return REPO_NAME.fullmatch(name) is not None and _bare_path(name).exists()


def local_publish(*, name: str, worktree: Path, author: tuple[str, str], message: str) -> Published:
    """Create a bare repository `name.git` with the rendered files as its first commit on `main`."""
    bare = _bare_path(name)
    if bare.exists():
        raise PublishError(f"A repository called {name} already exists.")
    _commit_all(worktree=worktree, author=author, message=message)
    bare.parent.mkdir(parents=True, exist_ok=True)
    git_run("clone", "--quiet", "--bare", "--", str(worktree), str(bare), cwd=bare.parent)
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
    files = git_run("ls-tree", "-r", "--name-only", "main", "--", cwd=bare).splitlines()
    log = git_run("log", f"-{limit}", "--format=%h%x1f%an%x1f%aI%x1f%s", "main", "--", cwd=bare).splitlines()
    commits = [dict(zip(("sha", "author", "date", "subject"), line.split("\x1f"), strict=False)) for line in log]
    return files, commits


@dataclass(frozen=True)
class Commit:
    sha: str
    committed_at: datetime


@dataclass(frozen=True)
class Commits:
    """The commits reachable from a head and not from a base, oldest first; `complete` is False when the list was
    cut at COMMITS_LIMIT or the forge's own limit (then `total`, when the forge says it, counts them all)."""

    commits: list[Commit]
    total: int
    complete: bool = True


def _sha_check(sha: str) -> str:
    if not isinstance(sha, str) or not COMMIT_SHA.fullmatch(sha):
        raise PublishError(f"{sha!r} is not a full commit sha.")
    return sha


def _timestamp(text: Any) -> datetime:
    """An ISO 8601 timestamp with its offset, as git (%cI), GitHub and GitLab write them ("Z" included)."""
    if not isinstance(text, str):
        raise PublishError(f"{str(text)[:60]!r} is not a timestamp.")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PublishError(f"{text[:60]!r} is not a timestamp.") from None
    if moment.tzinfo is None:
        raise PublishError(f"{text[:60]!r} has no UTC offset.")
    return moment


def _ordered(found: Iterable[Commit], *, total: int | None = None, complete: bool = True) -> Commits:
    listed = sorted(found, key=lambda commit: (commit.committed_at, commit.sha))
    return Commits(listed, total if total is not None else len(listed), complete)


def local_commits_between(*, name: str, base: str | None, head: str) -> Commits:
    """Commits of the bare repository `name` in `head` and not in `base` (every commit of `head` without one, or when
    `base` is not in the repository any more: a force-push removed it)."""
    bare = _bare_path(name)
    if not bare.exists():
        raise PublishError(f"There is no repository called {name}.")
    _sha_check(head)
    if base is not None:
        _sha_check(base)
        if not git_run("rev-parse", "--quiet", "--verify", f"{base}^{{commit}}", cwd=bare, ok=(0, 1)).strip():
            base = None
    args = ["log", "--format=%H%x1f%cI", "--end-of-options", head] + ([f"^{base}"] if base else []) + ["--"]
    commits = []
    for line in git_run(*args, cwd=bare, timeout=120).splitlines():
        sha, _, stamp = line.partition("\x1f")
        commits.append(Commit(sha, _timestamp(stamp)))
    ordered = _ordered(commits)
    if len(ordered.commits) > COMMITS_LIMIT:
        return Commits(ordered.commits[:COMMITS_LIMIT], ordered.total, complete=False)
    return ordered


def github_commits(payload: Any) -> list[Commit]:
    """The commits of a GitHub compare answer (`{"commits": [...]}`) or commit list (`[...]`): each commit's sha and
    committer date (`commit.committer.date`). PublishError names what is missing from a payload of another shape."""
    items = payload.get("commits") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise PublishError("GitHub answered without a list of commits.")
    found = []
    for item in items:
        try:
            sha, stamp = item["sha"], item["commit"]["committer"]["date"]
        except (KeyError, TypeError):
            raise PublishError("GitHub listed a commit without sha or commit.committer.date.") from None
        found.append(Commit(_sha_check(sha), _timestamp(stamp)))
    return found


def gitlab_commits(payload: Any) -> list[Commit]:
    """The commits of a GitLab compare answer (`{"commits": [...]}`) or commit list (`[...]`): `id` and
    `committed_date` of each."""
    items = payload.get("commits") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise PublishError("GitLab answered without a list of commits.")
    found = []
    for item in items:
        try:
            sha, stamp = item["id"], item["committed_date"]
        except (KeyError, TypeError):
            raise PublishError("GitLab listed a commit without id or committed_date.") from None
        found.append(Commit(_sha_check(sha), _timestamp(stamp)))
    return found


class Publisher(ABC):
    """Creates, finds, archives and removes the repositories of new services, and clones and pushes their branches.

    Every method refuses an invalid repository or branch name with PublishError before it touches anything. Forges
    also open change requests (a GitHub pull request, a GitLab merge request): there, branches are merged by people
    on the forge, and Runway only asks what became of the request.
    """

    kind: str
    label: str = "Runway"
    change_request_label: str = ""  # "pull request", "merge request"; empty where branches are merged in Runway

    @abstractmethod
    def exists(self, *, name: str) -> bool: ...

    @abstractmethod
    def publish(self, *, name: str, worktree: Path, author: tuple[str, str], message: str) -> Published:
        """Create repository `name` whose `main` is every file of `worktree` as one commit; refused if it exists."""

    @abstractmethod
    def unpublish(self, *, name: str) -> None:
        """Delete repository `name` (nothing happens when there is none)."""

    @abstractmethod
    def archive(self, *, name: str, reason: str) -> None:
        """Make repository `name` read-only; it can still be cloned. Forges keep no reason: the caller records it."""

    @abstractmethod
    def clone(self, *, name: str, into: Path, branch: str = "main") -> None:
        """A working clone of `branch` (main by default) of repository `name` in the folder `into` (new or empty)."""

    @abstractmethod
    def push(self, *, name: str, worktree: Path, branch: str, force: bool = False) -> None:
        """Push `branch` of the working tree `worktree` to the branch of the same name in repository `name`;
        `force` replaces whatever that branch held."""

    @abstractmethod
    def fetch(self, *, name: str, worktree: Path, branch: str) -> str:
        """Copy `branch` of repository `name` to the branch of the same name in the clone `worktree` (where it must
        not be checked out), replacing it; its commit."""

    @abstractmethod
    def delete_branch(self, *, name: str, branch: str) -> None:
        """Delete `branch` of repository `name`; nothing happens when it has none."""

    @abstractmethod
    def archived(self, *, name: str) -> bool:
        """Whether repository `name` is archived (read-only); PublishError when there is no such repository."""

    @abstractmethod
    def read_file(self, *, name: str, path: str, ref: str = "main") -> str | None:
        """The text of file `path` on branch `ref` of repository `name`; None when there is no such file."""

    def open_change_request(self, *, name: str, branch: str, title: str, body: str) -> str:
        """Ask for `branch` to be merged into main (reusing a request already open for it); the request's web URL."""
        raise PublishError(f"The {self.kind} publisher has no change requests: branches are merged in Runway.")

    @abstractmethod
    def commits_between(self, *, name: str, base: str | None, head: str) -> Commits:
        """The commits in `head` and not in `base` (all of `head`'s when base is None), oldest first."""

    def change_request_state(self, *, name: str, url_or_number: str | int) -> str:
        """What became of a change request of repository `name`: "open", "merged" or "closed" (unmerged)."""
        raise PublishError(f"The {self.kind} publisher has no change requests: branches are merged in Runway.")

    def close_change_request(self, *, name: str, url_or_number: str | int) -> None:
        """Close a change request unmerged; nothing happens when it is no longer open."""
        raise PublishError(f"The {self.kind} publisher has no change requests: branches are merged in Runway.")


class LocalPublisher(Publisher):
    """Bare repositories under GIT_ROOT (the `local_*` functions), browsable from the portal."""

    kind = "local"

    def exists(self, *, name: str) -> bool:
        return _bare_path(name).exists()

    def publish(self, *, name: str, worktree: Path, author: tuple[str, str], message: str) -> Published:
        return local_publish(name=name, worktree=worktree, author=author, message=message)

    def unpublish(self, *, name: str) -> None:
        local_unpublish(name=name)

    def archive(self, *, name: str, reason: str) -> None:
        local_archive(name=name, reason=reason)

    def clone(self, *, name: str, into: Path, branch: str = "main") -> None:
        _branch_check(branch)
        bare = self._existing(name)
        into.parent.mkdir(parents=True, exist_ok=True)
        git_run("clone", "--quiet", "--branch", branch, "--", str(bare), str(into), cwd=into.parent)

    def push(self, *, name: str, worktree: Path, branch: str, force: bool = False) -> None:
        refspec = f"{'+' if force else ''}refs/heads/{_branch_check(branch)}:refs/heads/{branch}"
        git_run("push", "--quiet", "--", str(self._existing(name)), refspec, cwd=worktree)

    def fetch(self, *, name: str, worktree: Path, branch: str) -> str:
        ref = f"refs/heads/{_branch_check(branch)}"
        git_run("fetch", "--quiet", "--", str(self._existing(name)), f"+{ref}:{ref}", cwd=worktree)
        return git_run("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=worktree).strip()

    def delete_branch(self, *, name: str, branch: str) -> None:
        ref = f"refs/heads/{_branch_check(branch)}"
        bare = _bare_path(name)
        if bare.exists() and git_run("for-each-ref", "--format=%(refname)", "--", ref, cwd=bare).strip() == ref:
            git_run("update-ref", "-d", "--", ref, cwd=bare)

    def archived(self, *, name: str) -> bool:
        return (self._existing(name) / "ARCHIVED").exists()

    def read_file(self, *, name: str, path: str, ref: str = "main") -> str | None:
        spec = f"refs/heads/{_branch_check(ref)}:{_file_check(path)}"
        try:
            return git_run("show", spec, cwd=self._existing(name))
        except PublishError:
            return None

    def commits_between(self, *, name: str, base: str | None, head: str) -> Commits:
        return local_commits_between(name=name, base=base, head=head)

    def _existing(self, name: str) -> Path:
        bare = _bare_path(name)
        if not bare.exists():
            raise PublishError(f"There is no repository called {name}.")
        return bare


@dataclass(frozen=True)
class _Remote:
    """A repository on a forge: its web page, the HTTPS URL git pushes to, and the client library's object."""

    web_url: str
    git_url: str
    handle: Any


class ForgePublisher(Publisher):
    """What GitHub and GitLab share: the git side (HTTPS with the token in a header) and undoing a half-made publish.

    Subclasses talk to the forge's API; every failure they raise is a PublishError with the token scrubbed out.
    """

    label: str
    git_user: str  # the user name of the HTTP Basic credentials git sends with the token as password
    change_request_path: str  # between the repository's web URL and a change request's number: "/pull/"...

    def __init__(self, *, token: str, visibility: str) -> None:
        self.visibility = visibility
        basic = base64.b64encode(f"{self.git_user}:{token}".encode()).decode("ascii")
        self._git_header = f"Authorization: Basic {basic}"
        self._secrets = (token, basic, base64.b64encode(token.encode()).decode("ascii"))

    def __repr__(self) -> str:  # never the token
        return f"<{type(self).__name__} {self.location}>"

    @property
    @abstractmethod
    def location(self) -> str:
        """Where repositories are made, for messages: an organisation or a namespace."""

    @abstractmethod
    def _find(self, name: str) -> _Remote | None: ...

    @abstractmethod
    def _create(self, name: str) -> _Remote: ...

    @abstractmethod
    def _delete(self, remote: _Remote) -> None: ...

    @abstractmethod
    def _archive(self, remote: _Remote) -> None: ...

    def exists(self, *, name: str) -> bool:
        return self._find(_name_check(name)) is not None

    def publish(self, *, name: str, worktree: Path, author: tuple[str, str], message: str) -> Published:
        _name_check(name)
        _commit_all(worktree=worktree, author=author, message=message)  # a local failure creates nothing remote
        remote = self._create(name)
        try:
            self._git_remote("push", "--quiet", "--", remote.git_url, "refs/heads/main:refs/heads/main", cwd=worktree)
        except BaseException as error:
            # The repository is ours (we just created it): remove it, so that nothing is left half-made.
            failure = self._scrub(str(error))
            try:
                self._delete(remote)
            except PublishError as cleanup:
                raise PublishError(
                    f"{failure}; the repository {name} created for it in {self.location} could not be deleted "
                    f"({cleanup}): delete it by hand."
                ) from None
            raise
        return Published(url=remote.web_url)

    def unpublish(self, *, name: str) -> None:
        remote = self._find(_name_check(name))
        if remote is not None:
            self._delete(remote)

    def archive(self, *, name: str, reason: str) -> None:
        self._archive(self._existing(name))

    def clone(self, *, name: str, into: Path, branch: str = "main") -> None:
        _branch_check(branch)
        remote = self._existing(name)
        into.parent.mkdir(parents=True, exist_ok=True)
        self._git_remote("clone", "--quiet", "--branch", branch, "--", remote.git_url, str(into), cwd=into.parent)

    def push(self, *, name: str, worktree: Path, branch: str, force: bool = False) -> None:
        refspec = f"{'+' if force else ''}refs/heads/{_branch_check(branch)}:refs/heads/{branch}"
        remote = self._existing(name)
        self._git_remote("push", "--quiet", "--", remote.git_url, refspec, cwd=worktree)

    def fetch(self, *, name: str, worktree: Path, branch: str) -> str:
        ref = f"refs/heads/{_branch_check(branch)}"
        remote = self._existing(name)
        self._git_remote("fetch", "--quiet", "--", remote.git_url, f"+{ref}:{ref}", cwd=worktree)
        return git_run("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=worktree).strip()

    def delete_branch(self, *, name: str, branch: str) -> None:
        ref = f"refs/heads/{_branch_check(branch)}"
        remote = self._existing(name)
        with tempfile.TemporaryDirectory(prefix="runway-branch-") as scratch:
            # git pushes only from a repository: an empty one, which has nothing to send but the deletion.
            git_run("init", "--quiet", "--bare", cwd=Path(scratch))
            if self._git_remote("ls-remote", "--heads", "--", remote.git_url, ref, cwd=Path(scratch)).strip():
                self._git_remote("push", "--quiet", "--", remote.git_url, f":{ref}", cwd=Path(scratch))

    def archived(self, *, name: str) -> bool:
        return bool(getattr(self._existing(name).handle, "archived", False))

    def read_file(self, *, name: str, path: str, ref: str = "main") -> str | None:
        return self._read_file(self._existing(name), _file_check(path), _branch_check(ref))

    def open_change_request(self, *, name: str, branch: str, title: str, body: str) -> str:
        url = self._open_change_request(self._existing(name), _branch_check(branch), title, body)
        if not HTTP_URL.fullmatch(url):
            raise PublishError(
                f"{self.label} gave a {self.change_request_label} URL Runway does not use: {url[:200]!r}."
            )
        return url

    def change_request_state(self, *, name: str, url_or_number: str | int) -> str:
        remote = self._existing(name)
        state = self._change_request_state(remote, self._change_number(remote, url_or_number))
        if state not in CHANGE_STATES:
            raise PublishError(f"{self.label} said the {self.change_request_label} is {state[:40]!r}.")
        return state

    def close_change_request(self, *, name: str, url_or_number: str | int) -> None:
        remote = self._existing(name)
        number = self._change_number(remote, url_or_number)
        if self._change_request_state(remote, number) == "open":
            self._close_change_request(remote, number)

    def commits_between(self, *, name: str, base: str | None, head: str) -> Commits:
        _sha_check(head)
        if base is not None:
            _sha_check(base)
        return self._commits_between(self._existing(name), base, head)

    @abstractmethod
    def _commits_between(self, remote: _Remote, base: str | None, head: str) -> Commits: ...

    @abstractmethod
    def _read_file(self, remote: _Remote, path: str, ref: str) -> str | None: ...

    @abstractmethod
    def _open_change_request(self, remote: _Remote, branch: str, title: str, body: str) -> str: ...

    @abstractmethod
    def _change_request_state(self, remote: _Remote, number: int) -> str: ...

    @abstractmethod
    def _close_change_request(self, remote: _Remote, number: int) -> None: ...

    def _change_number(self, remote: _Remote, url_or_number: str | int) -> int:
        """The number of a change request of `remote`, from itself or from its web URL (of this repository only)."""
        if isinstance(url_or_number, int) and not isinstance(url_or_number, bool) and url_or_number > 0:
            return url_or_number
        prefix = f"{remote.web_url}{self.change_request_path}"
        text = str(url_or_number)
        if text.startswith(prefix) and text[len(prefix) :].isascii() and text[len(prefix) :].isdigit():
            return int(text[len(prefix) :])
        raise PublishError(f"{text[:200]!r} is not a {self.change_request_label} of {remote.web_url}.")

    def _existing(self, name: str) -> _Remote:
        remote = self._find(_name_check(name))
        if remote is None:
            raise PublishError(f"There is no repository called {name} in {self.location}.")
        return remote

    def _scrub(self, text: str) -> str:
        return _scrub(text, self._secrets)

    def _call(self, what: str, action: Callable[[], T], errors: tuple[type[BaseException], ...]) -> T:
        """Run one API call; its failure becomes a PublishError without the token and without the original
        exception chained to it (a chained exception would carry the library's text into tracebacks)."""
        try:
            return action()
        except errors as error:
            message = f"{self.label} refused to {what}: {self._scrub(str(error))[:500]}"
        raise PublishError(message)

    def _git_remote(self, *args: str, cwd: Path) -> str:
        """Run git against one remote URL (the argument after `--`) with the token in a header scoped to it."""
        url = args[args.index("--") + 1]
        match = HTTP_URL.fullmatch(url)
        if not match or not match["path"].endswith(".git"):
            raise PublishError(f"{self.label} gave a repository URL Runway does not use: {url[:200]!r}.")
        if match["scheme"] == "http" and match["host"] not in LOOPBACK:
            raise PublishError(f"{self.label} gave a plain-HTTP repository URL; the token goes over HTTPS only.")
        with tempfile.TemporaryDirectory(prefix="runway-git-home-") as home:
            return git_run(
                *args,
                cwd=cwd,
                secrets=self._secrets,
                timeout=300,  # a push or clone crosses the network
                extra_env={
                    "HOME": home,
                    "GIT_CONFIG_GLOBAL": os.devnull,  # no ~/.gitconfig, even one a rendered template brought
                    "GIT_TERMINAL_PROMPT": "0",
                    "GIT_ALLOW_PROTOCOL": match["scheme"],
                    "GIT_CONFIG_COUNT": "3",
                    "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
                    "GIT_CONFIG_VALUE_0": self._git_header,
                    "GIT_CONFIG_KEY_1": "credential.helper",
                    "GIT_CONFIG_VALUE_1": "",
                    "GIT_CONFIG_KEY_2": "http.followRedirects",
                    "GIT_CONFIG_VALUE_2": "false",
                },
            )


class GitHubPublisher(ForgePublisher):
    """Repositories in one GitHub (or GitHub Enterprise) organisation, through PyGithub."""

    kind = "github"
    label = "GitHub"
    change_request_label = "pull request"
    change_request_path = "/pull/"
    git_user = "x-access-token"  # what GitHub documents for a token used as an HTTPS password

    def __init__(self, *, token: str, org: str, api_url: str, visibility: str = "private") -> None:
        import github
        import requests

        super().__init__(token=token, visibility=visibility)
        self.org = org
        self._errors = (github.GithubException, requests.RequestException)
        # No pauses between calls: a publish makes two or three, far from GitHub's secondary rate limits.
        self._github = github.Github(
            auth=github.Auth.Token(token),
            base_url=api_url,
            timeout=30,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    @classmethod
    def from_settings(cls) -> "GitHubPublisher":
        token, org = _required("GITHUB_TOKEN"), _required("GITHUB_ORG")
        if not GITHUB_ORG.fullmatch(org):
            raise ImproperlyConfigured(f"GITHUB_ORG {org!r} is not a GitHub organisation name.")
        return cls(token=token, org=org, api_url=_api_url("GITHUB_API_URL"), visibility=_visibility())

    @property
    def location(self) -> str:
        return f"the GitHub organisation {self.org}"

    def _remote(self, repo: Any) -> _Remote:
        return _Remote(web_url=repo.html_url, git_url=repo.clone_url, handle=repo)

    def _find(self, name: str) -> _Remote | None:
        import github

        try:
            repo = self._github.get_repo(f"{self.org}/{name}")
            repo.html_url  # noqa: B018  (lazy objects load on first attribute: this is the GET)
        except github.UnknownObjectException:
            return None
        except self._errors as error:
            message = f"GitHub refused to look up {self.org}/{name}: {self._scrub(str(error))[:500]}"
        else:
            return self._remote(repo)
        raise PublishError(message)

    def _create(self, name: str) -> _Remote:
        try:
            repo = self._call(
                f"create {self.org}/{name}",
                lambda: self._github.get_organization(self.org).create_repo(
                    name, private=self.visibility != "public", visibility=self.visibility, auto_init=False
                ),
                self._errors,
            )
        except PublishError:
            if self._find(name) is not None:
                raise PublishError(f"A repository called {name} already exists in {self.location}.") from None
            raise
        return self._remote(repo)

    def _delete(self, remote: _Remote) -> None:
        self._call(f"delete {remote.handle.full_name}", remote.handle.delete, self._errors)

    def _archive(self, remote: _Remote) -> None:
        self._call(f"archive {remote.handle.full_name}", lambda: remote.handle.edit(archived=True), self._errors)

    def _read_file(self, remote: _Remote, path: str, ref: str) -> str | None:
        import github

        try:
            content = remote.handle.get_contents(path, ref=ref)
            if isinstance(content, list):  # a folder
                return None
            return str(content.decoded_content.decode("utf-8", errors="replace"))
        except github.UnknownObjectException:
            return None
        except self._errors as error:
            message = f"GitHub refused to read {path} of {remote.handle.full_name}: {self._scrub(str(error))[:500]}"
        raise PublishError(message)

    def _commits_between(self, remote: _Remote, base: str | None, head: str) -> Commits:
        """GitHub's compare lists the oldest 250 commits of a range on its first page, with `total_commits`; without a
        base, the commit list pages from the newest, up to COMMITS_LIMIT."""
        requester, url = self._github.requester, remote.handle.url
        if base is not None:
            _, payload = self._call(
                f"compare {base[:10]}...{head[:10]} in {remote.handle.full_name}",
                lambda: requester.requestJsonAndCheck("GET", f"{url}/compare/{base}...{head}", {"per_page": 250}),
                self._errors,
            )
            found = github_commits(payload)
            total = payload.get("total_commits") if isinstance(payload, dict) else None
            total = total if isinstance(total, int) and total >= len(found) else len(found)
            return _ordered(found, total=total, complete=total == len(found))
        found, page = [], 1
        while len(found) < COMMITS_LIMIT:
            _, payload = self._call(
                f"list the commits of {remote.handle.full_name}",
                lambda page=page: requester.requestJsonAndCheck(  # type: ignore[misc]
                    "GET", f"{url}/commits", {"sha": head, "per_page": 100, "page": page}
                ),
                self._errors,
            )
            listed = github_commits(payload)
            found += listed
            if len(listed) < 100:
                return _ordered(found)
            page += 1
        return _ordered(found[:COMMITS_LIMIT], complete=False)

    def _open_change_request(self, remote: _Remote, branch: str, title: str, body: str) -> str:
        repo = remote.handle
        head = f"{self.org}:{branch}"
        found = self._call(
            f"list the pull requests of {repo.full_name}",
            lambda: list(repo.get_pulls(state="open", head=head, base="main")),
            self._errors,
        )
        if found:
            return str(found[0].html_url)
        pull = self._call(
            f"open a pull request for {branch} in {repo.full_name}",
            lambda: repo.create_pull(base="main", head=branch, title=title, body=body),
            self._errors,
        )
        return str(pull.html_url)

    def _pull(self, remote: _Remote, number: int) -> Any:
        return self._call(
            f"find pull request #{number} of {remote.handle.full_name}",
            lambda: remote.handle.get_pull(number),
            self._errors,
        )

    def _change_request_state(self, remote: _Remote, number: int) -> str:
        pull = self._pull(remote, number)
        return "merged" if pull.merged else "open" if pull.state == "open" else "closed"

    def _close_change_request(self, remote: _Remote, number: int) -> None:
        pull = self._pull(remote, number)
        self._call(f"close pull request #{number}", lambda: pull.edit(state="closed"), self._errors)


class GitLabPublisher(ForgePublisher):
    """Projects in one GitLab group (a namespace path such as `platform/services`), through python-gitlab."""

    kind = "gitlab"
    label = "GitLab"
    change_request_label = "merge request"
    change_request_path = "/-/merge_requests/"
    git_user = "oauth2"  # GitLab takes any token as the password of `oauth2` over HTTPS

    def __init__(self, *, token: str, url: str, namespace: str, visibility: str = "private") -> None:
        import gitlab
        import requests

        super().__init__(token=token, visibility=visibility)
        self.namespace = namespace
        self._errors = (gitlab.exceptions.GitlabError, requests.RequestException)
        self._gitlab = gitlab.Gitlab(url, private_token=token, timeout=30)

    @classmethod
    def from_settings(cls) -> "GitLabPublisher":
        token, namespace = _required("GITLAB_TOKEN"), _required("GITLAB_NAMESPACE")
        if not GITLAB_NAMESPACE.fullmatch(namespace):
            raise ImproperlyConfigured(f"GITLAB_NAMESPACE {namespace!r} is not a GitLab group path.")
        return cls(token=token, url=_api_url("GITLAB_URL"), namespace=namespace, visibility=_visibility())

    @property
    def location(self) -> str:
        return f"the GitLab group {self.namespace}"

    def _remote(self, project: Any) -> _Remote:
        return _Remote(web_url=project.web_url, git_url=project.http_url_to_repo, handle=project)

    def _get(self, key: str | int) -> Any:
        import gitlab

        try:
            return self._gitlab.projects.get(key)
        except gitlab.exceptions.GitlabGetError as error:
            if error.response_code == 404:
                return None
            message = f"GitLab refused to look up {key}: {self._scrub(str(error))[:500]}"
        except self._errors as error:
            message = f"GitLab refused to look up {key}: {self._scrub(str(error))[:500]}"
        raise PublishError(message)

    def _find(self, name: str) -> _Remote | None:
        project = self._get(f"{self.namespace}/{name}")
        return None if project is None else self._remote(project)

    def _create(self, name: str) -> _Remote:
        group = self._call(
            f"find the group {self.namespace}", lambda: self._gitlab.groups.get(self.namespace), self._errors
        )
        data = {"name": name, "path": name, "namespace_id": group.id, "visibility": self.visibility}
        try:
            project = self._call(
                f"create {self.namespace}/{name}", lambda: self._gitlab.projects.create(data), self._errors
            )
        except PublishError:
            if self._find(name) is not None:
                raise PublishError(f"A repository called {name} already exists in {self.location}.") from None
            raise
        return self._remote(project)

    def _delete(self, remote: _Remote) -> None:
        # GitLab may only mark a project for deletion (delayed deletion) and keep it, and perhaps its path, for days;
        # a project Runway is taking back goes at once, whether this call or someone before it marked it.
        project = remote.handle
        if not _marked(project):
            self._call(f"delete {project.path_with_namespace}", project.delete, self._errors)
            project = self._get(project.id)
        if project is not None and _marked(project):
            query = {"permanently_remove": "true", "full_path": project.path_with_namespace}
            self._call(f"delete {project.path_with_namespace}", lambda: project.delete(query_data=query), self._errors)

    def _archive(self, remote: _Remote) -> None:
        self._call(f"archive {remote.handle.path_with_namespace}", remote.handle.archive, self._errors)

    def _read_file(self, remote: _Remote, path: str, ref: str) -> str | None:
        import gitlab

        project = remote.handle
        try:
            raw = project.files.raw(file_path=path, ref=ref)
            return bytes(raw).decode("utf-8", errors="replace")
        except gitlab.exceptions.GitlabGetError as error:
            if error.response_code == 404:
                return None
            message = f"GitLab refused to read {path} of {project.path_with_namespace}: {self._scrub(str(error))[:500]}"
        except self._errors as error:
            message = f"GitLab refused to read {path} of {project.path_with_namespace}: {self._scrub(str(error))[:500]}"
        raise PublishError(message)

    def _commits_between(self, remote: _Remote, base: str | None, head: str) -> Commits:
        """GitLab's compare lists every commit of a range at once; without a base, the commit list pages from the
        newest, up to COMMITS_LIMIT."""
        project = remote.handle
        if base is not None:
            payload = self._call(
                f"compare {base[:10]}...{head[:10]} in {project.path_with_namespace}",
                lambda: project.repository_compare(base, head),
                self._errors,
            )
            found = gitlab_commits(payload)
            if len(found) > COMMITS_LIMIT:
                ordered = _ordered(found)
                return Commits(ordered.commits[:COMMITS_LIMIT], ordered.total, complete=False)
            return _ordered(found)
        found, page = [], 1
        path = f"/projects/{project.id}/repository/commits"
        while len(found) < COMMITS_LIMIT:
            payload = self._call(
                f"list the commits of {project.path_with_namespace}",
                lambda page=page: self._gitlab.http_get(  # type: ignore[misc]
                    path, query_data={"ref_name": head, "per_page": 100, "page": page}
                ),
                self._errors,
            )
            listed = gitlab_commits(payload)
            found += listed
            if len(listed) < 100:
                return _ordered(found)
            page += 1
        return _ordered(found[:COMMITS_LIMIT], complete=False)

    def _open_change_request(self, remote: _Remote, branch: str, title: str, body: str) -> str:
        project = remote.handle
        found = self._call(
            f"list the merge requests of {project.path_with_namespace}",
            lambda: project.mergerequests.list(
                source_branch=branch, target_branch="main", state="opened", get_all=False
            ),
            self._errors,
        )
        if found:
            return str(found[0].web_url)
        data = {"source_branch": branch, "target_branch": "main", "title": title, "description": body}
        request = self._call(
            f"open a merge request for {branch} in {project.path_with_namespace}",
            lambda: project.mergerequests.create(data),
            self._errors,
        )
        return str(request.web_url)

    def _merge_request(self, remote: _Remote, number: int) -> Any:
        return self._call(
            f"find merge request !{number} of {remote.handle.path_with_namespace}",
            lambda: remote.handle.mergerequests.get(number),
            self._errors,
        )

    def _change_request_state(self, remote: _Remote, number: int) -> str:
        state = str(self._merge_request(remote, number).state)
        return {"opened": "open", "locked": "open"}.get(state, state)

    def _close_change_request(self, remote: _Remote, number: int) -> None:
        request = self._merge_request(remote, number)
        request.state_event = "close"
        self._call(f"close merge request !{number}", request.save, self._errors)


def _marked(project: Any) -> bool:
    """Marked for deletion: `marked_for_deletion_at` since GitLab 16, `marked_for_deletion_on` before."""
    return bool(getattr(project, "marked_for_deletion_at", None) or getattr(project, "marked_for_deletion_on", None))


def _required(setting: str) -> str:
    value = str(getattr(settings, setting, "") or "")
    if not value:
        raise ImproperlyConfigured(f"SCAFFOLD_PUBLISHER is {settings.SCAFFOLD_PUBLISHER!r}, which needs {setting}.")
    return value


def _api_url(setting: str) -> str:
    url = str(getattr(settings, setting, "") or "").rstrip("/")
    match = HTTP_URL.fullmatch(url)
    if not match:
        raise ImproperlyConfigured(f"{setting} {url!r} is not an http(s) URL.")
    if match["scheme"] == "http" and match["host"] not in LOOPBACK:
        raise ImproperlyConfigured(f"{setting} must use https: the token would cross the network in clear.")
    return url


def _visibility() -> str:
    visibility = str(settings.SCAFFOLD_REPOSITORY_VISIBILITY)
    if visibility not in VISIBILITIES:
        raise ImproperlyConfigured(
            f"SCAFFOLD_REPOSITORY_VISIBILITY is {visibility!r}; it must be one of {', '.join(VISIBILITIES)}."
        )
    return visibility


def publisher() -> Publisher:
    """The publisher SCAFFOLD_PUBLISHER names, built from settings; ImproperlyConfigured when they are wrong."""
    kind = settings.SCAFFOLD_PUBLISHER
    if kind == "local":
        return LocalPublisher()
    if kind == "github":
        return GitHubPublisher.from_settings()
    if kind == "gitlab":
        return GitLabPublisher.from_settings()
    raise ImproperlyConfigured(f"SCAFFOLD_PUBLISHER is {kind!r}; it must be one of {', '.join(PUBLISHERS)}.")


@checks.register()
def publisher_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` (and every command that runs checks) reports publisher settings that publisher() refuses."""
    try:
        publisher()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="scaffolder.E001")]
    return []
