"""The same Series and Metric as the project's metrics app."""

from django.db import models


class Series(models.Model):
    """A named series of metrics aggregated per day."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=20, blank=True)
    aggregation = models.CharField(max_length=4, default="sum")
    is_public = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.slug


class Metric(models.Model):
    """One value of a series at an instant."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="metrics")
    timestamp = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        # The same index as metrics.Metric's, so both read a week alike.
        indexes = [
            models.Index(
                fields=["series", "timestamp", "id", "value"], name="metric_series_ts_cover"
            )
        ]

    def __str__(self) -> str:
        return f"{self.series_id}: {self.value}"
