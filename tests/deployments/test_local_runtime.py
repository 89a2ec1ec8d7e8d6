"""The local runtime against real processes: a tiny stdlib HTTP app in a real git repository, run by supervisord.

One supervisord serves the whole module (starting one per test would cost seconds each); every test deploys its
own service slug so tests cannot see each other's replicas. The module's teardown shuts supervisord down.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from deployments.runtimes import local
from deployments.runtimes.base import Context, StepFailed
from deployments.runtimes.local import LocalRuntime, window_size

APP = """\
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT_STATUS = {root}
HEALTH_STATUS = {health}
COUNTS = {{}}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/metrics":
            with LOCK:
                lines = [f'http_requests_total{{{{status="{{s}}"}}}} {{n}}' for s, n in sorted(COUNTS.items())]
            text = "# TYPE http_requests_total counter\\n" + "".join(line + "\\n" for line in lines)
            return self.reply(200, text)
        if self.path == "/healthz":
            return self.reply(HEALTH_STATUS, "ok")
        with LOCK:
            COUNTS[ROOT_STATUS] = COUNTS.get(ROOT_STATUS, 0) + 1
        self.reply(ROOT_STATUS, os.environ["RUNWAY_VERSION"])

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler).serve_forever()
"""
PYTHON = shlex.quote(sys.executable)
BUILD = f"{PYTHON} -c \"open('built.txt', 'w').write('built')\""
RUNWAY = {"build": BUILD, "start": f"{PYTHON} app.py", "port_env": "APP_PORT", "health": "/healthz"}
FAST = {"health_timeout_seconds": 3}


@dataclass(frozen=True)
class Repo:
    bare: Path
    good: str  # v1
    good2: str  # v2, healthy
    broken_health: str  # /healthz answers 500
    bad_canary: str  # / answers 500, /healthz is fine
    failing_build: str
    no_runway: str


def _git(*args: str, cwd: Path) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    work = tmp_path_factory.mktemp("work")
    _git("init", "--quiet", "--initial-branch=main", cwd=work)

    def commit(message: str, *, root: int = 200, health: int = 200, runway: dict[str, str] | None = RUNWAY) -> str:
        (work / "app.py").write_text(APP.format(root=root, health=health) + f"# {message}\n")
        if runway is None:
            (work / "runway.yaml").unlink(missing_ok=True)
        else:
            (work / "runway.yaml").write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in runway.items()))
        _git("add", "--all", cwd=work)
        _git("commit", "--quiet", "-m", message, cwd=work)
        return _git("rev-parse", "HEAD", cwd=work).strip()

    shas = {
        "good": commit("v1"),
        "good2": commit("v2"),
        "broken_health": commit("broken health", health=500),
        "bad_canary": commit("bad canary", root=500),
        "failing_build": commit("failing build", runway=RUNWAY | {"build": f'{PYTHON} -c "raise SystemExit(3)"'}),
        "no_runway": commit("no runway", runway=None),
    }
    bare = tmp_path_factory.mktemp("git") / "app.git"
    _git("clone", "--quiet", "--bare", "--", str(work), str(bare), cwd=work)
    return Repo(bare=bare, **shas)


@pytest.fixture(scope="module")
def deploy_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("deploy")
    yield root
    with override_settings(DEPLOY_ROOT=root):
        socket = local.socket_path()
        local.supervisord_shutdown()
        assert not socket.exists()


@pytest.fixture
def runtime(settings, deploy_root: Path) -> LocalRuntime:
    settings.DEPLOY_ROOT = deploy_root
    return LocalRuntime()


def ctx(repo: Repo, service: str, sha: str, version: str, previous: tuple[str, str] | None = None, **config) -> Context:
    return Context(
        deployment_id=1,
        service=service,
        environment="staging",
        version=version,
        commit_sha=sha,
        repository=str(repo.bare),
        previous_commit_sha=previous[0] if previous else None,
        previous_version=previous[1] if previous else None,
        config=FAST | config,
    )


def running(runtime: LocalRuntime, service: str) -> list[dict]:
    return [row for row in runtime.endpoints(service, "staging") if row["state"] == "RUNNING"]


def answer(port: int, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2, trust_env=False)


def wait_for_state(runtime: LocalRuntime, service: str, program: str, state: str) -> None:
    deadline = time.monotonic() + 20  # generous: only a failing test waits this long
    while time.monotonic() < deadline:
        if any(row["program"] == program and row["state"] == state for row in runtime.endpoints(service, "staging")):
            return
        time.sleep(0.05)
    raise AssertionError(f"{program} never reached {state}")


def deploy_v1(runtime: LocalRuntime, repo: Repo, service: str, replicas: int) -> Context:
    first = ctx(repo, service, repo.good, "1.0.0")
    runtime.prepare(first)
    runtime.scale(first, replicas=replicas)
    runtime.finalize(first)
    return first


def test_prepare_and_scale_start_replicas_answering_on_loopback(runtime: LocalRuntime, repo: Repo, deploy_root):
    context = ctx(repo, "alpha", repo.good, "1.0.0")
    runtime.prepare(context)
    checkout = deploy_root / "alpha" / "staging" / repo.good
    assert (checkout / "built.txt").read_text() == "built"

    runtime.scale(context, replicas=2)

    rows = running(runtime, "alpha")
    assert len(rows) == 2 and len({row["port"] for row in rows}) == 2
    for row in rows:
        assert answer(row["port"]).text == "1.0.0"
        assert row["program"].startswith(f"rwy-alpha.staging-{repo.good[:10]}-")
    assert sorted(entry["port"] for entry in context.state["new"]) == sorted(row["port"] for row in rows)

    runtime.stop_all(service="alpha", environment="staging")
    assert runtime.endpoints("alpha", "staging") == []
    assert not list((deploy_root / "supervisor" / "conf.d").glob("rwy-alpha.*"))


def test_scale_is_idempotent_and_rediscovers_replicas_from_supervisord(runtime: LocalRuntime, repo: Repo, deploy_root):
    context = ctx(repo, "bravo", repo.good, "1.0.0")
    runtime.scale(context, replicas=2)  # prepares on its own when needed
    programs = {row["program"] for row in running(runtime, "bravo")}

    runtime.scale(context, replicas=2)
    # A worker that died before saving ctx.state: a fresh context finds the same replicas, starts none.
    runtime.scale(ctx(repo, "bravo", repo.good, "1.0.0"), replicas=2)
    assert {row["program"] for row in running(runtime, "bravo")} == programs

    # A stop interrupted after its file was deleted: the next call finishes it and starts a replacement.
    orphan = running(runtime, "bravo")[0]
    (deploy_root / "supervisor" / "conf.d" / f"{orphan['program']}.ini").unlink()
    runtime.scale(context, replicas=2)
    rows = running(runtime, "bravo")
    assert len(rows) == 2 and orphan["port"] not in {row["port"] for row in rows}
    with pytest.raises(httpx.ConnectError):
        answer(orphan["port"])

    runtime.scale(context, replicas=1)
    assert len(running(runtime, "bravo")) == 1
    runtime.stop_all(service="bravo", environment="staging")


def test_canary_is_observed_against_the_baseline_then_finalized(runtime: LocalRuntime, repo: Repo):
    deploy_v1(runtime, repo, "charlie", replicas=2)
    context = ctx(repo, "charlie", repo.good2, "2.0.0", previous=(repo.good, "1.0.0"), analysis_requests=10)
    runtime.prepare(context)
    runtime.scale(context, replicas=1)
    runtime.route(context, share=50)

    observation = runtime.observe(context)

    assert observation.metric_error == ""
    assert observation.baseline is not None
    canary, baseline = observation.canary, observation.baseline
    # 10 doubled at a 50 % share; the old release's two replicas get as many each.
    assert canary.requests == 20 and baseline.requests == 40
    assert canary.errors == 0 and baseline.errors == 0
    assert len(canary.latencies_ms) == 20 and all(value > 0 for value in canary.latencies_ms)
    assert canary.probes == canary.probes_ok == 3  # three probe rounds over one replica
    assert baseline.probes == baseline.probes_ok == 6  # ...and over two

    runtime.finalize(context)
    runtime.finalize(context)
    rows = running(runtime, "charlie")
    assert [row["version"] for row in rows] == ["2.0.0"]
    assert runtime.endpoints("charlie", "staging") == rows
    runtime.stop_all(service="charlie", environment="staging")


def test_a_canary_answering_500_shows_its_errors(runtime: LocalRuntime, repo: Repo):
    deploy_v1(runtime, repo, "delta", replicas=1)
    context = ctx(repo, "delta", repo.bad_canary, "2.0.0", previous=(repo.good, "1.0.0"), analysis_requests=20)
    runtime.scale(context, replicas=1)
    runtime.route(context, share=10)

    observation = runtime.observe(context)

    assert observation.baseline is not None
    # The canary gets its 20 whatever its 10 % share, and the baseline's one replica as many.
    assert observation.canary.requests == 20
    assert observation.canary.errors == 20
    assert observation.baseline.requests == 20 and observation.baseline.errors == 0
    assert observation.canary.probes_ok == observation.canary.probes  # it is healthy, just wrong
    runtime.stop_all(service="delta", environment="staging")


def test_failing_health_check_fails_the_step_and_rollback_leaves_only_the_old_release(
    runtime: LocalRuntime, repo: Repo
):
    deploy_v1(runtime, repo, "echo", replicas=2)
    context = ctx(repo, "echo", repo.broken_health, "2.0.0", previous=(repo.good, "1.0.0"), health_timeout_seconds=2)

    with pytest.raises(StepFailed, match=r"did not pass its health check at /healthz: it answered 500"):
        runtime.scale(context, replicas=1)
    runtime.rollback(context)
    runtime.rollback(context)

    rows = runtime.endpoints("echo", "staging")
    assert [(row["version"], row["state"]) for row in rows] == [("1.0.0", "RUNNING"), ("1.0.0", "RUNNING")]
    assert all(answer(row["port"]).text == "1.0.0" for row in rows)
    assert context.state["share"] == 0 and context.state["new"] == []
    runtime.stop_all(service="echo", environment="staging")


def test_rollback_restarts_an_old_replica_that_was_killed(runtime: LocalRuntime, repo: Repo):
    deploy_v1(runtime, repo, "foxtrot", replicas=1)
    context = ctx(repo, "foxtrot", repo.good2, "2.0.0", previous=(repo.good, "1.0.0"))
    runtime.scale(context, replicas=1)
    [old] = [row for row in runtime.endpoints("foxtrot", "staging") if row["version"] == "1.0.0"]
    os.kill(old["pid"], signal.SIGKILL)
    wait_for_state(runtime, "foxtrot", old["program"], "EXITED")

    runtime.rollback(context)

    assert [row["program"] for row in running(runtime, "foxtrot")] == [old["program"]]
    assert answer(old["port"]).text == "1.0.0"
    runtime.stop_all(service="foxtrot", environment="staging")


def test_rollback_brings_back_old_replicas_retired_during_a_rolling_update(runtime: LocalRuntime, repo: Repo):
    deploy_v1(runtime, repo, "golf", replicas=2)
    context = ctx(repo, "golf", repo.good2, "2.0.0", previous=(repo.good, "1.0.0"))
    runtime.scale(context, replicas=1)
    runtime.retire_old(context, keep=1)
    runtime.retire_old(context, keep=1)
    runtime.scale(context, replicas=2)
    runtime.retire_old(context, keep=0)
    assert [row["version"] for row in running(runtime, "golf")] == ["2.0.0", "2.0.0"]

    runtime.rollback(context)

    assert [row["version"] for row in running(runtime, "golf")] == ["1.0.0", "1.0.0"]
    runtime.stop_all(service="golf", environment="staging")


def test_a_replica_killed_during_bake_shows_as_failed_probes(runtime: LocalRuntime, repo: Repo):
    deploy_v1(runtime, repo, "hotel", replicas=1)
    context = ctx(repo, "hotel", repo.good2, "2.0.0", previous=(repo.good, "1.0.0"), analysis_requests=10)
    runtime.scale(context, replicas=1)
    runtime.route(context, share=50)
    [new] = [row for row in runtime.endpoints("hotel", "staging") if row["version"] == "2.0.0"]
    os.kill(new["pid"], signal.SIGKILL)
    wait_for_state(runtime, "hotel", new["program"], "EXITED")

    observation = runtime.observe(context)

    assert observation.canary.probes == 3 and observation.canary.probes_ok == 0
    assert observation.canary.requests == 20 and observation.canary.errors == 20
    assert observation.baseline is not None and observation.baseline.errors == 0
    assert f"could not read metrics of replica {new['program']}" in observation.metric_error
    runtime.stop_all(service="hotel", environment="staging")


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("no_runway", r"has no runway\.yaml"),
        ("failing_build", r"exited with 3"),
    ],
)
def test_a_release_that_cannot_be_built_fails_the_step(runtime: LocalRuntime, repo: Repo, which: str, message: str):
    context = ctx(repo, "india", getattr(repo, which), "3.0.0")
    with pytest.raises(StepFailed, match=message):
        runtime.prepare(context)


def test_an_unknown_commit_fails_the_step(runtime: LocalRuntime, repo: Repo):
    with pytest.raises(StepFailed, match=r"is not in the repository"):
        runtime.prepare(ctx(repo, "juliet", "0123456789abcdef" * 2 + "01234567", "1.0.0"))


@pytest.mark.parametrize(("service", "environment"), [("../escape", "staging"), ("ok", "../../tmp"), ("a/b", "x")])
def test_identifiers_that_could_leave_the_deploy_root_are_refused(
    runtime: LocalRuntime, repo: Repo, deploy_root: Path, service: str, environment: str
):
    context = ctx(repo, service, repo.good, "1.0.0")
    context.environment = environment
    before = set(deploy_root.parent.iterdir())
    with pytest.raises(ValueError, match="slug"):
        runtime.prepare(context)
    with pytest.raises(ValueError, match="slug"):
        runtime.stop_all(service=service, environment=environment)
    assert set(deploy_root.parent.iterdir()) == before


def test_the_socket_moves_to_a_short_path_when_the_deploy_root_is_long(settings, tmp_path: Path):
    settings.DEPLOY_ROOT = tmp_path / ("long-folder-name-" * 8)
    path = local.socket_path()
    assert len(os.fsencode(path)) <= 100
    assert path != settings.DEPLOY_ROOT / "supervisor" / "supervisord.sock"


@pytest.mark.parametrize(
    ("config", "share", "sets", "expected"),
    [
        ({}, 10, (1, 2), (400, 800)),  # as many per replica: the old release's two replicas get 400 each
        ({}, 25, (1, 1), (400, 400)),
        ({}, 50, (1, 1), (800, 800)),  # more traffic on the canary, more requests judged
        ({}, 75, (3, 1), (1200, 400)),
        ({}, 100, (2, 2), (1600, 0)),  # all traffic on the new release: nothing to the old
        ({}, None, (2, 2), (800, 800)),  # no share recorded yet (blue-green before its switch): by replica count
        ({}, 10, (1, 0), (400, 0)),  # a first deployment has no baseline
        ({"analysis_requests": 3}, 10, (1, 1), (10, 10)),  # never under what the judge needs to say anything
        ({"analysis_requests": 10**9}, 50, (1, 1), (10_000, 10_000)),
    ],
)
def test_the_window_gives_the_canary_its_requests_whatever_its_share(config, share, sets, expected) -> None:
    assert window_size(config, share, new=sets[0], old=sets[1]) == expected
