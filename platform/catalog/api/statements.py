"""The services list's statement, compiled once per shape of request and run again with each request's values.

A JSON page of the services API is one statement, its count and its rows together (portal/pagination.py), yet
building the filtered, ordered, annotated queryset and compiling it cost more CPU than PostgreSQL spent answering it.
The SQL text depends only on the request's *shape*: which filters it gives, the values of those with a few choices
(lifecycle, tier, ordering), how many words it searches for, its page and page size, and whether it walks a cursor.
The free values (owner, system and tag names, the search's words, a cursor's sort keys) only fill parameters.

So the first request of a shape builds its page the ordinary way (`ServicePagination.window` with `run=False`), with
a stand-in for each free value: a value no request sends. The statement is kept together with the places where the
stand-ins landed among its parameters, and each later request of that shape puts its own values in those places.
Nothing is guessed: a stand-in that does not come through unchanged (a filter that transforms its value) or that
reaches the SQL text itself makes the shape ordinary. A value that lands inside a longer parameter (a LIKE pattern,
the planner estimate's quoted SQL) is put there only when it holds nothing either would escape (letters, digits,
hyphens); any other request takes the ordinary path, as do the filters that read the clock (stale runbooks, ownership
verification, golden paths on disk), a request for the last page, and everything on SQLite.

Shapes are kept per process, the SHAPES_KEPT most recently used. The list is the same for every reader
(catalog.selectors.service_list_visible); were it narrowed by user, the shape would have to include what narrows it.
"""

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import QueryDict

from catalog import text_search
from catalog.filters import ServiceFilterSet

SHAPES_KEPT = 256
REFERENCES = ("owner", "system", "tag")
SEARCH = "q"
CHOICES = ("lifecycle", "tier", "ordering")
MAX_WORDS = 8  # more words than this take the ordinary path
_LONGEST = 200  # a free value longer than this takes the ordinary path
_PLAIN = re.compile(r"[A-Za-z0-9-]+", re.ASCII)
_KINDS = {str: "s", int: "i", float: "f", datetime: "t"}


def stand_in(slot: int, kind: str) -> Any:
    """The value that stands for free value number `slot` while a shape's statement is built: of the value's own
    type (a cursor's keys go through their fields' lookups), and one that no request sends."""
    if kind == "s":
        return f"Zq7Rw{slot}Xs"  # the closing letters keep slot 1's from being a part of slot 11's
    if kind == "i":
        return -7_300_000_000 - slot
    if kind == "f":
        return -7.3e9 - slot - 0.5
    return datetime(1901, 2, 3, 4, 5, 6, 700_000 + slot, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Shape:
    """What decides a list request's SQL text (`key`), and the free values that fill its parameters."""

    key: tuple[Any, ...]
    values: list[Any]
    kinds: list[str]
    number: int | None  # the page number; None in cursor mode
    after: bool  # in cursor mode: whether the cursor holds keys (not the first page)
    search_mode: str | None = None  # how the search's words are answered (catalog.text_search.answer)
    search_query: str | None = None  # a ranked search's tsquery (catalog.text_search.answer): its one free value
    search_slot: int = 0  # the slot of the search's first free value

    def search_answer(self) -> tuple[str, str | None] | None:
        """What the filter set answers the stand-in search with (ServiceFilterSet.search_answer): this shape's mode,
        and a stand-in for a ranked search's tsquery."""
        if self.search_mode is None:
            return None
        return self.search_mode, stand_in(self.search_slot, "s") if self.search_query is not None else None

    def stand_in_params(self, params: QueryDict) -> tuple[QueryDict, list[Any] | None]:
        """The query parameters to build this shape's statement with, and the cursor keys standing in."""
        data: Any = QueryDict(mutable=True)
        slot = 0
        for name in REFERENCES:
            if params.get(name):
                data[name] = stand_in(slot, "s")
                slot += 1
        words = params.get(SEARCH, "").split()
        if words:
            count = 1 if self.search_query is not None else len(words)
            data[SEARCH] = " ".join(stand_in(slot + index, "s") for index in range(count))
            slot += count
        for name in CHOICES:
            if params.get(name):
                data[name] = params[name]
        for name in ("page", "page_size", "cursor"):
            if name in params:
                data[name] = "" if name == "cursor" else params[name]
        after = [stand_in(slot + index, kind) for index, kind in enumerate(self.kinds[slot:])] if self.after else None
        return data, after


def shape_of(params: QueryDict, *, number: int | None, size: int, after: list[Any] | None) -> Shape | None:
    """The shape of a list request with these query parameters, page number (None in cursor mode), page size and
    cursor keys; None for a request that takes the ordinary path."""
    if connection.vendor != "postgresql" or any(params.get(name) for name in ServiceFilterSet.UNCACHEABLE):
        return None
    key: list[Any] = []
    values: list[Any] = []
    for name in REFERENCES:
        value = params.get(name, "")
        if value:
            key.append(name)
            values.append(value)
    words = params.get(SEARCH, "").split()
    if len(words) > MAX_WORDS:
        return None
    if any(len(value) > _LONGEST or "\x00" in value for value in [*values, *words]):
        return None
    # The words decide the statement's form as well as its parameters (a ranked order, the substring fallback): the
    # stand-ins they are built with are answered as the real words are. A ranked search fills one parameter, the
    # tsquery its words make; any other search, one per word.
    search_mode, search_query = text_search.answer(words) if words else (None, None)
    search_slot = len(values)
    searched = [search_query] if search_query is not None else words
    key += [len(searched), search_mode]
    values += searched
    kinds = ["s"] * len(values)
    for name in CHOICES:
        choice = params.get(name, "")
        if len(choice) > _LONGEST:
            return None
        key.append(choice)
    for value in after or ():
        kind = _KINDS.get(type(value))
        if kind is None:
            return None
        kinds.append(kind)
        values.append(value)
    key += [number, size, after is not None, tuple(kinds), settings.CATALOG_EXACT_COUNT_UP_TO]
    return Shape(
        key=tuple(key),
        values=values,
        kinds=kinds,
        number=number,
        after=after is not None,
        search_mode=search_mode,
        search_query=search_query,
        search_slot=search_slot,
    )


@dataclass(frozen=True, slots=True)
class Statement:
    """A shape's SQL, its parameters as built with stand-ins, and where each request's own values go."""

    sql: str
    params: tuple[Any, ...]
    exact: tuple[tuple[int, int], ...]  # (parameter, slot): the parameter is the value
    embedded: tuple[tuple[int, tuple[tuple[str, int], ...]], ...]  # (parameter, ((stand-in, slot), ...))
    names: tuple[str, ...]  # the sort keys, read after the row's fields
    keyset: bool
    windowed: bool = False  # counted by the page's own window count (portal.pagination.count_windowed_statement)

    def fill(self, values: list[Any]) -> list[Any] | None:
        """The parameters for these free values, or None when a value cannot go where its stand-in went."""
        params = list(self.params)
        for position, slot in self.exact:
            params[position] = values[slot]
        for position, inside in self.embedded:
            text = params[position]
            for stand_in_text, slot in inside:
                value = values[slot]
                if not isinstance(value, str) or not _PLAIN.fullmatch(value):
                    return None
                text = text.replace(stand_in_text, value)
            params[position] = text
        return params


def statement_learn(
    shape: Shape, sql: str, params: list[Any], *, names: list[str], keyset: bool, windowed: bool = False
) -> Statement | None:
    """The statement built for `shape` with its stand-ins, if every stand-in came through as itself."""
    stand_ins = [stand_in(slot, kind) for slot, kind in enumerate(shape.kinds)]
    texts = {value: slot for slot, value in enumerate(stand_ins) if isinstance(value, str)}
    if any(text in sql for text in texts):
        return None  # a value written into the SQL text itself: not a parameter to fill
    exact: list[tuple[int, int]] = []
    embedded: list[tuple[int, tuple[tuple[str, int], ...]]] = []
    found: set[int] = set()
    for position, param in enumerate(params):
        for slot, value in enumerate(stand_ins):
            if type(param) is type(value) and param == value:
                exact.append((position, slot))
                found.add(slot)
                break
        else:
            if isinstance(param, str):
                inside = tuple((text, slot) for text, slot in texts.items() if text in param)
                if inside:
                    embedded.append((position, inside))
                    found.update(slot for _text, slot in inside)
    if found != set(range(len(stand_ins))):
        return None  # a value changed on its way to SQL (or was dropped): this shape is not filled by hand
    return Statement(
        sql=sql,
        params=tuple(params),
        exact=tuple(exact),
        embedded=tuple(embedded),
        names=tuple(names),
        keyset=keyset,
        windowed=windowed,
    )


class Statements:
    """The statements of the shapes met lately in this process (None for a shape that takes the ordinary path)."""

    def __init__(self, kept: int = SHAPES_KEPT) -> None:
        self.kept = kept
        self._shapes: OrderedDict[tuple[Any, ...], Statement | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, shape: Shape, learn: Callable[[Shape], Statement | None]) -> Statement | None:
        with self._lock:
            if shape.key in self._shapes:
                self._shapes.move_to_end(shape.key)
                return self._shapes[shape.key]
        statement = learn(shape)
        with self._lock:
            self._shapes[shape.key] = statement
            while len(self._shapes) > self.kept:
                self._shapes.popitem(last=False)
        return statement

    def clear(self) -> None:
        with self._lock:
            self._shapes.clear()


statements = Statements()
