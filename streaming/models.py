"""A table-less model whose only use is to give the live-streams page a place in the admin."""

from django.db import models


class LiveStream(models.Model):
    """Stands for the registered streams in the admin (see streaming/admin.py); no table."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "live stream"

    def __str__(self) -> str:
        return "live streams"


class Change(models.Model):
    """
    One committed write to an observed table, recorded by the database's own triggers in the
    writer's transaction (streaming/capture/triggers.py). `rows` holds the key fields of each
    row touched, old and new, as a JSON list; `version` places it in commit order (on
    PostgreSQL it is given by the first reader after the commit).
    """

    id = models.BigAutoField(primary_key=True)
    version = models.BigIntegerField(null=True)
    # Always 0 (a column of earlier releases).
    txid = models.BigIntegerField(default=0)
    model = models.CharField(max_length=200)
    rows = models.TextField()

    class Meta:
        db_table = "streaming_change"
        default_permissions = ()
        # Partial: a row enters the version index once stamped. On PostgreSQL it waits in the
        # pending index until a reader stamps it (SQLite stamps at insert: never pending).
        indexes = [
            models.Index(
                fields=["version"],
                condition=models.Q(version__isnull=False),
                name="streaming_change_stamped",
            ),
            models.Index(
                fields=["id"],
                condition=models.Q(version__isnull=True),
                name="streaming_change_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} @ {self.version}"


class Clock(models.Model):
    """
    Row 1 is SQLite's version clock, bumped by every writing transaction (never below the time
    in microseconds; PostgreSQL's stamper takes a sequence's next values instead); row 2 is the
    newest version pruned from the change log.
    """

    id = models.PositiveSmallIntegerField(primary_key=True)
    n = models.BigIntegerField()

    class Meta:
        db_table = "streaming_clock"
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.id}: {self.n}"
