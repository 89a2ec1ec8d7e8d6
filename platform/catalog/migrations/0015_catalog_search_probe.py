"""`catalog_search_probe(VARIADIC words)`: whether any service matches the words, and if so how many the planner
expects, for the text search's choice of order (catalog/text_search.py).

Counting the matches (up to 301) read every posting of a common prefix: ~3 ms for "ledger" (6,745 matches) at
100,000 services, before the page's own statement. Whether any matches is an EXISTS, which the planner answers with
the first matching row (a few rows of a sequential scan for a common word, the index for a rare one); how many is the
planner's estimate from the column's statistics, which know the common words (6,730 estimated for "ledger", 100,000
for "data") and call a rare one rare. ~0.2 ms either way.

Each statement is planned for its own tsquery (EXECUTE with the query as a quoted literal, `%L`): the query is built
and quoted here, from the words passed as parameters, never by the caller. EXPLAIN plans without running; it makes
the function VOLATILE, as PostgreSQL requires.
"""

from django.db import migrations

PROBE = """
CREATE OR REPLACE FUNCTION catalog_search_probe(VARIADIC words text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    query tsquery := catalog_search_query(VARIADIC words);
    found boolean;
    plan json;
BEGIN
    IF query IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM catalog_service WHERE catalog_tsv @@ %L::tsquery)', query) INTO found;
    IF NOT found THEN
        RETURN 0;
    END IF;
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM catalog_service WHERE catalog_tsv @@ %L::tsquery', query)
        INTO plan;
    RETURN greatest(1, (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric::bigint);
END
$$
"""


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PROBE, params=None)  # its % signs are format()'s, not placeholders


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS catalog_search_probe(VARIADIC text[])")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0014_catalog_text_search_pending_list")]
    operations = [migrations.RunPython(_up, _down)]
