# The change log's indexes become partial: a stamped row is in the version index only, an
# unstamped one (PostgreSQL, until its commit) in the txid index only, so each write
# maintains one of them, and SQLite, which stamps at insert, never the txid index.

from django.db import migrations, models

# The indexes 0002 made from `db_index=True` (Django derives their names from the columns).
_FULL = {
    "version": "streaming_change_version_8eda7648",
    "txid": "streaming_change_txid_a3a218d3",
}


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0002_change_log"),
    ]

    operations = [
        # Dropping the indexes by name, not AlterField: SQLite would copy the whole table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="change",
                    name="txid",
                    field=models.BigIntegerField(default=0),
                ),
                migrations.AlterField(
                    model_name="change",
                    name="version",
                    field=models.BigIntegerField(null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX {name} ON streaming_change ({column})",
                )
                for column, name in _FULL.items()
            ],
        ),
        migrations.AddIndex(
            model_name="change",
            index=models.Index(
                condition=models.Q(("version__isnull", False)),
                fields=["version"],
                name="streaming_change_stamped",
            ),
        ),
        migrations.AddIndex(
            model_name="change",
            index=models.Index(
                condition=models.Q(("version__isnull", True)),
                fields=["txid"],
                name="streaming_change_unstamped",
            ),
        ),
    ]
