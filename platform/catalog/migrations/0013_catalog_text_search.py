"""The catalog's text search (`q`) through a full-text index instead of trigram substring matching.

`catalog_tsv` holds the words of a service's name and slug (weight A) and description (weight B) under the `simple`
configuration: lower-cased, not stemmed, no stop words, so a typed prefix is a prefix of the stored word ("pay" is the
start of "payments"; stemmed, "runn" would not be the start of "run"). Hyphens, dots, slashes and at signs separate
words, so "edge-proxy-7" holds edge, proxy and 7, and "s-001" holds s and 001 (the parser reads "-001" as a signed
number otherwise). It is a generated column: every insert and update fills it in the same statement, bulk imports
included, so a service imported a second ago is found (the portal-wide `search_tsv` is deferred on import and filled
by a task after commit; that suits the portal's search page, not a catalog filter).

`catalog_search_query(VARIADIC words)` turns the words a person typed, given as parameters exactly as typed, into a
tsquery in SQL: each word is parsed as the column was, its parts must follow one another (`<->`), every word must
match (`&`), and only the last word's last part is a prefix (`:*`): the word being typed. Earlier words are whole
words, which GIN answers by skipping through posting lists; a prefix makes it read every posting of every matching
word, which costs ~1 ms for a common word at 100,000 services. Every lexeme is quoted and escaped here, so no input
changes the query's syntax; a word with no letters or digits adds nothing, and words with none give NULL (no match).

`catalog_search_like(word)`: a LIKE pattern that finds `word` as a substring of an upper-cased column, with `%`, `_`
and `\\` escaped, for the fallback when the words match no service (catalog/search.py). Both functions are
IMMUTABLE, so the planner evaluates them once, while planning, and sees a constant it can use an index with.

The trigram indexes (0008) stay: the fallback uses them.
"""

from django.db import migrations


def _words(text: str) -> str:
    """`text` with the characters that join words replaced by spaces (the same for the column and the query)."""
    return f"translate({text}, '-./@', '    ')"


NAME_SLUG, DESCRIPTION, TYPED = (
    _words("name || ' ' || slug"),
    _words("left(description, 10000)"),
    _words("left(word, 1000)"),
)
VECTOR = f"setweight(to_tsvector('simple', {NAME_SLUG}), 'A') || setweight(to_tsvector('simple', {DESCRIPTION}), 'B')"

QUERY = rf"""
CREATE OR REPLACE FUNCTION catalog_search_query(VARIADIC words text[]) RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT nullif(string_agg('(' || phrase || ')', ' & ' ORDER BY n), '')::tsquery
    FROM (
        SELECT n, string_agg(
            '''' || replace(replace(left(lexeme, 100), '\', '\\'), '''', '''''') || ''''
                || CASE WHEN (n = last_n AND pos = last_pos) OR length(lexeme) > 100 THEN ':*' ELSE '' END,
            ' <-> ' ORDER BY pos) AS phrase
        FROM (
            SELECT n, lexeme, positions[1] AS pos, max(n) OVER () AS last_n,
                max(positions[1]) OVER (PARTITION BY n) AS last_pos
            FROM unnest(words) WITH ORDINALITY AS typed(word, n),
                unnest(to_tsvector('simple', {TYPED})) AS parsed
        ) parts
        GROUP BY n
    ) phrases);
END
$$
"""

LIKE = r"""
CREATE OR REPLACE FUNCTION catalog_search_like(word text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT '%' || replace(replace(replace(upper(word), '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$
"""


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(QUERY)
    schema_editor.execute(LIKE, params=None)  # its % signs are not placeholders
    schema_editor.execute(
        f"ALTER TABLE catalog_service ADD COLUMN catalog_tsv tsvector GENERATED ALWAYS AS ({VECTOR}) STORED"
    )
    # No pending list (see 0009): searches would scan it in full until the next vacuum after an import.
    schema_editor.execute(
        "CREATE INDEX catalog_service_catalog_tsv ON catalog_service USING gin (catalog_tsv) WITH (fastupdate = off)"
    )


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE catalog_service DROP COLUMN IF EXISTS catalog_tsv")
    schema_editor.execute("DROP FUNCTION IF EXISTS catalog_search_query(VARIADIC text[])")
    schema_editor.execute("DROP FUNCTION IF EXISTS catalog_search_like(text)")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0012_service_documents")]
    operations = [migrations.RunPython(_up, _down)]
