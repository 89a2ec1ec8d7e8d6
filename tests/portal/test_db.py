"""portal.db.fetch_one: a request's first read doubles as the connection's health check."""

import pytest
from django.db import DataError, connection, connections

from portal import db

pytestmark = pytest.mark.django_db(transaction=True)  # outside a transaction, as a request's first read is


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _connection_killed() -> int:
    """End this connection's server session from another one, as a restart or an idle timeout would between two
    requests, and mark the health check undone, as the next request's start does; returns the dead session's pid."""
    dead = _backend_pid()
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [dead])
    finally:
        killer.close()
    connection.health_check_done = False
    return dead


@pytest.mark.postgres_only  # needs a server that can end another session
def test_a_connection_that_died_between_requests_is_replaced_and_the_read_answers():
    dead = _connection_killed()

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


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres_only  # SQLite has no prepared statements to keep
def test_a_statement_asked_to_be_prepared_is_kept_on_the_connection_and_counted_as_a_query(
    settings, django_assert_num_queries
):
    sql = "SELECT %s::int + 1, %s::text"
    with django_assert_num_queries(2):
        assert db.fetch_one(sql, [41, "a"], prepare=True) == (42, "a")
        assert db.fetch_all(sql, [1, "b"], prepare=True) == [(2, "b")]  # the same statement, other values
    assert [text for text in _prepared() if "::int + 1" in text] == ["SELECT $1::int + 1, $2::text"]
    assert db.fetch_one("SELECT %s::int * 2", [21]) == (42,)  # not asked: bound on the client, never prepared
    assert not [text for text in _prepared() if "* 2" in text]
    settings.DATABASE_PREPARED_STATEMENTS = False  # behind a pooler in transaction mode
    assert db.fetch_one("SELECT %s::int - 1", [43], prepare=True) == (42,)
    assert not [text for text in _prepared() if "- 1" in text]


def test_a_prepared_read_answers_on_any_database():
    assert db.fetch_all("SELECT 1 WHERE 1 = %s", [1], prepare=True) == [(1,)]
    assert db.fetch_one("SELECT 1 WHERE 1 = %s", [0], prepare=True) is None


@pytest.mark.postgres_only  # SQLite counts exactly: no estimate to remember
def test_a_query_past_the_limit_is_not_counted_again_while_its_estimate_is_remembered(
    settings, django_assert_num_queries
):  # type: ignore[no-untyped-def]
    from django.db.models.expressions import RawSQL

    from catalog.models import Service
    from portal.pagination import count_capped_statement, count_capped_with, estimates
    from tests.factories import TeamFactory, service_make

    team = TeamFactory()
    for _ in range(4):
        service_make(owner=team)
    settings.CATALOG_EXACT_COUNT_UP_TO = 2
    queryset = Service.objects.filter(owner=team).order_by("slug")
    page = queryset.values_list("pk", "slug")[:3]
    count, exact, rows = count_capped_with(queryset, page)
    assert exact is False and count >= 3 and rows == list(page)
    planned = count_capped_statement(queryset, page)[1][1]  # type: ignore[index]
    assert max(3, estimates.get(planned) or 0) == count  # the planner's figure, never below the limit + 1
    estimates.put(planned, 987)  # as if the statistics had said so a moment ago: neither counted nor planned again
    with django_assert_num_queries(1) as captured:
        assert count_capped_with(queryset, page) == (987, False, list(page))
    assert "count(*)" not in captured.captured_queries[0]["sql"]
    with django_assert_num_queries(0):  # a count alone is not asked at all
        assert count_capped_with(queryset, None) == (987, False, [])
    # A page whose SQL holds a literal % (written %%) and a parameter of its own: its parameters are found all the same.
    marked = queryset.annotate(mark=RawSQL("%s || '%%'", ["5"])).values_list("slug", "mark")[:2]
    assert count_capped_with(queryset, marked) == (
        987,
        False,
        [(slug, "5%") for slug in page.values_list("slug", flat=True)[:2]],
    )
    estimates.clear()
    assert count_capped_with(queryset, page) == (count, False, list(page))


def test_estimates_are_kept_for_a_while_and_the_most_recent_only():
    from portal.recent import Recent

    kept = Recent(kept=2, seconds=60)
    for query, estimate in (("a", 1), ("b", 2), ("c", 3)):
        kept.put(query, estimate)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, 2, 3)
    expired = Recent(kept=512, seconds=-1)
    expired.put("a", 1)
    assert expired.get("a") is None


@pytest.mark.postgres_only  # the kept cursor serves prepared reads only
def test_prepared_reads_share_a_kept_cursor_per_connection_and_a_new_connection_gets_its_own():
    assert db.fetch_one("SELECT %s::int + 1", [1], prepare=True) == (2,)
    raw, cursor = connection._runway_kept_cursor  # type: ignore[attr-defined]
    assert db.fetch_all("SELECT %s::int + 2", [1], prepare=True) == [(3,)]
    assert connection._runway_kept_cursor[1] is cursor  # type: ignore[attr-defined]
    dead = _connection_killed()

    assert db.fetch_one("SELECT %s::int + 1", [41], prepare=True) == (42,)
    assert _backend_pid() != dead
    assert connection.connection is not raw
    assert connection._runway_kept_cursor[0] is connection.connection  # type: ignore[attr-defined]


@pytest.mark.postgres_only
def test_a_failing_prepared_read_raises_djangos_error_and_a_broken_transaction_is_refused():
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    before = _backend_pid()
    connection.health_check_done = False
    with pytest.raises(DataError):
        db.fetch_one("SELECT 1 / %s::int", [0], prepare=True)
    assert _backend_pid() == before
    with transaction.atomic():
        with pytest.raises(DataError):
            with transaction.atomic():  # a savepoint, rolled back: the outer transaction goes on
                db.fetch_one("SELECT 1 / %s::int", [0], prepare=True)
        assert db.fetch_one("SELECT %s::int", [7], prepare=True) == (7,)
        connection.needs_rollback = True  # as after an error caught inside the block
        with pytest.raises(TransactionManagementError):
            db.fetch_one("SELECT %s::int", [7], prepare=True)
        connection.needs_rollback = False
