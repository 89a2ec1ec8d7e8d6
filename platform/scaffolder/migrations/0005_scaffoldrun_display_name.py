from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scaffolder", "0004_run_leases"),
    ]

    operations = [
        migrations.AddField(
            model_name="scaffoldrun",
            name="display_name",
            field=models.CharField(
                blank=True,
                help_text="The new service's name as people read it; empty: made from the slug.",
                max_length=100,
            ),
        ),
    ]
