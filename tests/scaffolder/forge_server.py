"""A small forge for the publisher tests: the parts of GitHub's REST API and GitLab's REST API v4 the publishers call,
and git's smart HTTP protocol served by the real `git http-backend`, on 127.0.0.1 with a random port.

Every request without the right token is refused with 401, so a passing test proves the token went where it must:
`Authorization: token …` (PyGithub) to the GitHub API, `PRIVATE-TOKEN` (python-gitlab) to the GitLab API, and HTTP
Basic (`x-access-token` or `oauth2` as user, the token as password) to git. Repositories are bare repositories under
`root/github/<org>/` and `root/gitlab/<group path>/`, read in the tests with the real git.

Change requests (GitHub pull requests, GitLab merge requests) can be opened, read, listed and closed through the
APIs; a test plays the person who merges one on the forge with `change_request_merge` (main moves to the branch's
commit) or closes it with `change_request_close`.
"""

import base64
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

GITHUB_API = "/github/api/v3"
GITLAB_API = "/gitlab/api/v4"
GIT_USERS = {"github": "x-access-token", "gitlab": "oauth2"}


@dataclass
class Seen:
    """One request as the forge received it."""

    method: str
    path: str
    authorised: bool
    headers: dict[str, str]


@dataclass
class ForgeServer:
    root: Path
    token: str
    org: str = "acme"
    group: str = "platform/services"
    group_id: int = 7
    # Set by a test: a push is refused by a pre-receive hook that prints this (a test puts the token in it, as a
    # verbose forge might, to prove the publisher scrubs git's output).
    refuse_pushes: str | None = None
    # Set by a test: creating a repository fails with this HTTP status and message.
    refuse_create: tuple[int, str] | None = None
    # Set by a test: deleting is refused (a token without GitHub's delete_repo scope, or not a GitLab owner).
    refuse_delete: bool = False
    # GitLab since 16 (Premium) and 18 (every tier) only marks a deleted project for deletion at first.
    delayed_deletion: bool = True
    seen: list[Seen] = field(default_factory=list)
    github_repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    gitlab_projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Pull requests by repository full name; merge requests by project id. Numbered from 1 per repository.
    github_pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gitlab_merge_requests: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._next_id = 100
        handler = type("Handler", (_Handler,), {"forge": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> "ForgeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    # --- state, also used by tests to set the scene ------------------------------------------------------------

    def bare(self, forge: str, full_path: str) -> Path:
        return self.root / forge / f"{full_path}.git"

    def github_create(self, name: str, *, private: bool = True, visibility: str | None = None) -> dict[str, Any]:
        full = f"{self.org}/{name}"
        repo = {
            "id": self._id(),
            "name": name,
            "full_name": full,
            "owner": {"login": self.org, "type": "Organization"},
            "private": private,
            "visibility": visibility or ("private" if private else "public"),
            "archived": False,
            "url": f"{self.url}{GITHUB_API}/repos/{full}",
            "html_url": f"{self.url}/github/{full}",
            "clone_url": f"{self.url}/github/git/{full}.git",
            "default_branch": "main",
        }
        self.github_repos[full] = repo
        _git_init(self.bare("github", full))
        return repo

    def gitlab_create(self, name: str, *, visibility: str = "private") -> dict[str, Any]:
        full = f"{self.group}/{name}"
        project = {
            "id": self._id(),
            "name": name,
            "path": name,
            "path_with_namespace": full,
            "namespace": {"id": self.group_id, "full_path": self.group},
            "visibility": visibility,
            "archived": False,
            "marked_for_deletion_at": None,
            "web_url": f"{self.url}/gitlab/{full}",
            "http_url_to_repo": f"{self.url}/gitlab/git/{full}.git",
        }
        self.gitlab_projects[project["id"]] = project
        _git_init(self.bare("gitlab", full))
        return project

    def gitlab_find(self, key: str) -> dict[str, Any] | None:
        if key.isdigit():
            return self.gitlab_projects.get(int(key))
        return next((p for p in self.gitlab_projects.values() if p["path_with_namespace"] == key), None)

    def archive(self, bare: Path) -> None:
        """Archived repositories take no pushes (both forges make them read-only)."""
        _hook(bare, "This repository was archived so it is read-only.")

    def change_requests(self, forge: str, full_path: str) -> list[dict[str, Any]]:
        if forge == "github":
            return self.github_pulls.setdefault(full_path, [])
        project = self.gitlab_find(full_path)
        assert project is not None
        return self.gitlab_merge_requests.setdefault(project["id"], [])

    def change_request_open(
        self, forge: str, full_path: str, *, branch: str, title: str, body: str
    ) -> dict[str, Any] | None:
        """A new request to merge `branch` into main; None when the branch is not in the repository."""
        if not _ref(self.bare(forge, full_path), f"refs/heads/{branch}"):
            return None
        requests = self.change_requests(forge, full_path)
        number = len(requests) + 1
        if forge == "github":
            repo = self.github_repos[full_path]
            request = {
                "id": self._id(),
                "number": number,
                "url": f"{repo['url']}/pulls/{number}",
                "html_url": f"{repo['html_url']}/pull/{number}",
                "state": "open",
                "merged": False,
                "title": title,
                "body": body,
                "head": {"ref": branch, "label": f"{self.org}:{branch}"},
                "base": {"ref": "main", "label": f"{self.org}:main"},
            }
        else:
            project = self.gitlab_find(full_path)
            assert project is not None
            request = {
                "id": self._id(),
                "iid": number,
                "project_id": project["id"],
                "state": "opened",
                "title": title,
                "description": body,
                "source_branch": branch,
                "target_branch": "main",
                "web_url": f"{project['web_url']}/-/merge_requests/{number}",
            }
        requests.append(request)
        return request

    def change_request_merge(self, forge: str, full_path: str, number: int) -> str:
        """Merge request `number` as a person would on the forge: main moves to the branch's commit; that commit."""
        with self.lock:
            request = self.change_requests(forge, full_path)[number - 1]
            bare = self.bare(forge, full_path)
            branch = request["head"]["ref"] if forge == "github" else request["source_branch"]
            head = _ref(bare, f"refs/heads/{branch}")
            assert head, f"{branch} is not in {full_path}"
            subprocess.run(["git", f"--git-dir={bare}", "update-ref", "refs/heads/main", head], check=True)
            if forge == "github":
                request |= {"state": "closed", "merged": True}
            else:
                request["state"] = "merged"
            return head

    def change_request_close(self, forge: str, full_path: str, number: int) -> None:
        """Close request `number` unmerged, as a person would on the forge."""
        with self.lock:
            request = self.change_requests(forge, full_path)[number - 1]
            request["state"] = "closed"

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id


def _git_init(bare: Path) -> None:
    bare.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", "--", str(bare)], check=True)


def _ref(bare: Path, ref: str) -> str:
    """The commit `ref` names in `bare`; "" when there is none."""
    result = subprocess.run(
        ["git", f"--git-dir={bare}", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def _show(bare: Path, ref: str, path: str) -> bytes | None:
    result = subprocess.run(["git", f"--git-dir={bare}", "show", f"{ref}:{path}"], capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def _log(bare: Path, *revisions: str) -> list[dict[str, str]] | None:
    """Commits of `revisions` (git rev-list syntax), newest first, with the fields the forges' payloads carry."""
    result = subprocess.run(
        ["git", f"--git-dir={bare}", "log", "--format=%H%x1f%aI%x1f%cI%x1f%an%x1f%ae%x1f%s", *revisions, "--"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    keys = ("sha", "authored", "committed", "name", "email", "subject")
    return [dict(zip(keys, line.split("\x1f"), strict=True)) for line in result.stdout.splitlines()]


def github_commit(forge_url: str, full: str, found: dict[str, str]) -> dict[str, Any]:
    """A commit as GitHub's REST API writes one (docs.github.com, "Get a commit"; the fields Runway reads and more)."""
    return {
        "sha": found["sha"],
        "url": f"{forge_url}{GITHUB_API}/repos/{full}/commits/{found['sha']}",
        "commit": {
            "author": {"name": found["name"], "email": found["email"], "date": found["authored"]},
            "committer": {"name": found["name"], "email": found["email"], "date": found["committed"]},
            "message": found["subject"],
        },
        "parents": [],
    }


def gitlab_commit(found: dict[str, str]) -> dict[str, Any]:
    """A commit as GitLab's REST API v4 writes one (docs.gitlab.com, "Commits API")."""
    return {
        "id": found["sha"],
        "short_id": found["sha"][:8],
        "title": found["subject"],
        "message": found["subject"],
        "author_name": found["name"],
        "author_email": found["email"],
        "authored_date": found["authored"],
        "committer_name": found["name"],
        "committer_email": found["email"],
        "committed_date": found["committed"],
        "created_at": found["committed"],
    }


def _hook(bare: Path, message: str) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\necho {json.dumps(message)} >&2\nexit 1\n")
    hook.chmod(0o755)


class _Handler(BaseHTTPRequestHandler):
    forge: ForgeServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet: pytest shows failures itself)
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # --- plumbing ----------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        forge = self.forge
        raw_path = urlsplit(self.path).path
        self.query = parse_qs(urlsplit(self.path).query)
        self.body = self._read_body()
        kind = _kind(raw_path)
        authorised = self._authorised(kind)
        with forge.lock:
            forge.seen.append(Seen(self.command, self.path, authorised, dict(self.headers.items())))
        if kind is None:
            return self._json(404, {"message": "Not Found"})
        if not authorised:
            if kind.endswith("-git"):
                return self._send(401, b"", {"WWW-Authenticate": 'Basic realm="forge"'})
            return self._json(401, {"message": "Bad credentials" if kind == "github" else "401 Unauthorized"})
        if kind.endswith("-git"):
            return self._git(kind.removesuffix("-git"), raw_path)
        with forge.lock:
            if kind == "github":
                return self._github(raw_path.removeprefix(GITHUB_API))
            return self._gitlab(raw_path.removeprefix(GITLAB_API))

    def _authorised(self, kind: str | None) -> bool:
        token = self.forge.token
        if kind == "github":
            return self.headers.get("Authorization") in (f"token {token}", f"Bearer {token}")
        if kind == "gitlab":
            return self.headers.get("PRIVATE-TOKEN") == token
        if kind in ("github-git", "gitlab-git"):
            user = GIT_USERS[kind.removesuffix("-git")]
            basic = base64.b64encode(f"{user}:{token}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {basic}"
        return False

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _payload(self) -> dict[str, Any]:
        if not self.body:
            return {}
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return dict(json.loads(self.body))
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def _raw(self, status: int, body: bytes) -> None:
        self._send(status, body, {"Content-Type": "text/plain; charset=utf-8"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = b"" if data is None else json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    # --- GitHub ------------------------------------------------------------------------------------------------

    def _github(self, path: str) -> None:
        forge, parts = self.forge, [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["orgs", forge.org] and self.command == "GET":
            return self._json(200, {"login": forge.org, "id": 1, "url": f"{forge.url}{GITHUB_API}/orgs/{forge.org}"})
        if parts == ["orgs", forge.org, "repos"] and self.command == "POST":
            data = self._payload()
            if forge.refuse_create:
                return self._json(forge.refuse_create[0], {"message": forge.refuse_create[1]})
            if f"{forge.org}/{data['name']}" in forge.github_repos:
                error = {"resource": "Repository", "code": "custom", "field": "name"}
                return self._json(
                    422,
                    {
                        "message": "Repository creation failed.",
                        "errors": [{**error, "message": "name already exists on this account"}],
                    },
                )
            repo = forge.github_create(
                data["name"], private=data.get("private", False), visibility=data.get("visibility")
            )
            return self._json(201, repo)
        if len(parts) > 3 and parts[0] == "repos" and f"{parts[1]}/{parts[2]}" in forge.github_repos:
            return self._github_repo_parts(f"{parts[1]}/{parts[2]}", parts[3:])
        if len(parts) == 3 and parts[0] == "repos":
            full = f"{parts[1]}/{parts[2]}"
            repo = forge.github_repos.get(full)
            if repo is None:
                return self._json(404, {"message": "Not Found"})
            if self.command == "GET":
                return self._json(200, repo)
            if self.command == "DELETE":
                if forge.refuse_delete:
                    return self._json(403, {"message": "Must have admin rights to Repository."})
                del forge.github_repos[full]
                _remove(forge.bare("github", full))
                return self._json(204, None)
            if self.command == "PATCH":
                data = self._payload()
                if data.get("archived"):
                    repo["archived"] = True
                    forge.archive(forge.bare("github", full))
                return self._json(200, repo)
        return self._json(404, {"message": "Not Found"})

    def _github_repo_parts(self, full: str, rest: list[str]) -> None:
        """Pull requests and file contents of one repository."""
        forge = self.forge
        pulls = forge.change_requests("github", full)
        if rest[0] == "contents" and self.command == "GET":
            ref = self.query.get("ref", ["main"])[0]
            content = _show(forge.bare("github", full), ref, "/".join(rest[1:]))
            if content is None:
                return self._json(404, {"message": "Not Found"})
            encoded = base64.b64encode(content).decode()
            name = rest[-1]
            return self._json(
                200,
                {"type": "file", "encoding": "base64", "name": name, "path": "/".join(rest[1:]), "content": encoded},
            )
        if len(rest) == 2 and rest[0] == "compare" and "..." in rest[1] and self.command == "GET":
            # The oldest `per_page` commits of the range (GitHub's first page), with the range's total.
            base, head = rest[1].split("...", 1)
            found = _log(forge.bare("github", full), "--reverse", head, f"^{base}")
            if found is None:
                return self._json(404, {"message": "Not Found"})
            per_page = int(self.query.get("per_page", ["250"])[0])
            commits = [github_commit(forge.url, full, c) for c in found[:per_page]]
            return self._json(200, {"status": "ahead", "total_commits": len(found), "commits": commits, "files": []})
        if rest == ["commits"] and self.command == "GET":
            found = _log(forge.bare("github", full), self.query.get("sha", ["main"])[0])
            if found is None:
                return self._json(404, {"message": "Not Found"})
            per_page, page = int(self.query.get("per_page", ["30"])[0]), int(self.query.get("page", ["1"])[0])
            chosen = found[(page - 1) * per_page : page * per_page]
            return self._json(200, [github_commit(forge.url, full, c) for c in chosen])
        if rest == ["pulls"] and self.command == "GET":
            state, head = self.query.get("state", ["open"])[0], self.query.get("head", [None])[0]
            found = [
                pull
                for pull in pulls
                if (state == "all" or pull["state"] == state) and (head is None or pull["head"]["label"] == head)
            ]
            return self._json(200, found)
        if rest == ["pulls"] and self.command == "POST":
            data = self._payload()
            if any(pull["state"] == "open" and pull["head"]["ref"] == data["head"] for pull in pulls):
                message = f"A pull request already exists for {forge.org}:{data['head']}."
                return self._json(422, {"message": "Validation Failed", "errors": [{"message": message}]})
            pull = forge.change_request_open(
                "github", full, branch=data["head"], title=data["title"], body=data.get("body", "")
            )
            if pull is None:
                return self._json(422, {"message": "Validation Failed", "errors": [{"field": "head"}]})
            return self._json(201, pull)
        if len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit() and 0 < int(rest[1]) <= len(pulls):
            pull = pulls[int(rest[1]) - 1]
            if self.command == "GET":
                return self._json(200, pull)
            if self.command == "PATCH":
                if self._payload().get("state") == "closed" and not pull["merged"]:
                    pull["state"] = "closed"
                return self._json(200, pull)
        return self._json(404, {"message": "Not Found"})

    # --- GitLab ------------------------------------------------------------------------------------------------

    def _gitlab(self, path: str) -> None:
        forge = self.forge
        parts = path.strip("/").split("/")  # still encoded: "platform%2Fservices" is one part
        if len(parts) == 2 and parts[0] == "groups" and self.command == "GET":
            if unquote(parts[1]) in (forge.group, str(forge.group_id)):
                return self._json(200, {"id": forge.group_id, "full_path": forge.group, "path": forge.group})
            return self._json(404, {"message": "404 Group Not Found"})
        if parts == ["projects"] and self.command == "POST":
            data = self._payload()
            if forge.refuse_create:
                return self._json(forge.refuse_create[0], {"message": forge.refuse_create[1]})
            if int(data["namespace_id"]) != forge.group_id:
                return self._json(404, {"message": "404 Namespace Not Found"})
            if forge.gitlab_find(f"{forge.group}/{data['path']}"):
                taken = ["has already been taken"]
                return self._json(400, {"message": {"name": taken, "path": taken}})
            return self._json(201, forge.gitlab_create(data["path"], visibility=data.get("visibility", "private")))
        if len(parts) >= 2 and parts[0] == "projects":
            project = forge.gitlab_find(unquote(parts[1]))
            if project is None:
                return self._json(404, {"message": "404 Project Not Found"})
            if len(parts) == 2 and self.command == "GET":
                return self._json(200, project)
            if len(parts) == 2 and self.command == "DELETE":
                return self._gitlab_delete(project)
            if parts[2:] == ["archive"] and self.command == "POST":
                project["archived"] = True
                forge.archive(forge.bare("gitlab", project["path_with_namespace"]))
                return self._json(201, project)
            if len(parts) > 2:
                return self._gitlab_project_parts(project, parts[2:])
        return self._json(404, {"message": "404 Not Found"})

    def _gitlab_project_parts(self, project: dict[str, Any], rest: list[str]) -> None:
        """Merge requests and raw files of one project."""
        forge, full = self.forge, project["path_with_namespace"]
        requests = forge.change_requests("gitlab", full)
        if len(rest) == 4 and rest[:2] == ["repository", "files"] and rest[3] == "raw" and self.command == "GET":
            content = _show(forge.bare("gitlab", full), self.query.get("ref", ["main"])[0], unquote(rest[2]))
            if content is None:
                return self._json(404, {"message": "404 File Not Found"})
            return self._raw(200, content)
        if rest == ["repository", "compare"] and self.command == "GET":
            base, head = self.query.get("from", [""])[0], self.query.get("to", [""])[0]
            found = _log(forge.bare("gitlab", full), "--reverse", head, f"^{base}")
            if found is None:
                return self._json(404, {"message": "404 Ref Not Found"})
            commits = [gitlab_commit(c) for c in found]
            return self._json(200, {"commit": commits[-1] if commits else None, "commits": commits, "diffs": []})
        if rest == ["repository", "commits"] and self.command == "GET":
            found = _log(forge.bare("gitlab", full), self.query.get("ref_name", ["main"])[0])
            if found is None:
                return self._json(404, {"message": "404 Ref Not Found"})
            per_page, page = int(self.query.get("per_page", ["20"])[0]), int(self.query.get("page", ["1"])[0])
            return self._json(200, [gitlab_commit(c) for c in found[(page - 1) * per_page : page * per_page]])
        if rest == ["merge_requests"] and self.command == "GET":
            wanted = {key: values[0] for key, values in self.query.items() if key in ("state", "source_branch")}
            if wanted.get("state") == "all":
                del wanted["state"]
            return self._json(200, [mr for mr in requests if all(mr[k] == v for k, v in wanted.items())])
        if rest == ["merge_requests"] and self.command == "POST":
            data = self._payload()
            if any(mr["state"] == "opened" and mr["source_branch"] == data["source_branch"] for mr in requests):
                return self._json(
                    409, {"message": ["Another open merge request already exists for this source branch"]}
                )
            mr = forge.change_request_open(
                "gitlab", full, branch=data["source_branch"], title=data["title"], body=data.get("description", "")
            )
            if mr is None:
                return self._json(400, {"message": ["The source branch does not exist"]})
            return self._json(201, mr)
        if len(rest) == 2 and rest[0] == "merge_requests" and rest[1].isdigit() and 0 < int(rest[1]) <= len(requests):
            mr = requests[int(rest[1]) - 1]
            if self.command == "GET":
                return self._json(200, mr)
            if self.command == "PUT":
                if self._payload().get("state_event") == "close" and mr["state"] == "opened":
                    mr["state"] = "closed"
                return self._json(200, mr)
        return self._json(404, {"message": "404 Not Found"})

    def _gitlab_delete(self, project: dict[str, Any]) -> None:
        forge = self.forge
        if forge.refuse_delete:
            return self._json(403, {"message": "403 Forbidden"})
        permanently = self.query.get("permanently_remove") == ["true"]
        if forge.delayed_deletion and not project["marked_for_deletion_at"]:
            project["marked_for_deletion_at"] = date.today().isoformat()
            return self._json(202, {"message": "202 Accepted"})
        if forge.delayed_deletion and not permanently:
            return self._json(400, {"message": "Project has been already marked for deletion"})
        if permanently and self.query.get("full_path") != [project["path_with_namespace"]]:
            return self._json(400, {"message": "full_path must match the project's path"})
        del forge.gitlab_projects[project["id"]]
        _remove(forge.bare("gitlab", project["path_with_namespace"]))
        return self._json(202, {"message": "202 Accepted"})

    # --- git smart HTTP, through the real git http-backend -------------------------------------------------------

    def _git(self, forge_kind: str, raw_path: str) -> None:
        forge = self.forge
        path_info = raw_path.removeprefix(f"/{forge_kind}/git")
        full = path_info.split(".git/", 1)[0].strip("/")
        with forge.lock:
            project = forge.gitlab_find(full) if forge_kind == "gitlab" else None
            known = full in forge.github_repos if forge_kind == "github" else bool(project)
            if project and project["marked_for_deletion_at"]:
                known = False
        if not known:
            return self._send(404, b"Repository not found\n", {"Content-Type": "text/plain"})
        if path_info.endswith("/git-receive-pack") and forge.refuse_pushes is not None:
            _hook(forge.bare(forge_kind, full), forge.refuse_pushes)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(forge.root / forge_kind),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "runway",
            "REMOTE_ADDR": "127.0.0.1",
            "PATH_INFO": path_info,
            "QUERY_STRING": urlsplit(self.path).query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(self.body)),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        result = subprocess.run(["git", "http-backend"], input=self.body, env=env, capture_output=True, timeout=60)
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers[key] = value.strip()
        self._send(status, body, headers)


def _kind(path: str) -> str | None:
    if path.startswith(GITHUB_API + "/"):
        return "github"
    if path.startswith(GITLAB_API + "/"):
        return "gitlab"
    if path.startswith("/github/git/"):
        return "github-git"
    if path.startswith("/gitlab/git/"):
        return "gitlab-git"
    return None


def _remove(bare: Path) -> None:
    shutil.rmtree(bare)
