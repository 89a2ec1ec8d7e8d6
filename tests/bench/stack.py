"""What the benches that run real workers share: a fresh database and broker of their own, the environment their
subprocesses get, the worker and beat processes themselves, and quantiles. Each bench names its own work folder,
database and Redis database."""

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def database_url(*, work: Path, db_name: str, bench: str, keep: bool = False) -> tuple[str, str]:
    """A SQLite file under `work`, or a freshly recreated PostgreSQL database `db_name` (kept as it is, if it exists,
    with `keep`); and how to describe it."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured or configured.startswith("sqlite"):
        path = work / "runway.sqlite3"
        return f"sqlite:///{quote(str(path))}", f"SQLite file {path.relative_to(ROOT)} (embedded default)"
    parts = urlsplit(configured)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"{bench} supports PostgreSQL or SQLite, not {parts.scheme}")
    import psycopg
    from psycopg import sql

    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not (keep and exists):
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    return urlunsplit(parts._replace(path=f"/{db_name}")), f"PostgreSQL database {db_name} on {parts.hostname}"


LOCAL_REDIS = "redis://127.0.0.1:6379"


def redis_url(*, work: Path, redis_db: int, local_default: bool = False) -> tuple[str, str]:
    """The bench's own Redis database, flushed; or "" for the filesystem broker under `work`.

    REDIS_URL's server when it is set; else, with `local_default`, Redis on 127.0.0.1:6379 if it answers (the
    production stack, for a bench whose figures depend on the cache)."""
    import redis

    configured = os.environ.get("REDIS_URL", "") or (LOCAL_REDIS if local_default else "")
    if not configured:
        return "", f"filesystem broker in {(work / 'celery').relative_to(ROOT)} (embedded default)"
    url = urlunsplit(urlsplit(configured)._replace(path=f"/{redis_db}"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).flushdb()
    except redis.RedisError:
        if os.environ.get("REDIS_URL"):
            sys.exit(f"REDIS_URL's server does not answer: {urlsplit(configured).hostname}")
        return "", "no Redis (127.0.0.1:6379 did not answer): embedded defaults, Redis-only caches off"
    return url, f"Redis database {redis_db} on {urlsplit(configured).hostname} (flushed)"


def prepare(
    *, work: Path, db_name: str, bench: str, redis_db: int, keep_database: bool = False, **extra: str
) -> tuple[dict[str, str], str, str]:
    """A clean `work` folder, the bench's database (recreated unless `keep_database`) and broker, this process's
    environment and Django set up on them, migrated; returns (the subprocesses' environment, the database's
    description, the broker's)."""
    import shutil
    import subprocess

    shutil.rmtree(work, ignore_errors=True)
    (work / "staticfiles").mkdir(parents=True)  # whitenoise warns about a missing STATIC_ROOT otherwise
    database, database_text = database_url(work=work, db_name=db_name, bench=bench, keep=keep_database)
    broker, broker_text = redis_url(work=work, redis_db=redis_db)
    env = environment(work=work, database_url=database, redis_url=broker, **extra)
    if not broker:
        os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT / "platform"))
    import django

    django.setup()
    return env, database_text, broker_text


def bench_team() -> tuple[Any, Any]:
    """The bench's user and the team it belongs to (a member, so it may scaffold and deploy for it)."""
    from django.contrib.auth.models import User

    from teams import services as team_services

    user = User.objects.create_user("bench", "bench@example.com", "bench-Runway-2024!", first_name="Bench")
    team = team_services.team_create(name="Bench", slug="bench", created_by=None)
    team_services.membership_set(team=team, user=user, changed_by=None)
    return user, team


def environment(*, work: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of the bench's worker and server subprocesses: everything they write stays under `work`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "platform"),
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "RUNWAY_VAR_DIR": str(work),
        "GIT_ROOT": str(work / "git"),
        **extra,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def database_backend_pids(database_url: str) -> Any:
    """A function listing the PostgreSQL backends serving `database_url`'s database (for their CPU, read from /proc
    on this machine), or `list` (none) for SQLite."""
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return list

    def pids() -> list[int]:
        import psycopg

        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        url = urlunsplit(urlsplit(database_url)._replace(scheme="postgresql"))
        with psycopg.connect(url, connect_timeout=5) as conn:
            return [row[0] for row in conn.execute(query)]

    return pids


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q * 100) - 1]


def supervisord_stale_stop(work: Path) -> None:
    """An earlier run killed before its cleanup leaves a daemonized supervisord whose folder we are about to wipe."""
    pidfile = work / "deploy" / "supervisor" / "supervisord.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)  # the pid this benchmark's own supervisord wrote
    except (OSError, ValueError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


class Celery:
    """N `celery worker` processes and one `celery beat`, each in its own process group (stopping one stops all);
    their logs go to `<work>/<name>.log`."""

    def __init__(self, env: dict[str, str], workers: int, *, work: Path, prefix: str) -> None:
        self.env, self.work = env, work
        self.names = [f"{prefix}{n}" for n in range(1, workers + 1)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, arguments: list[str]) -> None:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [str(Path(sys.executable).parent / "celery"), "--workdir", "platform", "-A", "portal", *arguments]
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(self) -> None:
        for name in self.names:
            self._spawn(
                name,
                ["worker", "--concurrency", "1", "-n", f"{name}@%h", "--without-heartbeat", "--without-gossip",
                 "--without-mingle", "--loglevel", "INFO"],
            )  # fmt: skip
        # The project's schedule from the database scheduler: the deployments sweeper every 5 s, and the rest.
        self._spawn("beat", ["beat", "--loglevel", "INFO", "--schedule", str(self.work / "celerybeat")])

    def wait_ready(self, app: Any, timeout: float = 60) -> float:
        """Seconds until every worker answers a ping (broadcast works on Redis and on the filesystem broker)."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            self.check()
            replies = app.control.ping(timeout=1.0) or []
            answered = {name.split("@")[0] for reply in replies for name in reply}
            if answered >= set(self.names):
                return time.perf_counter() - started
        raise RuntimeError(f"workers did not answer a ping within {timeout} s; see {self.work}/<name>.log")

    def check(self) -> None:
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited; see {self.work}/<name>.log")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # warm shutdown of this process and its pool child
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
