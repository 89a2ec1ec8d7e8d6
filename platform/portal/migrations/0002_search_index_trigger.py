"""Search vectors maintained by a trigger instead of generated columns, so that bulk imports can defer them.

A row's `search_tsv` is computed by a BEFORE INSERT/UPDATE trigger, except inside a transaction that sets
`runway.defer_search_index = on` (the catalog import does): those rows keep NULL and the `portal.search_index`
task fills them in after commit, in batches. Stemming 30,000 documents would otherwise double an import.
"""

from django.db import migrations

from portal.migrations import _search_sql


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in _search_sql.trigger_statements():
        schema_editor.execute(statement)


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _search_sql.SEARCHABLE:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_search ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_search()")


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_search_vectors")]
    operations = [migrations.RunPython(_up, _down)]
