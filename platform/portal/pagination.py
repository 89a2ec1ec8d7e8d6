"""A Django Paginator whose row count can come from elsewhere (a cache) instead of a COUNT(*) per page, and a count
that never scans a large table."""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.utils.functional import cached_property


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
    limit = settings.CATALOG_EXACT_COUNT_UP_TO
    unordered = queryset.order_by()
    if connection.vendor != "postgresql":
        return unordered.count(), True
    counted = unordered[: limit + 1].count()
    if counted <= limit:
        return counted, True
    plan = json.loads(unordered.values("pk").explain(format="json"))
    return max(limit + 1, int(plan[0]["Plan"]["Plan Rows"])), False


def count_capped_with(queryset: QuerySet[Any], rows: QuerySet[Any]) -> tuple[int, bool, list[tuple[Any, ...]]]:
    """`count_capped(queryset)` and the tuples of `rows` (a values_list query, usually a page of `queryset`), in one
    statement: a page and its count cost one round trip (two past the exact limit, for the planner's estimate)."""
    if connection.vendor != "postgresql":
        count, exact = count_capped(queryset)
        return count, exact, list(rows)
    limit = settings.CATALOG_EXACT_COUNT_UP_TO
    unordered = queryset.order_by()
    try:
        capped_sql, capped_params = unordered.values("pk")[: limit + 1].query.sql_with_params()
        rows_sql, rows_params = rows.query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (an empty list of ids): no statement to run
        return 0, True, []
    # The count's row is always there; the page's rows join it (none for an empty page).
    sql = (
        f"SELECT counted.n, page.* FROM (SELECT count(*) FROM ({capped_sql}) capped) counted(n) "  # noqa: S608
        f"LEFT JOIN LATERAL ({rows_sql}) page ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*capped_params, *rows_params])
        fetched = cursor.fetchall()
    counted = fetched[0][0]
    found = [row[1:] for row in fetched if len(row) > 1 and row[1] is not None]  # the first field is never null
    if counted <= limit:
        return counted, True, found
    plan = json.loads(unordered.values("pk").explain(format="json"))
    return max(limit + 1, int(plan[0]["Plan"]["Plan Rows"])), False, found
