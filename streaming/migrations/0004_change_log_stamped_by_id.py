# PostgreSQL's stamp finds each change row by its primary key, not by its transaction: the
# txid index goes, so inserting a change row maintains the primary key's index alone.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0003_change_log_partial_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="change",
            name="streaming_change_unstamped",
        ),
    ]
