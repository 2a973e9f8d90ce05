# PostgreSQL's change rows are stamped by readers after the commit, not by the writer: the
# readers find the rows still without a version through this index (SQLite stamps at
# insert, so its rows never enter it).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0004_change_log_stamped_by_id"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="change",
            index=models.Index(
                condition=models.Q(("version__isnull", True)),
                fields=["id"],
                name="streaming_change_pending",
            ),
        ),
    ]
