"""`runway_plan_rows(NULL)` is NULL without running anything (STRICT): a page whose estimate the process remembers
(portal/pagination.py) passes no query to plan."""

from django.db import migrations


def _up(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER FUNCTION runway_plan_rows(text) STRICT")


def _down(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER FUNCTION runway_plan_rows(text) CALLED ON NULL INPUT")


class Migration(migrations.Migration):
    dependencies = [("portal", "0004_plan_rows")]
    operations = [migrations.RunPython(_up, _down)]
