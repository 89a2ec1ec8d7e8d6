"""The catalog's text search (`q`), shared by the catalog page, the API and campaign scopes through ServiceFilterSet.

PostgreSQL: every word must match a word of the service's name, slug or description, the last one as a prefix (the
word being typed): "pay" finds payments-api, "payments ap" finds it too, "edge-proxy" finds edge-proxy-7. The match
is answered by the GIN index on `catalog_tsv` (catalog/migrations/0013_catalog_text_search.py), and the words are
turned into a tsquery in SQL (`catalog_search_query`): they reach the database as parameters, exactly as typed.

One small statement first (`probe`, ~0.2 ms) asks whether any service in the catalog matches and, if so, how many the
planner expects (its statistics know the common words), and decides:
- none: the words are looked for as substrings instead (the trigram indexes of 0008), so "gateway" still finds
  "PaymentGateway" and "ments" finds "payments", as the catalog's search did before it had an index;
- at most RANK_UP_TO expected: when no ordering is asked for, the services are listed by relevance (`ts_rank`: name
  and slug weigh more than the description), then by name; ranking a few hundred rows costs a fraction of a
  millisecond. The probe hands back the tsquery it made too, and the page's statement takes it as a parameter
  (`answer`);
- more: by name, as the list is without a search. Ranking costs a read of every matching row (~15 ms for "service"
  and ~100 ms for "data" at 100,000 services) and says little when that many match; in name order the database reads
  the name index and checks each row until a page is full.
A last word shorter than SHORT characters is the cheap path: no probe, no ranking and no substring fallback. A one-
or two-letter prefix matches much of the catalog, and as a substring it matches almost everything.

SQLite (the embedded defaults) has no full-text index: every word must appear in the name, slug or description
(case-insensitive for ASCII, like Django's `icontains` there), in name order.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Expression, FloatField, Q

from portal.recent import Recent

MAX_WORDS = 8
RANK_UP_TO = 300
SHORT = 3
MODE_SECONDS = 60.0


class TableSQL(Expression):
    """SQL over the queryset's own table: `{table}` is its alias, resolved when the query is compiled. A RawSQL naming
    `catalog_service` would name the outer table when the queryset is used as a subquery (`pk__in=...`), whose
    tables Django renames."""

    def __init__(self, template: str, params: Sequence[Any], output_field: Any) -> None:
        super().__init__(output_field=output_field)
        self.template, self.params = template, tuple(params)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return self.template.format(table=table), self.params

    def get_group_by_cols(self) -> list[Any]:
        return [self]


def _query(words: Sequence[str]) -> str:
    """The tsquery of `words`, built in SQL. The planner folds the call into a constant when it plans with the words,
    and its estimate of how many rows match sees them (a generic plan, a prepared statement's, would call it for every
    row: see `answer` for the ranked searches, which are prepared)."""
    return f"catalog_search_query({', '.join(['%s'] * len(words))})"


def words_split(value: str) -> list[str]:
    """The words of a search, as typed (split on white space): the parameters of every statement below."""
    return value.split()[:MAX_WORDS]


def short(words: Sequence[str]) -> bool:
    return len(words[-1]) < SHORT


def match(words: Sequence[str]) -> Any:
    """A condition: every word matches a word of the service (PostgreSQL) or appears in it (SQLite)."""
    if connection.vendor != "postgresql":
        return substring(words)
    return TableSQL(f"{{table}}.catalog_tsv @@ {_query(words)}", words, BooleanField())


def match_query(query: str) -> TableSQL:
    """A condition: the service matches `query`, the text of a tsquery that catalog_search_query made (`answer`)."""
    return TableSQL("{table}.catalog_tsv @@ %s::tsquery", [query], BooleanField())


class Rank(TableSQL):
    """A service's relevance to a search: a list ordered by it reads every match (catalog.api.pagination counts them
    in the same pass)."""


def rank(query: str) -> Rank:
    """How well a matching service matches `query`, a tsquery's text as `answer` gives it (PostgreSQL only), as a
    double so that cursors keep it exactly."""
    return Rank("ts_rank({table}.catalog_tsv, %s::tsquery)::float8", [query], FloatField())


def substring(words: Sequence[str]) -> Q:
    """Every word is a substring of the name, slug or description (case-insensitive)."""
    if connection.vendor == "postgresql":
        # upper(...) LIKE as the trigram indexes of 0008 are built; the pattern is made from the word in SQL.
        one = "upper({table}.%s::text) LIKE catalog_search_like(%%s)"
    else:
        one = "instr(lower({table}.%s), lower(%%s)) > 0"
    condition = Q()
    for word in words:
        sql = " OR ".join(one % column for column in ("name", "slug", "description"))
        condition &= Q(TableSQL(f"({sql})", [word] * 3, BooleanField()))
    return condition


# How a search is answered (`answer`); the filter set asks for it, and a kept statement's shape holds it.
SHORT_MODE, SUBSTRING, RANKED, NAMED = "short", "substring", "ranked", "named"


def answer(words: Sequence[str]) -> tuple[str, str | None]:
    """How to answer a search for `words`, and for a ranked one the text of the tsquery they make. The mode is
    SHORT_MODE (a prefix match in name order, no probe), SUBSTRING (no service matches: the fallback), RANKED (few
    match: by relevance unless an order is asked for) or NAMED (many match: by name). SQLite always searches
    substrings.

    A ranked search's statement is prepared (planning it cost more than running it), and its generic plan cannot fold
    catalog_search_query's call into a constant: the tsquery was built in SQL twice per request (the match and the
    rank), a tenth of a millisecond of the database's time. The probe that chose the mode made the tsquery already;
    it is kept with the mode and sent as a parameter (`match_query`, `rank`). It depends on the words alone (the
    function is IMMUTABLE) and comes from the database, so it is exactly the tsquery the words would have made there.
    """
    if connection.vendor != "postgresql":
        return SUBSTRING, None
    if short(words):
        return SHORT_MODE, None
    key = (tuple(words), RANK_UP_TO)
    if (remembered := modes.get(key)) is not None:
        return remembered  # type: ignore[no-any-return]
    found, query = probe(words)
    if not found:
        return SUBSTRING, None  # not remembered: a service written a moment later must be found by its words at once
    answered = (RANKED, query) if found <= RANK_UP_TO else (NAMED, None)
    modes.put(key, answered)
    return answered


# The modes of the searches answered lately in this process that matched, each for MODE_SECONDS: a repeated search
# (paging, a client polling, people typing the same words) skips the probe's round trip. What the probe says moves only
# with many writes (the planner's estimate) or with every matching service gone, when the page is empty for a moment
# instead of falling back to substrings.
modes = Recent(kept=1024, seconds=MODE_SECONDS)


def probe(words: Sequence[str]) -> tuple[int, str | None]:
    """0 when no service matches `words`, else the planner's estimate of how many do, at least 1 (PostgreSQL only;
    catalog/migrations/0015_catalog_search_probe.py); and the text of the tsquery the words make (None for none)."""
    sql = f"SELECT {_query(words).replace('catalog_search_query', 'catalog_search_probe')}, {_query(words)}::text"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*words, *words])
        row = cursor.fetchone()
    return (int(row[0]), row[1]) if row else (0, None)
