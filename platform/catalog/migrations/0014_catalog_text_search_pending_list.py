"""The text search's index (0013) takes rows through a small GIN pending list, so that imports stay fast.

With `fastupdate` off (as the trigram indexes are, 0009), every inserted row's 20-odd words went into the index one
by one: COPY of 100,000 services spent ~4.5 s more on this index alone. With a pending list, rows are appended to it
and merged into the index in bulk whenever it outgrows `gin_pending_list_limit`: ~0.4 s for the same COPY. 0009's
reason for turning the list off was its size: at the default 4 MB a search scanned up to 4 MB of unsorted entries
until the next vacuum. Here the list is held to 64 kB, so a search reads at most a few pages of it.
"""

from django.db import migrations


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER INDEX IF EXISTS catalog_service_catalog_tsv SET (fastupdate = on, gin_pending_list_limit = 64)"
        )


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX IF EXISTS catalog_service_catalog_tsv SET (fastupdate = off)")
        schema_editor.execute("ALTER INDEX IF EXISTS catalog_service_catalog_tsv RESET (gin_pending_list_limit)")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0013_catalog_text_search")]
    operations = [migrations.RunPython(_up, _down)]
