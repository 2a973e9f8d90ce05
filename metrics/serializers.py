"""REST representations of Series and Metric, with strict input validation."""

from __future__ import annotations

import math
import re
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from metrics.models import Metric, Series
from metrics.selectors import series_visible_to

# What a series slug may hold (Series.slug's validator). Anything else is refused before
# it reaches the database: PostgreSQL raises on a NUL byte in a query parameter.
SLUG_PATTERN = r"[-a-zA-Z0-9_]+"
_SLUG = re.compile(rf"{SLUG_PATTERN}\Z")


def is_slug(text: Any) -> bool:
    """Returns whether `text` could be a series slug."""
    return isinstance(text, str) and len(text) <= 50 and _SLUG.match(text) is not None


class FiniteFloatField(serializers.FloatField):
    """A float that refuses NaN, Infinity and values too large for a double."""

    default_error_messages = {"finite": "Must be a finite number."}

    def to_internal_value(self, data: Any) -> float:
        """Returns the float, or raises a field error."""
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("finite")
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that must carry its UTC offset: a naive one is ambiguous."""

    default_error_messages = {
        "naive": "Timestamp must include a time zone offset, e.g. +00:00 or Z.",
        "range": "Timestamp must fall in the years 0002 to 9998.",
    }

    def to_internal_value(self, value: Any) -> Any:
        """Returns the aware datetime, or raises a field error."""
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        moment = super().to_internal_value(value)
        # The weeks of years 1 and 9999 overflow datetime (metrics.weeks.IsoWeek.parse).
        if not 1 < moment.year < 9999:
            self.fail("range")
        return moment


class VisibleSeriesField(serializers.SlugRelatedField):
    """A series slug the requesting user may see: a private one is "does not exist" to others."""

    def get_queryset(self) -> Any:
        """Returns the series visible to the request's user (all of them without a request)."""
        request = self.context.get("request")
        if request is None:
            return Series.objects.all()
        return series_visible_to(user=request.user)

    def to_internal_value(self, data: Any) -> Series:
        """Returns the series; a value that cannot be a slug does not exist either."""
        if not is_slug(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:50])
        return super().to_internal_value(data)


class SeriesSerializer(serializers.ModelSerializer):
    """A series, addressed by its slug."""

    class Meta:
        model = Series
        fields = ["slug", "name", "unit", "aggregation", "is_public"]


class MetricSerializer(serializers.ModelSerializer):
    """A metric; `series` is read and written as the series' slug."""

    series = VisibleSeriesField(slug_field="slug", queryset=Series.objects.all())
    timestamp = AwareDateTimeField()
    value = FiniteFloatField()

    class Meta:
        model = Metric
        fields = ["id", "series", "timestamp", "value"]


class WeekSerializer(serializers.Serializer):
    """The week payload shared by the REST API, the page and the stream."""

    series = serializers.CharField()
    week = serializers.CharField()
    labels = serializers.ListField(child=serializers.DateField())
    values = serializers.ListField(child=serializers.FloatField(allow_null=True))
    unit = serializers.CharField(allow_blank=True)
    aggregation = serializers.ChoiceField(choices=["sum", "avg", "min", "max", "last"])
