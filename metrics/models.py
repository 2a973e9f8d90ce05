"""Series and their timestamped Metric values."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from streaming.capture.querysets import StreamingManager


class Aggregation(models.TextChoices):
    """How a day's metrics become the day's value."""

    SUM = "sum", "Sum"
    AVG = "avg", "Average"
    MIN = "min", "Minimum"
    MAX = "max", "Maximum"
    LAST = "last", "Last value"


class Series(models.Model):
    """A named series of metrics, e.g. CPU load, aggregated per day by `aggregation`."""

    slug = models.SlugField(
        max_length=50, unique=True, validators=[RegexValidator(r"^[-a-zA-Z0-9_]+\Z")]
    )
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=20, blank=True)
    aggregation = models.CharField(
        max_length=4, choices=Aggregation.choices, default=Aggregation.SUM
    )
    is_public = models.BooleanField(default=True, help_text="Anonymous visitors may see it.")

    # Bulk writes re-send the series' subscribed keys too.
    objects = StreamingManager()

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.name


class Metric(models.Model):
    """One value of a series at an instant."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="metrics")
    timestamp = models.DateTimeField()
    value = models.FloatField()

    # Bulk writes (update, bulk_create, bulk_update) broadcast too.
    objects = StreamingManager()

    class Meta:
        ordering = ["-timestamp"]
        # The id and value too: a week's read (the last value breaks ties by id) runs on the
        # index alone, without a table lookup per row (docs/benchmarks.md).
        indexes = [
            models.Index(
                fields=["series", "timestamp", "id", "value"], name="metric_series_ts_cover"
            )
        ]

    def __str__(self) -> str:
        return f"{self.series_id} @ {self.timestamp:%Y-%m-%d %H:%M}: {self.value}"
