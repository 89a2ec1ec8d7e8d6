"""What the benches that run real workers share: a fresh database and broker of their own, the environment their
subprocesses get, and quantiles. Each bench names its own work folder, database and Redis database."""

import os
import statistics
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def database_url(*, work: Path, db_name: str, bench: str) -> tuple[str, str]:
    """A SQLite file under `work`, or a freshly recreated PostgreSQL database `db_name`; and how to describe it."""
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
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    return urlunsplit(parts._replace(path=f"/{db_name}")), f"PostgreSQL database {db_name} on {parts.hostname}"


def redis_url(*, work: Path, redis_db: int) -> tuple[str, str]:
    """The bench's own Redis database, flushed; or "" for the filesystem broker under `work`."""
    configured = os.environ.get("REDIS_URL", "")
    if not configured:
        return "", f"filesystem broker in {(work / 'celery').relative_to(ROOT)} (embedded default)"
    url = urlunsplit(urlsplit(configured)._replace(path=f"/{redis_db}"))
    import redis

    redis.Redis.from_url(url).flushdb()
    return url, f"Redis database {redis_db} on {urlsplit(configured).hostname} (flushed)"


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


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q * 100) - 1]
