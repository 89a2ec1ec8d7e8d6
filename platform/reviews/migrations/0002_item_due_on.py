from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def due_from_campaign(apps, schema_editor):  # type: ignore[no-untyped-def]
    Item = apps.get_model("reviews", "Item")
    Campaign = apps.get_model("reviews", "Campaign")
    Item.objects.update(due_on=Subquery(Campaign.objects.filter(pk=OuterRef("campaign_id")).values("due_on")[:1]))


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]

    operations = [
        migrations.AddField(model_name="item", name="due_on", field=models.DateField(null=True)),
        migrations.RunPython(due_from_campaign, migrations.RunPython.noop),
        migrations.AlterField(model_name="item", name="due_on", field=models.DateField()),
        migrations.AddIndex(
            model_name="item", index=models.Index(fields=["status", "due_on"], name="review_item_status_due")
        ),
    ]
