"""Database helpers shared by every app."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.postgresql.base import ServerBindingCursor

T = TypeVar("T")
NEVER_BY_COUNT = 2**31 - 1


def fetch_one(sql: str, params: Sequence[Any], *, prepare: bool = False) -> tuple[Any, ...] | None:
    """Run one read-only statement and return its first row (None if none), on a hot path (see `fetch_all`)."""
    return _standing_in(lambda wrapper: _read(wrapper, sql, params, prepare=prepare, many=False))


def fetch_all(sql: str, params: Sequence[Any], *, prepare: bool = False) -> list[tuple[Any, ...]]:
    """Run one read-only statement and return its rows, on a hot path.

    With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before a request's first statement on a reused connection: a
    round trip that costs as much as a small indexed read. Here the read itself is the check: should the connection
    have died since its last use, it is closed and the read sent once more on a new connection, which is where the
    health check would have led. Only outside a transaction (inside one the connection cannot be replaced) and only
    for the request's first statement; otherwise this is a plain query.

    With `prepare` (for a statement whose text is fixed: compiled once per process), PostgreSQL keeps the statement
    parsed and planned on the connection and each later run sends only its parameters: planning the catalog's read
    by name took five times as long as running it. Off with DATABASE_PREPARED_STATEMENTS=false, for a connection
    pooler in transaction mode that cannot keep a statement on a connection.
    """
    return _standing_in(lambda wrapper: _read(wrapper, sql, params, prepare=prepare, many=True))


def write_one(sql: str, params: Sequence[Any], *, prepare: bool = False) -> tuple[Any, ...] | None:
    """Run one writing statement (an INSERT ... RETURNING) and return its first row, prepared as `fetch_all` says.
    Never sent twice: a write does not stand in for the health check as the reads do (its retry could write twice)."""
    wrapper: Any = connections[DEFAULT_DB_ALIAS]
    with _cursor(wrapper, prepare and _preparing(wrapper)) as cursor:
        cursor.execute(sql, params)
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def _standing_in(run: Callable[[Any], T]) -> T:
    """`run(connection)`, a read, standing in for the connection's health check (see `fetch_all`). The connection is
    this thread's Django connection itself, not `django.db.connection`, the proxy that looks it up again on every
    attribute read."""
    wrapper: Any = connections[DEFAULT_DB_ALIAS]  # its health_check_* attributes are missing from the type stubs
    stands_in = (
        wrapper.health_check_enabled
        and not wrapper.health_check_done
        and wrapper.connection is not None
        and not wrapper.in_atomic_block
    )
    if stands_in:
        wrapper.health_check_done = True
        try:
            return run(wrapper)
        except DatabaseError:
            if wrapper.is_usable():
                raise  # the statement failed, not the connection
            wrapper.close()
    return run(wrapper)


def _read(wrapper: Any, sql: str, params: Sequence[Any], *, prepare: bool, many: bool) -> Any:
    """The statement's rows (`many`), or its first row (None if none)."""
    preparing = prepare and _preparing(wrapper)
    if preparing and not wrapper.queries_logged and not wrapper.execute_wrappers:
        return _read_kept(wrapper, sql, params, many=many)
    with _cursor(wrapper, preparing) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if many else cursor.fetchone()


def _read_kept(wrapper: Any, sql: str, params: Sequence[Any], *, many: bool) -> Any:
    """A prepared read on the connection's kept cursor, doing what Django's cursor wrapper does around a statement (a
    broken transaction refused, psycopg's errors as Django's) without making two cursor objects for every statement.
    Only where nothing watches the statements (no query log, no execute wrapper: tests that count queries see every
    one through Django's cursor); a cursor is kept per connection and made again for a new one."""
    raw = _preparing_connection(wrapper)
    kept = getattr(wrapper, "_runway_kept_cursor", None)
    if kept is None or kept[0] is not raw:
        kept = (raw, _PreparingCursor(raw))  # type: ignore[call-arg]
        wrapper._runway_kept_cursor = kept
    cursor: Any = kept[1]
    wrapper.validate_no_broken_transaction()
    with wrapper.wrap_database_errors:
        cursor.execute(sql, params)
        return cursor.fetchall() if many else cursor.fetchone()


def _preparing(wrapper: Any) -> bool:
    """Whether statements asked to be prepared are, on this connection."""
    return bool(wrapper.vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS)


def _preparing_connection(wrapper: Any) -> Any:
    """The connection's psycopg connection, open, preparing the statements asked for."""
    wrapper.ensure_connection()
    raw: Any = wrapper.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None: never, not even when asked). A threshold no statement reaches
        # turns it back on for the statements asked for only (Django's own cursors bind on the client and never are).
        raw.prepare_threshold = NEVER_BY_COUNT
    return raw


def _cursor(wrapper: Any, preparing: bool) -> Any:
    """Django's cursor (its queries logged and counted as any other); with `preparing` (see `_preparing`), binding
    parameters on the server and preparing the statement."""
    if not preparing:
        return wrapper.cursor()
    return wrapper._prepare_cursor(_PreparingCursor(_preparing_connection(wrapper)))  # type: ignore[call-arg]


class _PreparingCursor(ServerBindingCursor):
    """Django's server-binding cursor (psycopg 3), asking psycopg to prepare every statement it runs: psycopg keeps a
    connection's most recently used ones and finds a prepared statement again by its text."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True, **kwargs)  # type: ignore[misc]
