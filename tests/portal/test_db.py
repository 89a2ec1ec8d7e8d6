"""portal.db.fetch_one: a request's first read doubles as the connection's health check."""

import pytest
from django.db import DataError, connection, connections

from portal import db

pytestmark = pytest.mark.django_db(transaction=True)  # outside a transaction, as a request's first read is


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.mark.postgres_only  # needs a server that can end another session
def test_a_connection_that_died_between_requests_is_replaced_and_the_read_answers():
    dead = _backend_pid()
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [dead])
    finally:
        killer.close()
    connection.health_check_done = False  # as when the next request starts on the reused connection

    assert db.fetch_one("SELECT 41 + 1", []) == (42,)
    assert _backend_pid() != dead


@pytest.mark.postgres_only  # SQLite divides by zero without an error
def test_a_failing_statement_is_raised_and_the_healthy_connection_kept():
    before = _backend_pid()
    connection.health_check_done = False
    with pytest.raises(DataError):
        db.fetch_one("SELECT 1 / 0", [])
    assert _backend_pid() == before


def test_it_returns_the_first_row_or_none():
    assert db.fetch_one("SELECT 1", []) == (1,)
    assert db.fetch_one("SELECT 1 WHERE 1 = 0", []) is None
