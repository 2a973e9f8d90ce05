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
