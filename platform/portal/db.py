"""Database helpers shared by every app."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import DatabaseError, connection

T = TypeVar("T")


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Run one read-only statement and return its first row (None if none), on a hot path (see `fetch_all`)."""
    return _standing_in(_fetch_one, sql, params)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one read-only statement and return its rows, on a hot path.

    With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before a request's first statement on a reused connection: a
    round trip that costs as much as a small indexed read. Here the read itself is the check: should the connection
    have died since its last use, it is closed and the read sent once more on a new connection, which is where the
    health check would have led. Only outside a transaction (inside one the connection cannot be replaced) and only
    for the request's first statement; otherwise this is a plain query.
    """
    return _standing_in(_fetch_all, sql, params)


def _standing_in(run: Callable[[str, Sequence[Any]], T], sql: str, params: Sequence[Any]) -> T:
    wrapper: Any = connection  # its health_check_* attributes (Django 4.1+) are missing from the type stubs
    stands_in = (
        wrapper.health_check_enabled
        and not wrapper.health_check_done
        and wrapper.connection is not None
        and not wrapper.in_atomic_block
    )
    if stands_in:
        wrapper.health_check_done = True
        try:
            return run(sql, params)
        except DatabaseError:
            if connection.is_usable():
                raise  # the statement failed, not the connection
            connection.close()
    return run(sql, params)


def _fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def _fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
