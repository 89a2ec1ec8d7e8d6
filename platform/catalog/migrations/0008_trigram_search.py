"""Trigram indexes so that the catalog's substring search (`icontains`, i.e. UPPER(col) LIKE '%word%') is an
index lookup on PostgreSQL instead of a scan of every service. pg_trgm is a trusted extension (PostgreSQL 13+):
the database owner may create it. SQLite needs none of this."""

from django.db import migrations

COLUMNS = ("name", "slug", "description")


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS catalog_service_{column}_trgm ON catalog_service "
            f"USING gin (upper({column}::text) gin_trgm_ops)"
        )


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS catalog_service_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0007_alter_api_slug_alter_resource_slug_and_more")]
    operations = [migrations.RunPython(_up, _down)]
