"""Full-text search on PostgreSQL: a generated tsvector column and a GIN index on each searchable table.

Generated columns follow every write, bulk imports included, with no code to keep them in step. Titles weigh
more than bodies. SQLite (the embedded default) searches with LIKE instead and needs none of this.
"""

from django.db import migrations

SEARCHABLE = {
    # table: (title expression, body expression)
    "catalog_service": ("coalesce(name, '') || ' ' || coalesce(slug, '')", "coalesce(description, '')"),
    "catalog_system": ("coalesce(name, '') || ' ' || coalesce(slug, '')", "coalesce(description, '')"),
    "teams_team": ("coalesce(name, '') || ' ' || coalesce(slug, '')", "coalesce(description, '')"),
    "techdocs_runbook": ("coalesce(title, '')", "coalesce(body, '')"),
    "techdocs_adr": (
        "coalesce(title, '')",
        "coalesce(body, '') || ' ' || coalesce(context, '') || ' ' || coalesce(decision, '') || ' ' "
        "|| coalesce(consequences, '')",
    ),
}


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, (title, body) in SEARCHABLE.items():
        schema_editor.execute(
            f"ALTER TABLE {table} ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector('english', {title}), 'A') || "
            f"setweight(to_tsvector('english', left({body}, 500000)), 'B')) STORED"
        )
        schema_editor.execute(f"CREATE INDEX {table}_search_tsv ON {table} USING GIN (search_tsv)")


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in SEARCHABLE:
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_tsv")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0003_descriptors"),
        ("teams", "0001_initial"),
        ("techdocs", "0001_initial"),
    ]
    operations = [migrations.RunPython(_up, _down)]
