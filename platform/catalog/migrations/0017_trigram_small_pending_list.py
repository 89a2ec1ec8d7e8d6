"""The trigram indexes (0008) take rows through a small GIN pending list, as the text search's index does (0014).

0009 turned their pending list off because at its default size (4 MB) a search scanned every service a bulk import had
just written, unsorted, until the next vacuum. Without it, though, every inserted row's trigrams went into three
indexes one by one (a bulk write switched the list on for its own duration, catalog.bulk.gin_bulk_writes, at the
default 4 MB): importing 100,000 components took 90.6 s (the target is 90). Held to 64 kB, the list merges into the
index in small sorted batches as an import writes: 78.8 s for the same import a minute later. A search reads at most
a few pages of it.
"""

from django.db import migrations

INDEXES = ("catalog_service_name_trgm", "catalog_service_slug_trgm", "catalog_service_description_trgm")


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} SET (fastupdate = on, gin_pending_list_limit = 64)")


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} SET (fastupdate = off)")
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} RESET (gin_pending_list_limit)")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0016_covering_name_indexes")]
    operations = [migrations.RunPython(_up, _down)]
