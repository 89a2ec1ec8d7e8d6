"""Published postmortems are searchable: the same trigger-maintained `search_tsv` column as the catalog's tables
(portal/migrations/_search_sql.py), titled by the incident's title."""

from django.db import migrations

from portal.migrations import _search_sql

TABLE = "incidents_postmortem"
TITLE = "coalesce((SELECT title FROM incidents_incident WHERE id = NEW.incident_id), '')"
BODY = (
    "coalesce(NEW.summary, '') || ' ' || coalesce(NEW.impact, '') || ' ' || coalesce(NEW.contributing_factors, '') "
    "|| ' ' || coalesce(NEW.went_well, '')"
)


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in _search_sql.table_statements(TABLE, TITLE, BODY):
        schema_editor.execute(statement)


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_search ON {TABLE}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {TABLE}_search()")
    schema_editor.execute(f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS search_tsv")


class Migration(migrations.Migration):
    dependencies = [("incidents", "0003_postmortems"), ("portal", "0002_search_index_trigger")]
    operations = [migrations.RunPython(_up, _down)]
