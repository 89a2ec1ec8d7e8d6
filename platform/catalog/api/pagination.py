"""Pages of the services API: page numbers for people, signed cursors (keyset pagination) for clients that walk the
catalog, and counts that never scan the catalog.

Counts: up to `CATALOG_EXACT_COUNT_UP_TO` matching services are counted exactly (a count over at most that many index
entries); past it, PostgreSQL's planner estimate is given and `count_exact` is false. With the catalog cache on, exact
counts are cached per filter instead (catalog/cache.py).

Cursors: `next_cursor` (and `next` in cursor mode) hold the last row's sort key, signed with the secret key, so a
page is an index range scan from where the last one stopped, however deep the walk. A cursor is tied to its filters
and ordering, and expires after `CURSOR_MAX_AGE`: a forged, altered, expired or foreign one is a 400.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from typing import Any
from urllib import parse

from django.conf import settings
from django.core import signing
from django.db.models import Count, F, Q, QuerySet
from django.db.models import Window as Over
from django.db.models.expressions import OrderBy
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request

from catalog import cache as catalog_cache
from catalog import text_search
from catalog.filters import ServiceFilterSet
from portal.api import Pagination
from portal.pagination import (
    count_capped,
    count_capped_run,
    count_capped_statement,
    count_capped_with,
    count_windowed_run,
    count_windowed_statement,
    count_windowed_with,
)

CURSOR_SALT = "catalog.services.cursor"
CURSOR_MAX_AGE = 24 * 3600
CURSOR_PARAM = "cursor"
# Query parameters that do not change which services match (so a cursor stays valid across them).
NOT_FILTERS = frozenset({"page", "page_size", CURSOR_PARAM, "format"})


@dataclass
class Window:
    """One page of a filtered, ordered queryset, and what the response says around it."""

    rows: QuerySet[Any] | None = None  # the page's queryset (None when the page was read from a kept statement)
    count: int = 0
    count_exact: bool = True
    next: str | None = None
    previous: str | None = None
    next_cursor: str | None = None
    url: str = ""  # the request's own URL, which the links are made from
    cursor_mode: bool = False  # ?cursor= (keyset pages) rather than page numbers
    keyset: bool = True  # whether the order has keys a cursor can resume from
    last_key: Callable[[dict[str, Any] | None], str | None] = lambda _last: None  # the cursor after a page's last row
    page_next: str | None = None  # the next page's link, by number
    fetched: list[tuple[Any, ...]] | None = None  # the page's rows, when read with the count in one statement
    statement: tuple[str, list[Any]] | None = None  # the page's SQL and parameters, when asked not to run it
    windowed: bool = False  # the statement counts with the page's own window count (portal.pagination)


def _sort_keys(queryset: QuerySet[Any]) -> list[tuple[Any, bool]]:
    """The queryset's ordering as (expression, descending) pairs; the filter sets always end it with pk."""
    keys: list[tuple[Any, bool]] = []
    for item in queryset.query.order_by:
        if isinstance(item, OrderBy):
            keys.append((item.expression, item.descending))
        elif isinstance(item, str):
            keys.append((F(item.lstrip("-")), item.startswith("-")))
        else:
            keys.append((item, False))
    return keys


def _encode(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        parsed = parse_datetime(value["t"])
        if parsed is None:
            raise ValueError("not a time")
        return parsed
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("not a sort value")
    return value


@lru_cache(maxsize=1024)
def _cursor_signed(payload: str, _secret_key: str) -> str:
    """The signed cursor of a payload (JSON text), kept for the pages asked for again within the hour its issue time
    names: compressing and signing it was a twentieth of a list page's CPU. The key is part of the memo's key, so that
    a new SECRET_KEY signs afresh."""
    return signing.Signer(salt=CURSOR_SALT).sign_object(json.loads(payload), compress=True)


def url_with(url: str, name: str, value: str | None) -> str:
    """`url` with its query parameter `name` set to `value` (removed for None): what DRF's replace_query_param and
    remove_query_param give, to the byte (the parameters sorted and encoded again), but quoting only the names and
    values that need it. Encoding every value through urllib's quote_plus was a twentieth of a list page's CPU."""
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    pairs = parse.parse_qs(query, keep_blank_values=True)
    if value is None:
        pairs.pop(name, None)
    else:
        pairs[name] = [value]
    query = "&".join(
        f"{_plus_quoted(key)}={_plus_quoted(item)}" for key, items in sorted(pairs.items()) for item in items
    )
    return parse.urlunsplit((scheme, netloc, path, query, fragment))


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote_plus leaves as it is


def _plus_quoted(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else parse.quote_plus(text)


def _query_digest(request: Request) -> str:
    """What a cursor is bound to: the values of the parameters that choose and order the services. Any other
    parameter (pages, a client's cache-buster, a tracking tag) changes no listing, so a cursor stays valid across it,
    and the same page's cursor is the same text (see `_cursor_signed`)."""
    params = request.query_params
    kept = sorted((name, params.getlist(name)) for name in params if name in _LISTING)
    return hashlib.blake2b(repr(kept).encode(), digest_size=8).hexdigest()


_LISTING = frozenset(ServiceFilterSet.base_filters) - NOT_FILTERS


class ServicePagination(Pagination):
    """`?page=N` (people, with page links) or `?cursor=` (clients walking the catalog; empty for the first page)."""

    def window(
        self,
        queryset: QuerySet[Any],
        request: Request,
        *,
        cached_count_key: str | None = None,
        values: Sequence[Any] = (),
        run: bool = True,
        after: list[Any] | None = None,
    ) -> Window:
        """The page `request` asks for. With `values`, the page's rows are read as well, as tuples of those fields
        and then the sort keys (`fetched`), in the same statement as the count where the count is not cached.

        With `run=False` that statement is not run but kept as `statement` (SQL and parameters; None when the count
        comes from elsewhere), and `after` stands for the cursor's keys: catalog/api/statements.py keeps it to run
        again for other requests of the same shape (see `window_of`)."""
        size = self.get_page_size(request) or self.page_size
        order = queryset.query.order_by
        keys = _sort_keys(queryset)
        names = [f"_key{index}" for index in range(len(keys))]
        annotated = queryset.annotate(
            **{name: expression for name, (expression, _desc) in zip(names, keys, strict=True)}
        )
        # An order over a nullable field (when ownership was verified) has no total order a key can resume from.
        keyset = not any(isinstance(item, OrderBy) and (item.nulls_first or item.nulls_last) for item in order)
        window = self._window_start(request, names=names, keyset=keyset)
        window.rows = annotated
        window.statement = None
        number: int | None = None
        if window.cursor_mode:
            if after is None:
                after = self._cursor_read(request.query_params[CURSOR_PARAM], _query_digest(request), len(keys))
            if after is not None:
                annotated = annotated.filter(self._after(names, keys, after))
            window.rows = annotated[:size]
        else:
            number = self._page_number_asked(request)
            if number is not None:
                # Ordered by relevance, the sort reads every match: the page counts them in that pass (by page
                # number only: behind a cursor the page's rows are not all the matches).
                window.windowed = bool(values) and bool(keys) and isinstance(keys[0][0], text_search.Rank)
                counted = annotated.annotate(_total=Over(Count("*"))) if window.windowed else annotated
                window.rows = counted[(number - 1) * size : number * size]
        if cached_count_key and settings.CATALOG_API_CACHE:
            window.count = catalog_cache.remembered(cached_count_key, queryset.count)
        elif values and (window.cursor_mode or number is not None):
            rows = window.rows.values_list(*values, *names, *(["_total"] if window.windowed else []))
            if not run:
                statement = count_windowed_statement if window.windowed else count_capped_statement
                window.statement = statement(queryset, rows)
                return window
            counting = count_windowed_with if window.windowed else count_capped_with
            window.count, window.count_exact, window.fetched = counting(queryset, rows)
        else:
            window.count, window.count_exact = count_capped(queryset)
        if number is None and not window.cursor_mode:  # ?page=last
            number = self._page_last(window.count, size, window.count_exact)
            window.rows = annotated[(number - 1) * size : number * size]
        return self._window_finish(window, number, size)

    def window_of(
        self,
        request: Request,
        *,
        sql: str,
        params: list[Any],
        names: list[str],
        keyset: bool,
        number: int | None,
        size: int,
        prepare: bool = True,
        windowed: bool = False,
    ) -> Window:
        """The page `request` asks for, from a statement `window` gave with `run=False` (its parameters filled with
        this request's values): the same window, read in one round trip and without building a queryset; a prepared
        statement unless `prepare` is false. `size`: the page size the request asks for (`get_page_size`)."""
        window = self._window_start(request, names=names, keyset=keyset)
        run = count_windowed_run if windowed else count_capped_run
        window.count, window.count_exact, window.fetched = run(sql, params, prepare=prepare)
        return self._window_finish(window, number, size)

    def _window_start(self, request: Request, *, names: list[str], keyset: bool) -> Window:
        url = request.build_absolute_uri()
        window = Window()
        window.cursor_mode = CURSOR_PARAM in request.query_params
        if window.cursor_mode and not keyset:
            raise ValidationError({CURSOR_PARAM: ["Cursors cannot walk this order (it has empty values): use pages."]})
        window.keyset = keyset
        window.url = url
        window.last_key = partial(self._cursor_make, names=names, digest=_query_digest(request))
        window.page_next = None
        window.fetched = None
        return window

    def _window_finish(self, window: Window, number: int | None, size: int) -> Window:
        """The links of a page-number window whose count is known (a cursor window has none but `next`)."""
        if number is None:  # cursor mode
            return window
        if number > 1 and (number - 1) * size >= window.count:
            raise NotFound("Invalid page.")
        url = window.url
        if number > 1:
            window.previous = (
                url_with(url, self.page_query_param, None)
                if number == 2
                else url_with(url, self.page_query_param, str(number - 1))
            )
        if number * size < window.count:
            window.page_next = url_with(url, self.page_query_param, str(number + 1))
        return window

    def _cursor_make(self, last: dict[str, Any] | None, *, names: list[str], digest: str) -> str | None:
        if last is None:
            return None
        # Issued-at to the hour, not the second: the same page gives the same cursor for an hour, so a cached page
        # and a fresh one are the same bytes.
        payload = {"q": digest, "k": [_encode(last[name]) for name in names], "t": int(time.time() // 3600) * 3600}
        return _cursor_signed(json.dumps(payload, separators=(",", ":")), settings.SECRET_KEY)

    @staticmethod
    def _cursor_read(token: str, digest: str, length: int | None) -> list[Any] | None:
        """The sort keys a cursor holds (None for an empty one, the first page); with `length`, the number of keys
        this order has, which a cursor of another order does not match."""
        if not token:
            return None
        try:
            payload = signing.Signer(salt=CURSOR_SALT).unsign_object(token)
        except (signing.BadSignature, ValueError, UnicodeError):
            raise ValidationError({CURSOR_PARAM: ["Not a cursor this API gave out."]}) from None
        issued = payload.get("t") if isinstance(payload, dict) else None
        if not isinstance(issued, int) or time.time() - issued > CURSOR_MAX_AGE:
            raise ValidationError({CURSOR_PARAM: ["This cursor has expired: start again without it."]})
        if payload.get("q") != digest:
            raise ValidationError(
                {CURSOR_PARAM: ["This cursor belongs to other filters or another order: start again without it."]}
            )
        values = payload.get("k")
        if not isinstance(values, list) or (length is not None and len(values) != length):
            raise ValidationError({CURSOR_PARAM: ["This cursor belongs to another order: start again without it."]})
        try:
            return [_decode(value) for value in values]
        except ValueError:
            raise ValidationError({CURSOR_PARAM: ["Not a cursor this API gave out."]}) from None

    @staticmethod
    def _after(names: list[str], keys: list[tuple[Any, bool]], values: list[Any]) -> Q:
        """Rows after `values` in this order: a bound on the first key (so the index range starts there), then the
        tie-breaks."""
        first, first_desc = names[0], keys[0][1]
        condition = Q()
        for index in range(len(names)):
            name, desc = names[index], keys[index][1]
            step = Q(**{f"{name}__{'lt' if desc else 'gt'}": values[index]})
            for before in range(index):
                step &= Q(**{names[before]: values[before]})
            condition |= step
        return Q(**{f"{first}__{'lte' if first_desc else 'gte'}": values[0]}) & condition

    def cursor_keys(self, request: Request) -> list[Any] | None:
        """The sort keys of the request's cursor (None for an empty one); checked against the order by the caller
        (`cursor_refuse_order`)."""
        return self._cursor_read(request.query_params[CURSOR_PARAM], _query_digest(request), None)

    @staticmethod
    def cursor_refuse_order() -> None:
        raise ValidationError({CURSOR_PARAM: ["This cursor belongs to another order: start again without it."]})

    def page_number(self, request: Request) -> int | None:
        """The page number asked for; None for `last`."""
        return self._page_number_asked(request)

    def _page_number_asked(self, request: Request) -> int | None:
        """The page number asked for; None for `last`, which needs the count first."""
        raw = request.query_params.get(self.page_query_param, "1")
        if raw == "last":
            return None
        try:
            number = int(raw)
        except ValueError:
            raise NotFound("Invalid page.") from None
        if number < 1:
            raise NotFound("Invalid page.")
        return number

    @staticmethod
    def _page_last(count: int, size: int, exact: bool) -> int:
        if not exact:  # an estimate has no last page to name
            raise NotFound("Invalid page.")
        return max(1, -(-count // size))

    # DRF's interface, for the browsable API and other renderers (the JSON fast path uses window() directly).
    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        self._window = self.window(queryset, request, cached_count_key=getattr(view, "count_key", None))
        rows = list(self._window.rows if self._window.rows is not None else ())
        self._last = vars(rows[-1]) if rows and len(rows) == (self.get_page_size(request) or self.page_size) else None
        return rows

    def links(
        self, window: Window, last: dict[str, Any] | None, returned: int, size: int
    ) -> tuple[str | None, str | None]:
        """(next, next_cursor) for a page that returned `returned` rows whose last row's keys are `last`."""
        more = returned == size
        cursor = window.last_key(last if more and window.keyset else None)
        if window.cursor_mode:
            next_link = url_with(window.url, CURSOR_PARAM, cursor) if cursor else None
            if next_link:
                next_link = url_with(next_link, self.page_query_param, None)
        else:
            next_link = window.page_next
            if window.count_exact is False and not more:
                next_link = None
        return next_link, cursor

    def get_paginated_response(self, data: Any) -> Any:
        from rest_framework.response import Response

        size = self.get_page_size(self.request) or self.page_size  # type: ignore[arg-type]
        next_link, cursor = self.links(self._window, self._last, len(data), size)
        return Response(
            {
                "count": self._window.count,
                "count_exact": self._window.count_exact,
                "next": next_link,
                "previous": self._window.previous,
                "next_cursor": cursor,
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        base = super().get_paginated_response_schema(schema)
        properties = base["properties"]
        properties["count"]["description"] = "Matching services; an estimate when count_exact is false."
        properties["count_exact"] = {"type": "boolean"}
        properties["next_cursor"] = {
            "type": "string",
            "nullable": True,
            "description": "Pass as ?cursor= for the next page by keyset (valid for a day, for these filters).",
        }
        ordered = {
            name: properties[name] for name in ("count", "count_exact", "next", "previous", "next_cursor", "results")
        }
        base["properties"] = ordered
        base["required"] = list(ordered)
        return base

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": CURSOR_PARAM,
                "required": False,
                "in": "query",
                "description": "A next_cursor from an earlier page (empty for the first page): keyset pagination.",
                "schema": {"type": "string"},
            },
        ]
