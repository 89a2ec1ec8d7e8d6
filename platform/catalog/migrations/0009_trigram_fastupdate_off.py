"""The catalog search's trigram indexes (0008) without GIN's pending list.

With `fastupdate` on (PostgreSQL's default), new and changed rows go to an unsorted pending list that every search
scans in full until VACUUM (or autovacuum's ANALYZE) merges it. After a bulk import that list held every service,
and the search cost as much as a table scan (~100 ms at 10,000 services) until the next vacuum. Catalog writes are
rare next to its reads, so rows go straight into the index instead, and what a list holds now is merged at once.
"""

from django.db import migrations

INDEXES = ("catalog_service_name_trgm", "catalog_service_slug_trgm", "catalog_service_description_trgm")


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} SET (fastupdate = off)")
        schema_editor.execute(
            "SELECT gin_clean_pending_list(oid) FROM pg_class WHERE relname = %s AND relkind = 'i'", [index]
        )


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} RESET (fastupdate)")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0008_trigram_search")]
    operations = [migrations.RunPython(_up, _down)]
