"""The installation's identity: a table with one row holding a random id, made here, at migrate time, so that it
exists before any process of this installation uses the cache (portal/cache.py)."""

import secrets

from django.db import migrations, models


def installation_create(apps, schema_editor):
    # The model is unmanaged (so that flush leaves it alone), so CreateModel made no table: make it here.
    model = apps.get_model("portal", "Installation")
    schema_editor.create_model(model)
    model.objects.using(schema_editor.connection.alias).create(pk=1, secret=secrets.token_hex(8))


def installation_drop(apps, schema_editor):
    schema_editor.delete_model(apps.get_model("portal", "Installation"))


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_search_index_trigger"),
    ]

    operations = [
        migrations.CreateModel(
            name="Installation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("secret", models.CharField(max_length=32)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "db_table": "portal_installation",
                "managed": False,
            },
        ),
        migrations.RunPython(installation_create, installation_drop),
    ]
