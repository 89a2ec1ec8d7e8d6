"""The "local" runtime, the embedded default: releases run as real processes on the portal's own machine.

`prepare` checks the release's commit out of its (local, bare) git repository into
`DEPLOY_ROOT/<service>/<environment>/<commit>/` and runs the build command from the checkout's `runway.yaml`.
Replicas are OS processes under a supervisord that belongs to this runtime (config and socket under
`DEPLOY_ROOT/supervisor/`). It is started on first use and daemonizes, so replicas outlive Celery worker restarts;
after a reboot it comes back on the next call and starts every replica its include files still describe.

State lives in two places that must agree: one include file per replica (`conf.d/<program>.ini`, whose first line
records service, environment, commit, version and port) says what *should* run, and supervisord says what *does*.
Every call first reconciles the two, so a worker that dies between starting a process and saving `ctx.state`
neither loses nor duplicates a replica; `ctx.state` only keeps a snapshot for people (and the one fact supervisord
cannot know: how many replicas of the previous release ran before this deployment began retiring them).

Traffic share, honestly: this runtime puts no proxy in front of the replicas. Each replica listens on its own
loopback port and nothing routes user traffic between releases, so `route()` only records the share. What the share
controls is the analysis traffic: during `observe()` the portal itself sends its probe requests to the new and the
old release (more to the new one as its share grows; `window_size`), and the verdict is drawn from how each release
answered them (plus the replicas' own request counters). It measures whether the new release works; it does not
shield users from it.

Program names are `rwy-<service>.<environment>-<commit[:10]>-<n>`: slugs never contain a dot, so the name parses
back unambiguously, and `n` is the first free number, so two releases of one commit never collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.client
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from supervisor.xmlrpc import Faults, SupervisorTransport

from deployments.runtimes.base import Context, Observation, Runtime, Samples, StepFailed

SLUG = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?\Z")
COMMIT = re.compile(r"\A[0-9a-f]{40}\Z")
VERSION = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,79}\Z")
ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
HTTP_PATH = re.compile(r"\A/[^\s\x00-\x1f\x7f]{0,199}\Z")
PROGRAM = re.compile(
    r"\Arwy-(?P<service>[a-z0-9-]+)\.(?P<environment>[a-z0-9-]+)-(?P<short>[0-9a-f]{10})-(?P<index>[0-9]+)\Z"
)

RUNWAY_FILE = "runway.yaml"
RUNWAY_KEYS = frozenset({"build", "start", "port_env", "health", "metrics"})
BUILT_MARKER = ".runway-built"
META_PREFIX = "; runway: "
# AF_UNIX paths are limited to 108 bytes on Linux and 104 on macOS; keep clear of both.
SOCKET_PATH_LIMIT = 100
# supervisord's vocabulary; BACKOFF counts as alive because supervisord is still trying to start the process.
ALIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})
RPC_TIMEOUT_SECONDS = 30.0  # generous: reloadConfig re-reads every include file, but a wedged daemon must not hang us
STOP_SECONDS = 15.0  # a replica gets stopwaitsecs=10 to exit on SIGTERM before supervisord kills it
HTTP_TIMEOUT_SECONDS = 2.0
MIN_CANARY_REQUESTS = 10  # analysis.Thresholds.min_requests: with fewer, every analysis is inconclusive
# The canary's analysis requests a window (a deploy target's `analysis_requests` overrides it), and how many go out
# at once. 400 a window is what a service at 40 requests a second sends a 10 % canary in a 100 s bake; three windows
# (1,200 requests) is what it takes to tell a 1 % error rate from a healthy one (docs/safe-delivery.md).
ANALYSIS_REQUESTS = 400
MAX_ANALYSIS_REQUESTS = 10_000
ANALYSIS_CONCURRENCY = 8


# --- paths and validation ------------------------------------------------------------------------------------------


def _deploy_root() -> Path:
    return Path(getattr(settings, "DEPLOY_ROOT", Path(settings.VAR_DIR) / "deploy"))


def _supervisor_dir() -> Path:
    return _deploy_root() / "supervisor"


def _conf_dir() -> Path:
    return _supervisor_dir() / "conf.d"


def _log_dir() -> Path:
    return _deploy_root() / "logs"


def socket_path() -> Path:
    """Where supervisord listens: under DEPLOY_ROOT, or in the temp dir (keyed by DEPLOY_ROOT) if that is too long."""
    preferred = _supervisor_dir() / "supervisord.sock"
    if len(os.fsencode(preferred)) <= SOCKET_PATH_LIMIT:
        return preferred
    digest = hashlib.sha256(os.fsencode(_deploy_root().resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"runway-supervisor-{digest}.sock"


def _slug(value: str, what: str) -> str:
    # Slugs become folder and program names: anything else could climb out of DEPLOY_ROOT or forge config.
    if not SLUG.match(value):
        raise ValueError(f"{value!r} is not a valid {what} slug (lowercase letters, digits and hyphens).")
    return value


def _commit(value: str) -> str:
    if not COMMIT.match(value):
        raise ValueError(f"{value!r} is not a commit: expected 40 lowercase hexadecimal digits.")
    return value


def _lock_path(service: str, environment: str) -> Path:
    return _supervisor_dir() / "locks" / f"{service}.{environment}.lock"


def _checkout_dir(service: str, environment: str, commit: str) -> Path:
    return _deploy_root() / _slug(service, "service") / _slug(environment, "environment") / _commit(commit)


def _ini_value(value: str) -> str:
    """`value` made safe for supervisord's config parser, which expands %(...)s and ends a value at ` ;` or ` #`."""
    if re.search(r"[\x00-\x1f\x7f]|\s[;#]", value):
        raise ValueError(f"{value!r} cannot be written to a supervisord config (control character, or ' ;'/' #').")
    return value.replace("%", "%%")


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes: two workers must not start supervisord, or the same replicas, twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: builds and replicas must never see the portal's secrets (database URL, keys...)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
    }
    return env | (extra or {})


def _tail(path: Path, lines: int = 8) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4000))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


# --- the release: checkout, runway.yaml, build ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseConfig:
    """A release's `runway.yaml`: how to build it, start it, tell it its port, and where it answers."""

    build: str
    start: str
    port_env: str
    health: str
    metrics: str


def _release_config(checkout: Path, commit: str) -> ReleaseConfig:
    where = f"{RUNWAY_FILE} at commit {commit[:10]}"
    path = checkout / RUNWAY_FILE
    if not path.is_file():
        raise StepFailed(
            f"The commit {commit[:10]} has no {RUNWAY_FILE}: add one at the repository root with at least "
            "`start: <command that starts the service>` (optionally build, port_env, health, metrics)."
        )
    if path.stat().st_size > 64_000:
        raise StepFailed(f"{where} is larger than 64 KB: keep it to the five runway keys.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise StepFailed(f"{where} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise StepFailed(f"{where} must be a mapping of keys (build, start, port_env, health, metrics).")
    unknown = sorted(str(key) for key in data if key not in RUNWAY_KEYS)
    if unknown:
        raise StepFailed(f"{where} has unknown keys {', '.join(unknown)}: use build, start, port_env, health, metrics.")

    def text(key: str, default: str) -> str:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or re.search(r"[\x00-\x1f\x7f]", value):
            raise StepFailed(f"{where}: `{key}` must be a one-line string.")
        return value.strip()

    config = ReleaseConfig(
        build=text("build", ""),
        start=text("start", ""),
        port_env=text("port_env", "PORT"),
        health=text("health", "/healthz"),
        metrics=text("metrics", "/metrics"),
    )
    if not config.start:
        raise StepFailed(
            f"{where} has no `start`: add the command that starts the service, e.g. `start: python app.py`."
        )
    if not ENV_NAME.match(config.port_env):
        raise StepFailed(f"{where}: `port_env` must be an environment variable name such as PORT.")
    for key in ("health", "metrics"):
        if not HTTP_PATH.match(getattr(config, key)):
            raise StepFailed(f"{where}: `{key}` must be a path starting with / (no spaces), e.g. /{key}.")
    return config


def _endpoint_paths(service: str, environment: str, commit: str) -> tuple[str, str]:
    """(health, metrics) of a prepared release; the defaults if its checkout has gone (it may have been cleaned)."""
    try:
        config = _release_config(_checkout_dir(service, environment, commit), commit)
    except StepFailed:
        return "/healthz", "/metrics"
    return config.health, config.metrics


def _split(command: str, what: str, commit: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise StepFailed(f"The {what} command in {RUNWAY_FILE} at {commit[:10]} cannot be parsed: {error}.") from error
    if not argv:
        raise StepFailed(f"The {what} command in {RUNWAY_FILE} at {commit[:10]} is empty.")
    return argv


def _start_argv(checkout: Path, config: ReleaseConfig, commit: str) -> list[str]:
    """The start command, with a relative program path made absolute: supervisord resolves it from its own cwd."""
    argv = _split(config.start, "start", commit)
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        argv[0] = str(checkout / argv[0])
    return argv


def _git(args: list[str], *, git_dir: Path) -> subprocess.CompletedProcess[str]:
    # GIT_DIR in the environment (not a -C/--git-dir argument) so a path can never be read as an option, and git
    # never wanders up into an enclosing repository.
    env = _child_env({"GIT_DIR": str(git_dir), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"})
    return subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _git_dir(repository: str) -> Path:
    if not repository:
        raise StepFailed(
            "The service has no repository: set one in the catalog before deploying with the local runtime."
        )
    path = Path(repository)
    if "://" in repository or not path.is_absolute() or not path.is_dir():
        raise StepFailed(
            f"The local runtime deploys from git repositories on this machine; {repository!r} is not an existing "
            "absolute path to one."
        )
    return path / ".git" if (path / ".git").is_dir() else path


def _extract(git_dir: Path, commit: str, target: Path) -> None:
    """Write the commit's tree into `target`, refusing links or paths that would land outside it."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        archive = Path(scratch) / "release.tar"
        result = _git(["archive", "--format=tar", f"--output={archive}", commit], git_dir=git_dir)
        if result.returncode != 0:
            raise StepFailed(f"git could not export commit {commit[:10]}: {result.stderr.strip()[:300]}")
        staging = Path(scratch) / "tree"
        staging.mkdir()
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="data")
        except tarfile.FilterError as error:
            raise StepFailed(f"Commit {commit[:10]} contains a path or link leaving its folder: {error}") from error
        staging.rename(target)


def _build(checkout: Path, config: ReleaseConfig, commit: str, *, version: str, timeout: float) -> None:
    argv = _split(config.build, "build", commit)
    log = _log_dir() / f"build-{checkout.parent.parent.name}.{checkout.parent.name}-{commit[:10]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            argv,
            cwd=checkout,
            env=_child_env({"RUNWAY_VERSION": version}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise StepFailed(
            f"The build command {argv[0]!r} was not found: install it or fix `build` in runway.yaml."
        ) from error
    except subprocess.TimeoutExpired as error:
        raise StepFailed(f"The build did not finish within {timeout:.0f} s: make it faster or split it.") from error
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise StepFailed(f"The build command `{config.build}` exited with {result.returncode}; fix the build:\n{tail}")


def _check_start(checkout: Path, config: ReleaseConfig, commit: str) -> None:
    """Refuse a start command that cannot run before any replica tries (and fails less clearly) to run it."""
    argv = _start_argv(checkout, config, commit)
    program = argv[0]
    found = os.access(program, os.X_OK) if "/" in program else shutil.which(program, path=_child_env()["PATH"])
    if not found:
        raise StepFailed(
            f"The start command's program {program!r} is not an executable file (or not on the PATH): fix `start` in "
            "runway.yaml, or make the build create it."
        )
    try:
        _ini_value(shlex.join(argv))
    except ValueError as error:
        raise StepFailed(f"The start command cannot be run by supervisord ({error}): wrap it in a script.") from error


def _prepare(
    *, service: str, environment: str, commit: str, repository: str, version: str, build_timeout: float
) -> tuple[Path, ReleaseConfig]:
    """Check `commit` out and build it, once: a marker written after a successful build makes later calls free."""
    checkout = _checkout_dir(service, environment, commit)
    if (checkout / BUILT_MARKER).is_file():
        return checkout, _release_config(checkout, commit)
    git_dir = _git_dir(repository)
    if _git(["cat-file", "-e", f"{commit}^{{commit}}"], git_dir=git_dir).returncode != 0:
        raise StepFailed(
            f"Commit {commit} is not in the repository {repository}: push it there, or release a commit that exists."
        )
    # A folder without the marker is a checkout whose build failed or was interrupted: start again from clean.
    if checkout.exists():
        shutil.rmtree(checkout)
    checkout.parent.mkdir(parents=True, exist_ok=True)
    _extract(git_dir, commit, checkout)
    config = _release_config(checkout, commit)
    if config.build:
        _build(checkout, config, commit, version=version, timeout=build_timeout)
    _check_start(checkout, config, commit)
    (checkout / BUILT_MARKER).write_text(f"{version}\n", encoding="utf-8")
    return checkout, config


# --- supervisord ---------------------------------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    """supervisor's own Unix connection has no timeout; a wedged supervisord must not hang a worker forever."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(SupervisorTransport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(None, None, serverurl=f"unix://{path}")
        self._get_connection = functools.partial(_UnixConnection, path, timeout)


def _supervisord_command(config: Path) -> list[str]:
    # The binary installed next to this interpreter is the one whose version we pinned; `-m` works without it.
    binary = Path(sys.executable).parent / "supervisord"
    if binary.is_file() and os.access(binary, os.X_OK):
        return [str(binary), "-c", str(config)]
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)]


def _supervisord_config() -> str:
    folder = _supervisor_dir()
    return "\n".join(
        [
            "; Written by deployments.runtimes.local; rewritten on every start, edits are lost.",
            "[unix_http_server]",
            f"file={_ini_value(str(socket_path()))}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={_ini_value(str(folder / 'supervisord.log'))}",
            "logfile_maxbytes=5MB",
            "logfile_backups=2",
            f"pidfile={_ini_value(str(folder / 'supervisord.pid'))}",
            f"childlogdir={_ini_value(str(_log_dir()))}",
            f"directory={_ini_value(str(folder))}",
            "identifier=runway-local",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{_ini_value(str(socket_path()))}",
            "",
            # Relative to this file, because supervisord splits `files` on whitespace and DEPLOY_ROOT may hold some.
            "[include]",
            "files = conf.d/*.ini",
            "",
        ]
    )


def _state(info: dict[str, Any] | None) -> str:
    """supervisord's state name for a process, reading "added, not yet autostarted" as the STARTING it is about to be.

    A group added over XML-RPC sits in STOPPED (never started) until supervisord's next loop spawns it; taken at face
    value, a health check looking in that instant would declare a brand-new replica dead.
    """
    if info is None:
        return "REMOVED"
    if info["statename"] == "STOPPED" and not info.get("start"):
        return "STARTING"
    return str(info["statename"])


def _fault(error: xmlrpc.client.Fault, *codes: int) -> bool:
    return error.faultCode in codes


class _Supervisor:
    """One conversation with the runtime's supervisord over XML-RPC on its Unix socket."""

    def __init__(self, *, timeout: float = RPC_TIMEOUT_SECONDS) -> None:
        self._transport = _Transport(str(socket_path()), timeout)
        # The host part is ignored: the transport always talks to the socket.
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self._transport)
        self.rpc: Any = self._proxy.supervisor

    def close(self) -> None:
        self._transport.close()

    def answers(self) -> bool:
        try:
            self.rpc.getState()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            self._transport.close()
            return False
        return True

    def ensure_running(self) -> None:
        """Start supervisord if its socket does not answer; it daemonizes, so it outlives this worker."""
        if self.answers():
            return
        folder = _supervisor_dir()
        with _flock(folder / "start.lock"):
            if self.answers():
                return
            for needed in (_conf_dir(), _log_dir()):
                needed.mkdir(parents=True, exist_ok=True)
            config = folder / "supervisord.conf"
            _write_atomic(config, _supervisord_config())
            start_log = folder / "start.log"
            with open(start_log, "ab") as output:
                # The parent returns once the sockets are bound and the daemon has forked off.
                subprocess.run(
                    _supervisord_command(config),
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    timeout=30,
                    check=False,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 10
            while not self.answers():
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"supervisord did not start (socket {socket_path()}): "
                        f"{_tail(start_log) or _tail(folder / 'supervisord.log')}"
                    )
                time.sleep(0.1)

    def processes(self) -> dict[str, dict[str, Any]]:
        return {info["name"]: info for info in self.rpc.getAllProcessInfo() if info["group"] == info["name"]}

    def reload(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read the include files; returns the groups (added, changed, removed) relative to what runs."""
        try:
            [[added, changed, removed]] = self.rpc.reloadConfig()
        except xmlrpc.client.Fault as error:
            raise RuntimeError(f"supervisord cannot read its config: {error.faultString}") from error
        return added, changed, removed

    def add(self, program: str) -> None:
        try:
            self.rpc.addProcessGroup(program)
        except xmlrpc.client.Fault as error:
            # Another worker's reconcile may have added it first.
            if not _fault(error, Faults.ALREADY_ADDED):
                raise

    def start(self, program: str) -> None:
        """Spawn now rather than on supervisord's next loop (up to a second later); a spawn error is the release's."""
        try:
            self.rpc.startProcess(program, False)
        except xmlrpc.client.Fault as error:
            if _fault(error, Faults.NO_FILE, Faults.NOT_EXECUTABLE, Faults.SPAWN_ERROR):
                raise StepFailed(f"replica {program} could not be started: {error.faultString}") from error
            if not _fault(error, Faults.ALREADY_STARTED):
                raise

    def remove(self, programs: list[str]) -> None:
        """Stop these groups together, then drop them from supervisord; groups already gone are fine.

        Together, because supervisord notices a child's exit only on its next loop (up to a second later): one by
        one, stopping ten replicas would take ten seconds.
        """
        pending = []
        for program in programs:
            try:
                self.rpc.stopProcessGroup(program, False)
            except xmlrpc.client.Fault as error:
                if not _fault(error, Faults.BAD_NAME):
                    raise
            else:
                pending.append(program)
        deadline = time.monotonic() + STOP_SECONDS
        while pending:
            for program in list(pending):
                try:
                    self.rpc.removeProcessGroup(program)
                except xmlrpc.client.Fault as error:
                    if _fault(error, Faults.STILL_RUNNING):
                        continue
                    if not _fault(error, Faults.BAD_NAME):
                        raise
                pending.remove(program)
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"supervisord did not stop {', '.join(pending)} within {STOP_SECONDS:.0f} s.")
                time.sleep(0.1)


@contextlib.contextmanager
def _supervisor() -> Iterator[_Supervisor]:
    supervisor = _Supervisor()
    try:
        supervisor.ensure_running()
        yield supervisor
    finally:
        supervisor.close()


def _listening() -> bool:
    """Whether supervisord still holds its socket: while shutting down it faults every RPC but still stops replicas."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(socket_path()))
        except OSError:
            return False
    return True


def supervisord_shutdown(timeout: float = 20.0) -> None:
    """Stop the runtime's supervisord and every replica under it (tests' teardown; operators switching roots)."""
    supervisor = _Supervisor()
    try:
        if not supervisor.answers():
            return
        with contextlib.suppress(OSError, xmlrpc.client.Error, http.client.HTTPException):
            supervisor.rpc.shutdown()
        supervisor.close()
        deadline = time.monotonic() + timeout
        while _listening():  # not answers(): it is False as soon as the shutdown begins, with replicas still running
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord at {socket_path()} did not shut down within {timeout:.0f} s.")
            time.sleep(0.1)
    finally:
        supervisor.close()


def supervisord_pid() -> int | None:
    """The pid of the runtime's supervisord when one answers on its socket, else None."""
    supervisor = _Supervisor(timeout=5.0)
    try:
        return int(supervisor.rpc.getPID()) if supervisor.answers() else None
    finally:
        supervisor.close()


def supervisord_restore() -> int:
    """Start supervisord if replicas are configured and none runs (the machine, or `make run`, was stopped): it starts
    them itself (autostart), so what the environments page says is deployed answers again. Returns how many."""
    replicas = _configured()
    if replicas:
        with _supervisor():
            pass
    return len(replicas)


def _write_atomic(path: Path, text: str) -> None:
    # The temporary name does not match conf.d/*.ini, so supervisord never reads a half-written file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


# --- replicas ------------------------------------------------------------------------------------------------------


@dataclass
class Replica:
    """One replica as its include file describes it, with supervisord's view of its process."""

    program: str
    service: str
    environment: str
    commit: str
    version: str
    port: int
    state: str = "UNKNOWN"
    description: str = ""

    @property
    def index(self) -> int:
        match = PROGRAM.match(self.program)
        return int(match["index"]) if match else 0

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def public(self) -> dict[str, Any]:
        return {"program": self.program, "port": self.port, "version": self.version, "commit": self.commit}


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except OSError:
        return None  # removed by another worker since the listing
    if not first.startswith(META_PREFIX):
        return None
    try:
        meta = json.loads(first[len(META_PREFIX) :])
    except json.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


def _configured(service: str | None = None, environment: str | None = None) -> list[Replica]:
    """The replicas the include files describe (what should run), optionally for one service and environment."""
    replicas = []
    folder = _conf_dir()
    for path in sorted(folder.glob("rwy-*.ini")) if folder.is_dir() else []:
        meta = _read_meta(path)
        # Files not written by this runtime (or edited by hand past recognition) are not ours to manage.
        if meta is None or path.stem != meta.get("program"):
            continue
        if service is not None and (meta.get("service"), meta.get("environment")) != (service, environment):
            continue
        try:
            replica = Replica(
                program=path.stem,
                service=str(meta["service"]),
                environment=str(meta["environment"]),
                commit=str(meta["commit"]),
                version=str(meta["version"]),
                port=int(meta["port"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        replicas.append(replica)
    return replicas


def _ours(program: str, service: str, environment: str) -> bool:
    match = PROGRAM.match(program)
    return match is not None and (match["service"], match["environment"]) == (service, environment)


def _free_port(taken: set[int]) -> int:
    # Binding port 0 asks the kernel for a free port; ports recorded for stopped replicas stay reserved for them.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port


def _program_ini(replica: Replica, checkout: Path, config: ReleaseConfig) -> str:
    logs = _log_dir()
    # VERSION is what the shipped golden paths read (app/config.py); RUNWAY_VERSION stays for existing services.
    env = {"RUNWAY_VERSION": replica.version, "VERSION": replica.version, config.port_env: str(replica.port)}
    meta = {
        "program": replica.program,
        "service": replica.service,
        "environment": replica.environment,
        "commit": replica.commit,
        "version": replica.version,
        "port": replica.port,
    }
    return "\n".join(
        [
            META_PREFIX + json.dumps(meta, sort_keys=True),
            f"[program:{replica.program}]",
            f"command={_ini_value(shlex.join(_start_argv(checkout, config, replica.commit)))}",
            f"directory={_ini_value(str(checkout))}",
            "environment=" + ",".join(f'{key}="{value}"' for key, value in env.items()),
            "autostart=true",
            # No automatic restarts: a replica that crashes must show up in the analysis, not be quietly revived.
            "autorestart=false",
            "startsecs=0",
            "startretries=0",
            "stopsignal=TERM",
            "stopwaitsecs=10",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={_ini_value(str(logs / f'{replica.program}.out.log'))}",
            "stdout_logfile_maxbytes=5MB",
            "stdout_logfile_backups=1",
            f"stderr_logfile={_ini_value(str(logs / f'{replica.program}.err.log'))}",
            "stderr_logfile_maxbytes=5MB",
            "stderr_logfile_backups=1",
            "",
        ]
    )


def _why_dead(replica: Replica) -> str:
    detail = f"its process is {replica.state}" + (f" ({replica.description})" if replica.description else "")
    tail = _tail(_log_dir() / f"{replica.program}.err.log", lines=5)
    return detail + (f"; last lines of its stderr:\n{tail}" if tail else "")


def _describe(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connection refused"
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {HTTP_TIMEOUT_SECONDS:.0f} s"
    return f"{type(error).__name__}: {error}"


def _http(connections: int = 1) -> httpx.Client:
    # trust_env=False: a proxy configured for the worker must not intercept loopback requests.
    return httpx.Client(
        timeout=HTTP_TIMEOUT_SECONDS,
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max(connections, 1) + 2),
    )


@dataclass
class _Tally:
    """What the analysis traffic saw of one replica."""

    sent: int = 0
    failed: int = 0  # non-2xx answers plus requests that got no answer
    unanswered: int = 0  # the app never saw these, so its counters cannot include them
    latencies_ms: list[float] = field(default_factory=list)
    probes: int = 0
    probes_ok: int = 0

    def add(self, answer: _Answer) -> None:
        self.sent += 1
        if answer.latency_ms is None:
            # No latency: a refused connection is instant and would flatter the percentiles.
            self.failed += 1
            self.unanswered += 1
            return
        self.latencies_ms.append(answer.latency_ms)
        if not answer.ok:
            self.failed += 1


@dataclass(frozen=True)
class _Answer:
    latency_ms: float | None  # None: no answer at all
    ok: bool


def _send(client: httpx.Client, replica: Replica) -> _Answer:
    """One analysis request; run in the window's thread pool, so it only reports and the caller tallies."""
    started = time.perf_counter()
    try:
        response = client.get(replica.url("/"))
    except httpx.HTTPError:
        return _Answer(None, ok=False)
    return _Answer((time.perf_counter() - started) * 1000, ok=response.is_success)


def window_size(config: dict[str, Any], share: object, *, new: int, old: int) -> tuple[int, int]:
    """How many analysis requests a window sends to the new release and to the old one.

    The canary gets `analysis_requests` (default ANALYSIS_REQUESTS) at a share up to 25 %, and more as its share
    grows (twice at 50 %, four times at 100 %), as real traffic would: an error rate is only measured on hundreds of
    requests (docs/safe-delivery.md). The old release gets as many per replica as the new one, so that with requests
    in flight at once every replica carries the same load and the latency comparison compares releases, not queues.
    """
    base = max(MIN_CANARY_REQUESTS, int(config.get("analysis_requests", ANALYSIS_REQUESTS)))
    percent = int(share) if isinstance(share, int) else round(100 * new / (new + old)) if old else 100
    canary = min(round(base * min(4.0, max(1.0, percent / 25))), MAX_ANALYSIS_REQUESTS)
    if not old or percent >= 100:
        return canary, 0
    return canary, min(round(canary * old / max(new, 1)), MAX_ANALYSIS_REQUESTS)


class _MetricError(Exception):
    pass


def _read_counter(client: httpx.Client, replica: Replica, path: str) -> tuple[int, int]:
    """The replica's `http_requests_total` summed over statuses, and the 5xx part of it."""
    where = f"replica {replica.program} (port {replica.port}) at {path}"
    try:
        response = client.get(replica.url(path))
    except httpx.HTTPError as error:
        raise _MetricError(f"could not read metrics of {where}: {_describe(error)}") from error
    if response.status_code != 200:
        raise _MetricError(f"could not read metrics of {where}: it answered {response.status_code}")
    total = errors = 0.0
    found = False
    try:
        for family in text_string_to_metric_families(response.text):
            # A declared counter with no samples yet is a replica that has served nothing: zero, not missing.
            found = found or family.name in ("http_requests", "http_requests_total")
            for sample in family.samples:
                if sample.name != "http_requests_total":
                    continue
                total += sample.value
                if str(sample.labels.get("status", "")).startswith("5"):
                    errors += sample.value
    except ValueError as error:
        raise _MetricError(f"could not parse the metrics of {where}: {error}") from error
    if not found:
        raise _MetricError(f"{where} exposes no http_requests_total counter (labelled by status)")
    return int(total), int(errors)


# --- the runtime ---------------------------------------------------------------------------------------------------


class LocalRuntime(Runtime):
    """Deploys releases as supervised processes on this machine; see the module docstring for what that means."""

    name = "local"
    lists_replicas = True

    # Each public method holds this service+environment's lock for its whole run: a worker presumed dead by the
    # sweeper may still be running, and two of them reconciling the same replicas would over- or under-shoot.
    @contextlib.contextmanager
    def _session(self, service: str, environment: str) -> Iterator[_Supervisor]:
        _slug(service, "service")
        _slug(environment, "environment")
        with _flock(_lock_path(service, environment)), _supervisor() as supervisor:
            self._reconcile(supervisor, service, environment)
            yield supervisor

    def _reconcile(self, supervisor: _Supervisor, service: str, environment: str) -> None:
        """Make supervisord run exactly the groups the include files describe for this service and environment.

        A file without a group is a replica whose start was interrupted: add it. A group without a file is one whose
        stop was interrupted (files are deleted first for exactly this reason): finish stopping it.
        """
        added, changed, removed = supervisor.reload()
        supervisor.remove([program for program in removed + changed if _ours(program, service, environment)])
        for program in added + changed:
            if _ours(program, service, environment):
                supervisor.add(program)

    def _replicas(self, supervisor: _Supervisor, service: str, environment: str) -> list[Replica]:
        processes = supervisor.processes()
        replicas = _configured(service, environment)
        for replica in replicas:
            info = processes.get(replica.program)
            if info is not None:
                replica.state = _state(info)
                replica.description = str(info.get("spawnerr") or info.get("description") or "")
        return replicas

    @staticmethod
    def _split_sets(ctx: Context, replicas: list[Replica]) -> tuple[list[Replica], list[Replica]]:
        """(new, old): the new release is commit+version; the old one is the previous commit (and version if known)."""
        new = [r for r in replicas if (r.commit, r.version) == (ctx.commit_sha, ctx.version)]
        old = [
            r
            for r in replicas
            if ctx.previous_commit_sha
            and r.commit == ctx.previous_commit_sha
            and (ctx.previous_version is None or r.version == ctx.previous_version)
            and r not in new
        ]
        return new, old

    def _sets(self, supervisor: _Supervisor, ctx: Context) -> tuple[list[Replica], list[Replica]]:
        new, old = self._split_sets(ctx, self._replicas(supervisor, ctx.service, ctx.environment))
        # The only thing supervisord cannot tell us later: how many old replicas ran before retiring began.
        ctx.state.setdefault("old_replicas", len(old))
        return new, old

    @staticmethod
    def _record(ctx: Context, new: list[Replica], old: list[Replica]) -> None:
        ctx.state["new"] = [{"program": r.program, "port": r.port} for r in sorted(new, key=lambda r: r.index)]
        ctx.state["old"] = [{"program": r.program, "port": r.port} for r in sorted(old, key=lambda r: r.index)]

    @staticmethod
    def _validate(ctx: Context) -> None:
        _slug(ctx.service, "service")
        _slug(ctx.environment, "environment")
        _commit(ctx.commit_sha)
        if ctx.previous_commit_sha:
            _commit(ctx.previous_commit_sha)
        if not VERSION.match(ctx.version):
            raise ValueError(f"{ctx.version!r} is not a valid version.")
        if ctx.previous_version is not None and not VERSION.match(ctx.previous_version):
            raise ValueError(f"{ctx.previous_version!r} is not a valid version.")

    @staticmethod
    def _prepare_release(ctx: Context, *, commit: str, version: str) -> tuple[Path, ReleaseConfig]:
        return _prepare(
            service=ctx.service,
            environment=ctx.environment,
            commit=commit,
            repository=ctx.repository,
            version=version,
            build_timeout=float(ctx.config.get("build_timeout_seconds", 600)),
        )

    def _start(self, supervisor: _Supervisor, ctx: Context, *, commit: str, version: str, count: int) -> list[Replica]:
        """Write `count` new include files for one release, then have supervisord load and start them."""
        checkout, config = self._prepare_release(ctx, commit=commit, version=version)
        everything = _configured()
        names = {r.program for r in everything} | set(supervisor.processes())
        taken = {r.port for r in everything}
        started = []
        index = 1
        for _ in range(count):
            while (program := f"rwy-{ctx.service}.{ctx.environment}-{commit[:10]}-{index}") in names:
                index += 1
            names.add(program)
            port = _free_port(taken)
            taken.add(port)
            replica = Replica(
                program=program,
                service=ctx.service,
                environment=ctx.environment,
                commit=commit,
                version=version,
                port=port,
                state="STARTING",
            )
            _write_atomic(_conf_dir() / f"{program}.ini", _program_ini(replica, checkout, config))
            started.append(replica)
        if started:
            supervisor.reload()
            for replica in started:
                supervisor.add(replica.program)
                supervisor.start(replica.program)
        return started

    @staticmethod
    def _stop(supervisor: _Supervisor, replicas: list[Replica]) -> None:
        # The files go first: if we die before supervisord has stopped the groups, the next reconcile sees groups
        # without files and finishes the stop, instead of reviving replicas we meant to retire.
        for replica in replicas:
            (_conf_dir() / f"{replica.program}.ini").unlink(missing_ok=True)
        supervisor.remove([replica.program for replica in replicas])

    @staticmethod
    def _await_healthy(
        supervisor: _Supervisor, replicas: list[Replica], *, path: str, timeout: float, what: str = "replica"
    ) -> None:
        """Poll each replica's health endpoint until all answer 2xx; one that exits or stays unhealthy fails."""
        deadline = time.monotonic() + timeout
        pending = {replica.program: replica for replica in replicas}
        last: dict[str, str] = {}
        with _http() as client:
            while pending:
                processes = supervisor.processes()
                for program, replica in list(pending.items()):
                    info = processes.get(program)
                    replica.state = _state(info)
                    replica.description = str(info and (info.get("spawnerr") or info.get("description")) or "")
                    if not replica.alive:
                        raise StepFailed(
                            f"{what} {program} did not pass its health check at {path}: {_why_dead(replica)}"
                        )
                    try:
                        response = client.get(replica.url(path))
                    except httpx.HTTPError as error:
                        last[program] = _describe(error)
                        continue
                    if response.is_success:
                        del pending[program]
                    else:
                        last[program] = f"it answered {response.status_code}"
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    program = next(iter(pending))
                    tail = _tail(_log_dir() / f"{program}.err.log", lines=5)
                    raise StepFailed(
                        f"{what} {program} did not pass its health check at {path}: "
                        f"{last.get(program, 'no answer')} (still failing after {timeout:.0f} s)"
                        + (f"; last lines of its stderr:\n{tail}" if tail else "")
                    )
                time.sleep(0.2)

    # --- the Runtime interface ---------------------------------------------------------------------------------------

    def prepare(self, ctx: Context) -> None:
        self._validate(ctx)
        with _flock(_lock_path(ctx.service, ctx.environment)):
            self._prepare_release(ctx, commit=ctx.commit_sha, version=ctx.version)

    def scale(self, ctx: Context, *, replicas: int) -> None:
        if replicas < 0:
            raise ValueError("replicas cannot be negative.")
        self._validate(ctx)
        with self._session(ctx.service, ctx.environment) as supervisor:
            _, config = self._prepare_release(ctx, commit=ctx.commit_sha, version=ctx.version)
            new, old = self._sets(supervisor, ctx)
            # Dead replicas go first when there are too many; the rest are restarted rather than replaced.
            new.sort(key=lambda r: (r.alive, -r.index))
            excess = max(0, len(new) - replicas)
            self._stop(supervisor, new[:excess])
            new = new[excess:]
            for replica in new:
                if not replica.alive:
                    supervisor.start(replica.program)
            new += self._start(supervisor, ctx, commit=ctx.commit_sha, version=ctx.version, count=replicas - len(new))
            self._record(ctx, new, old)
            self._await_healthy(
                supervisor, new, path=config.health, timeout=float(ctx.config.get("health_timeout_seconds", 15))
            )

    def retire_old(self, ctx: Context, *, keep: int) -> None:
        self._validate(ctx)
        with self._session(ctx.service, ctx.environment) as supervisor:
            new, old = self._sets(supervisor, ctx)
            old.sort(key=lambda r: (r.alive, -r.index))
            excess = max(0, len(old) - max(0, keep))
            self._stop(supervisor, old[:excess])
            self._record(ctx, new, old[excess:])

    def route(self, ctx: Context, *, share: int) -> None:
        if not 0 <= share <= 100:
            raise ValueError(f"A traffic share is a percentage; got {share}.")
        # No proxy to configure (see the module docstring): the share steers the analysis traffic in observe().
        ctx.state["share"] = share

    def observe(self, ctx: Context) -> Observation:
        self._validate(ctx)
        with self._session(ctx.service, ctx.environment) as supervisor:
            new, old = self._sets(supervisor, ctx)
            self._record(ctx, new, old)
        # The lock is released: the window only reads, and other calls for this service need not wait for it.
        if not new:
            return Observation(canary=Samples(), metric_error="No replica of the new release is running.")
        paths = {r.program: _endpoint_paths(ctx.service, ctx.environment, ctx.commit_sha) for r in new}
        if ctx.previous_commit_sha:
            paths |= {r.program: _endpoint_paths(ctx.service, ctx.environment, ctx.previous_commit_sha) for r in old}
        return self._analyse(ctx, new, old, paths)

    def _analyse(
        self, ctx: Context, new: list[Replica], old: list[Replica], paths: dict[str, tuple[str, str]]
    ) -> Observation:
        """Send the analysis traffic and probes, and read each replica's counters before and after."""
        canary_count, baseline_count = window_size(ctx.config, ctx.state.get("share"), new=len(new), old=len(old))
        # Spread both releases' requests evenly over the window, so both see the same conditions.
        schedule = sorted(
            [(i / canary_count, new[i % len(new)]) for i in range(canary_count)]
            + [(i / baseline_count, old[i % len(old)]) for i in range(baseline_count)],
            key=lambda item: item[0],
        )
        targets = [replica for _, replica in schedule]
        rounds = max(1, int(ctx.config.get("analysis_probe_rounds", 3)))
        chunks = max(1, rounds - 1)
        edges = [round(k * len(targets) / chunks) for k in range(chunks + 1)]
        concurrency = min(32, max(1, int(ctx.config.get("analysis_concurrency", ANALYSIS_CONCURRENCY))))
        tallies = {r.program: _Tally() for r in new + old}
        errors: list[str] = []
        with _http(connections=concurrency) as client, ThreadPoolExecutor(concurrency) as pool:
            before: dict[str, tuple[int, int]] = {}
            for replica in new + old:
                try:
                    before[replica.program] = _read_counter(client, replica, paths[replica.program][1])
                except _MetricError as error:
                    errors.append(str(error))
            # Probes before the first chunk and after each; a chunk's requests go out concurrently, as users'
            # requests do, so a window of hundreds of requests takes seconds rather than minutes.
            self._probe_all(client, new + old, paths, tallies)
            for start, end in itertools.pairwise(edges):
                chunk = targets[start:end]
                for replica, answer in zip(chunk, pool.map(functools.partial(_send, client), chunk), strict=True):
                    tallies[replica.program].add(answer)
                if rounds > 1:
                    self._probe_all(client, new + old, paths, tallies)
            after: dict[str, tuple[int, int]] = {}
            for replica in new + old:
                if replica.program not in before:
                    continue
                try:
                    after[replica.program] = _read_counter(client, replica, paths[replica.program][1])
                except _MetricError as error:
                    errors.append(str(error))
        for program, (total_before, errors_before) in before.items():
            if program in after and (after[program][0] < total_before or after[program][1] < errors_before):
                errors.append(f"the request counter of replica {program} went backwards: it restarted")
                del after[program]
        canary = self._samples(new, tallies, before, after)
        baseline = self._samples(old, tallies, before, after) if old else None
        return Observation(canary=canary, baseline=baseline, metric_error="; ".join(errors)[:2000])

    def _probe_all(
        self,
        client: httpx.Client,
        replicas: list[Replica],
        paths: dict[str, tuple[str, str]],
        tallies: dict[str, _Tally],
    ) -> None:
        for replica in replicas:
            self._probe(client, replica, paths[replica.program][0], tallies[replica.program])

    @staticmethod
    def _probe(client: httpx.Client, replica: Replica, path: str, tally: _Tally) -> None:
        tally.probes += 1
        with contextlib.suppress(httpx.HTTPError):
            if client.get(replica.url(path)).is_success:
                tally.probes_ok += 1

    @staticmethod
    def _samples(
        replicas: list[Replica],
        tallies: dict[str, _Tally],
        before: dict[str, tuple[int, int]],
        after: dict[str, tuple[int, int]],
    ) -> Samples:
        """Counts from each replica's own counters where they could be read both times, else from what we sent."""
        samples = Samples()
        for replica in replicas:
            tally = tallies[replica.program]
            if replica.program in before and replica.program in after:
                requests = after[replica.program][0] - before[replica.program][0]
                failed = after[replica.program][1] - before[replica.program][1]
                samples.requests += requests + tally.unanswered
                samples.errors += failed + tally.unanswered
            else:
                samples.requests += tally.sent
                samples.errors += tally.failed
            samples.latencies_ms += tally.latencies_ms
            samples.probes += tally.probes
            samples.probes_ok += tally.probes_ok
        return samples

    def finalize(self, ctx: Context) -> None:
        self._validate(ctx)
        with self._session(ctx.service, ctx.environment) as supervisor:
            replicas = self._replicas(supervisor, ctx.service, ctx.environment)
            new, _ = self._split_sets(ctx, replicas)
            # Everything that is not the new release goes, including strays of an older, abandoned deployment.
            self._stop(supervisor, [r for r in replicas if r not in new])
            ctx.state["share"] = 100
            self._record(ctx, new, [])

    def rollback(self, ctx: Context) -> None:
        self._validate(ctx)
        ctx.state["share"] = 0
        with self._session(ctx.service, ctx.environment) as supervisor:
            new, old = self._sets(supervisor, ctx)
            self._stop(supervisor, new)
            if not ctx.previous_commit_sha:
                self._record(ctx, [], [])
                return
            version = ctx.previous_version or (old[0].version if old else ctx.previous_commit_sha[:12])
            for replica in old:
                if not replica.alive:
                    supervisor.start(replica.program)
            # Replicas retired earlier in this deployment come back too, from the previous release's checkout.
            missing = int(ctx.state.get("old_replicas", 0)) - len(old)
            old += self._start(supervisor, ctx, commit=ctx.previous_commit_sha, version=version, count=missing)
            self._record(ctx, [], old)
            if old:
                _, config = self._prepare_release(ctx, commit=ctx.previous_commit_sha, version=version)
                self._await_healthy(
                    supervisor,
                    old,
                    path=config.health,
                    timeout=float(ctx.config.get("health_timeout_seconds", 15)),
                    what="previous release's replica",
                )

    def stop_all(self, *, service: str, environment: str) -> None:
        with self._session(service, environment) as supervisor:
            self._stop(supervisor, self._replicas(supervisor, service, environment))

    def endpoints(self, service: str, environment: str) -> list[dict[str, Any]]:
        """Every replica configured for this service and environment with its state, for the portal's pages and the
        health checks that follow the deployed replicas.

        Read-only: it never starts supervisord (a page view should not spawn daemons); when supervisord is down,
        every replica is reported STOPPED, which is the truth.
        """
        _slug(service, "service")
        _slug(environment, "environment")
        replicas = _configured(service, environment)
        supervisor = _Supervisor(timeout=5.0)
        try:
            processes = supervisor.processes() if supervisor.answers() else {}
        finally:
            supervisor.close()
        # Health and metrics paths are the release's own (its runway.yaml), so they follow a release that moves them.
        paths = {commit: _endpoint_paths(service, environment, commit) for commit in {r.commit for r in replicas}}
        rows = []
        for replica in sorted(replicas, key=lambda r: (r.version, r.index)):
            info = processes.get(replica.program)
            health, metrics = paths[replica.commit]
            rows.append(
                replica.public()
                | {
                    "state": _state(info) if info else "STOPPED",
                    "pid": int(info["pid"]) if info else 0,
                    "url": replica.url("/"),
                    "health_url": replica.url(health),
                    "metrics_url": replica.url(metrics),
                }
            )
        return rows
