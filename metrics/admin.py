"""Admin for series and metrics; saves here broadcast like any other write."""

from django.contrib import admin

from metrics.models import Metric, Series


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    """Series, searchable by slug and name."""

    list_display = ["slug", "name", "unit", "aggregation", "is_public"]
    list_filter = ["aggregation", "is_public"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    """Metrics, filterable by series and browsable by date."""

    list_display = ["timestamp", "series", "value"]
    list_filter = ["series"]
    list_select_related = ["series"]
    date_hierarchy = "timestamp"
    search_fields = ["series__slug", "series__name"]
