from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("observed", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="metric",
            index=models.Index(
                fields=["series", "timestamp", "id", "value"], name="metric_series_ts_cover"
            ),
        ),
        migrations.RemoveIndex(
            model_name="metric",
            name="metric_series_ts",
        ),
    ]
