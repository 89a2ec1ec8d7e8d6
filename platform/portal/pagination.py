"""A Django Paginator whose row count can come from elsewhere (a cache) instead of a COUNT(*) per page, and a count
that never scans a large table."""

from collections.abc import Callable
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.utils.functional import cached_property

from portal import db
from portal.recent import Recent


class CountedPaginator(Paginator):
    """`count` is a function returning the number of rows in `object_list`, e.g. one that reads a cache."""

    def __init__(self, object_list: Any, per_page: int, *args: Any, count: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self._count = count

    @cached_property
    def count(self) -> int:
        return self._count()


def count_capped(queryset: QuerySet[Any]) -> tuple[int, bool]:
    """(count, exact): exact up to the setting, else the planner's estimate (PostgreSQL; elsewhere an exact count)."""
    if connection.vendor != "postgresql":
        return queryset.order_by().count(), True
    count, exact, _rows = count_capped_with(queryset, None)
    return count, exact


def count_capped_with(queryset: QuerySet[Any], rows: QuerySet[Any] | None) -> tuple[int, bool, list[tuple[Any, ...]]]:
    """`count_capped(queryset)` and the tuples of `rows` (a values_list query, usually a page of `queryset`), in one
    statement: a page and its count cost one round trip, also past the exact limit, where the planner's estimate is
    asked inside the statement (`runway_plan_rows`, portal/migrations/0004_plan_rows.py) and only then."""
    if connection.vendor != "postgresql":
        count, exact = queryset.order_by().count(), True
        return count, exact, list(rows) if rows is not None else []
    statement = count_capped_statement(queryset, rows)
    if statement is None:  # a filter that can match nothing (an empty list of ids): no statement to run
        return 0, True, []
    return count_capped_run(*statement, with_rows=rows is not None)


def count_capped_statement(queryset: QuerySet[Any], rows: QuerySet[Any] | None) -> tuple[str, list[Any]] | None:
    """The SQL and parameters of `count_capped_with` on PostgreSQL (None when the queryset can match nothing), to be
    run by `count_capped_run`: apart, so that a caller may keep a statement and run it again with other values
    (catalog/api/statements.py)."""
    parts = _compiled(queryset, rows)
    if parts is None:
        return None
    capped_sql, capped_params = parts.capped()
    # The count's row is always there; the page's rows join it (none for an empty page). CASE asks the planner only
    # past the limit, and inside the aggregate's one row: in the outer select list it would run once per page row.
    sql = (
        "SELECT counted.n, counted.estimate, page.* FROM ("  # noqa: S608
        "SELECT count(*), CASE WHEN count(*) > %s THEN runway_plan_rows(%s) END "
        f"FROM {capped_sql}){_COUNTED}{_PAGE_OPEN}{parts.rows_sql}{_PAGE_CLOSE}"
    )
    estimate_sql = connection.ops.compose_sql(parts.matching_sql, parts.matching_params)  # type: ignore[attr-defined]
    return sql, [settings.CATALOG_EXACT_COUNT_UP_TO, estimate_sql, *capped_params, *parts.rows_params]


def count_capped_run(
    sql: str, params: list[Any], *, with_rows: bool = True, prepare: bool = False
) -> tuple[int, bool, list[tuple[Any, ...]]]:
    """Run a `count_capped_statement` (`prepare`: one kept to be run again, see portal/db.py): (count, exact, the
    rows' tuples).

    A query that matched more than the exact limit within the last minute in this process is not counted again: its
    count is the planner's estimate it was given then (the count was an estimate already), and only its page is read,
    which spares PostgreSQL the capped count's walk over a thousand index entries (a third of a large page's time)."""
    limit = settings.CATALOG_EXACT_COUNT_UP_TO
    planned = params[1]  # the query whose estimate is asked past the limit
    remembered = estimates.get(planned)
    if remembered is not None:
        if not with_rows:
            return max(limit + 1, remembered), False, []
        rows_sql, rows_params = _page_part(sql, params)
        fetched = db.fetch_all(rows_sql, rows_params, prepare=prepare)
        return max(limit + 1, remembered), False, fetched
    fetched = db.fetch_all(sql, params, prepare=prepare)  # a request's first read: see db.fetch_all
    counted, estimate = fetched[0][0], fetched[0][1]
    found = [row[2:] for row in fetched if len(row) > 2 and row[2] is not None] if with_rows else []
    if counted <= limit:
        return counted, True, found
    if estimate is None:
        estimate = limit + 1
    else:
        estimates.put(planned, int(estimate))
    return max(limit + 1, int(estimate)), False, found


def count_windowed_statement(queryset: QuerySet[Any], rows: QuerySet[Any]) -> tuple[str, list[Any]] | None:
    """Like `count_capped_statement`, for a page that reads every match anyway (ordered by relevance, which a sort of
    all matches decides): `rows` ends with `_total`, its window count (`COUNT(*) OVER ()`), which the sort's one pass
    gives, where the capped count read every match a second time (half of PostgreSQL's time for such a page). An
    empty page has no row to carry it, and is counted as `count_capped_statement` counts."""
    parts = _compiled(queryset, rows)
    if parts is None:
        return None
    capped_sql, capped_params = parts.capped()
    sql = (
        f"SELECT coalesce(page._total, (SELECT count(*) FROM {capped_sql})), NULL, page.* "  # noqa: S608
        f"FROM (SELECT 1) one{_PAGE_OPEN}{parts.rows_sql}{_PAGE_CLOSE}"
    )
    return sql, [*capped_params, *parts.rows_params]


class _Parts(NamedTuple):
    """A count's statement's parts: the queryset's matching ids and the page's rows, each compiled once."""

    matching_sql: str
    matching_params: tuple[Any, ...]
    rows_sql: str
    rows_params: tuple[Any, ...]

    def capped(self) -> tuple[str, list[Any]]:
        """The matches, at most the exact limit and one, as a subquery to count, and its parameters."""
        sql = f"(SELECT 1 FROM ({self.matching_sql}) matching LIMIT %s) capped"
        return sql, [*self.matching_params, settings.CATALOG_EXACT_COUNT_UP_TO + 1]


def _compiled(queryset: QuerySet[Any], rows: QuerySet[Any] | None) -> _Parts | None:
    """The parts of a count's statement (None when the queryset can match nothing). One compilation of the matches
    serves the capped count and the estimate."""
    try:
        matching_sql, matching_params = queryset.order_by().values("pk").query.sql_with_params()
        rows_sql, rows_params = rows.query.sql_with_params() if rows is not None else ("SELECT NULL", ())
    except EmptyResultSet:
        return None
    return _Parts(matching_sql, tuple(matching_params), rows_sql, tuple(rows_params))


def count_windowed_with(queryset: QuerySet[Any], rows: QuerySet[Any]) -> tuple[int, bool, list[tuple[Any, ...]]]:
    """`count_capped_with` for a page of `count_windowed_statement` (PostgreSQL)."""
    statement = count_windowed_statement(queryset, rows)
    if statement is None:
        return 0, True, []
    return count_windowed_run(*statement)


def count_windowed_run(
    sql: str, params: list[Any], *, prepare: bool = False
) -> tuple[int, bool, list[tuple[Any, ...]]]:
    """Run a `count_windowed_statement`: (count, exact, the rows' tuples without their `_total`). A page's window
    count is exact however large; an empty page's is capped as `count_capped_run`'s is (with no estimate)."""
    limit = settings.CATALOG_EXACT_COUNT_UP_TO
    fetched = db.fetch_all(sql, params, prepare=prepare)
    found = [row[2:-1] for row in fetched if row[2] is not None]
    counted = int(fetched[0][0])
    if found or counted <= limit:
        return counted, True, found
    return limit + 1, False, found


_COUNTED, _PAGE_OPEN, _PAGE_CLOSE = " counted(n, estimate)", " LEFT JOIN LATERAL (", ") page ON true"


def _page_part(sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """The page's own statement inside a `count_capped_statement`, and its parameters (the last ones: Django writes
    each parameter as %s and a literal % as %%)."""
    start = sql.index(_COUNTED + _PAGE_OPEN) + len(_COUNTED + _PAGE_OPEN)
    page_sql = sql[start : -len(_PAGE_CLOSE)]
    taken = page_sql.replace("%%", "").count("%s")
    return page_sql, params[len(params) - taken :] if taken else []


# The planner's estimates of the queries planned lately in this process, each for a minute: planning the query again
# was a third of PostgreSQL's time for a page of a large catalog, and an estimate changes only when the table's
# statistics do (ANALYZE, which autovacuum runs after many writes).
estimates = Recent(kept=512, seconds=60.0)
