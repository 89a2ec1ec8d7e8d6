from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scaffolder", "0003_golden_path_update_change_request"),
    ]

    operations = [
        migrations.AddField(
            model_name="goldenpathupdate",
            name="lease_until",
            field=models.DateTimeField(
                blank=True,
                help_text="While running: the worker renews this; once it lapses, the worker is gone.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="scaffoldrun",
            name="lease_until",
            field=models.DateTimeField(
                blank=True,
                help_text="While running: the worker renews this; once it lapses, the worker is gone.",
                null=True,
            ),
        ),
    ]
