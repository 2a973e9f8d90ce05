"""
Admin for series and metrics; saves here broadcast like any other write. Staff see only
what the REST API and the socket would show them (metrics/selectors.py): without
metrics.view_series, private series and their metrics are missing from lists, filters,
search, dropdowns and autocomplete, and their change pages answer as for a deleted object.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from metrics.models import Metric, Series
from metrics.selectors import metrics_visible_to, series_visible_to


class VisibleSeriesFilter(admin.RelatedFieldListFilter):
    """The series filter, offering only the series the staff user may see."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[Any, str]]:
        """Returns the visible series as (pk, label) choices, in the series admin's order."""
        ordering = self.field_admin_ordering(field, request, model_admin)
        visible = series_visible_to(user=request.user).values("pk")
        return field.get_choices(
            include_blank=False, limit_choices_to={"pk__in": visible}, ordering=ordering
        )


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    """Series, searchable by slug and name."""

    list_display = ["slug", "name", "unit", "aggregation", "is_public"]
    list_filter = ["aggregation", "is_public"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Series]:
        """Returns the series the staff user may see (also what autocomplete searches)."""
        # `&` ANDs the rule's conditions into the admin's query and keeps its ordering.
        return super().get_queryset(request) & series_visible_to(user=request.user)


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    """Metrics, filterable by series and browsable by date."""

    list_display = ["timestamp", "series", "value"]
    list_filter = [("series", VisibleSeriesFilter)]
    list_select_related = ["series"]
    date_hierarchy = "timestamp"
    search_fields = ["series__slug", "series__name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Metric]:
        """Returns the metrics of the series the staff user may see."""
        return super().get_queryset(request) & metrics_visible_to(user=request.user)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        """Offers, and accepts, only the series the staff user may see."""
        if db_field.name == "series":
            kwargs["queryset"] = series_visible_to(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
