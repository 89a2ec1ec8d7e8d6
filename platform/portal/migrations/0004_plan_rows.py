"""`runway_plan_rows(query)`: the planner's row estimate for a query, as a value inside another statement.

Counts past `CATALOG_EXACT_COUNT_UP_TO` are the planner's estimate (portal/pagination.py). Asked with a separate
EXPLAIN, that was a second round trip and a second compilation of the query for every page past the limit; as a
function, the page, its capped count and the estimate are one statement. The argument is SQL the ORM composed (with
its parameters quoted by the driver), never text from a request. EXPLAIN without ANALYZE plans the query and never
runs it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION runway_plan_rows(query text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric::bigint;
END
$$
"""


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS runway_plan_rows(text)")


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_installation")]
    operations = [migrations.RunPython(_up, _down)]
