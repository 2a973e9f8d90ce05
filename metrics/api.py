"""REST endpoints for series, metrics and the week payload. Broadcasting happens in signals."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from metrics.models import Metric, Series
from metrics.selectors import metrics_visible_to, series_visible_to, series_week
from metrics.serializers import (
    SLUG_PATTERN,
    MetricSerializer,
    SeriesSerializer,
    WeekSerializer,
    is_slug,
)
from metrics.weeks import IsoWeek

WEEK_PARAM = OpenApiParameter(
    "week",
    OpenApiTypes.STR,
    description="ISO week such as 2026-W48; default: this week.",
    pattern=r"^([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-W(0[1-9]|[1-4]\d|5[0-3])$",
)


def week_param(request: Request) -> IsoWeek | None:
    """Returns the `week` query parameter, None when absent; 400 when malformed."""
    text = request.query_params.get("week")
    if text is None:
        return None
    try:
        return IsoWeek.parse(text)
    except ValueError as exc:
        raise ValidationError({"week": [str(exc)]}) from exc


class SeriesViewSet(viewsets.ModelViewSet):
    """Series by slug. Anonymous users see public series only; private ones are 404."""

    queryset = Series.objects.all()
    serializer_class = SeriesSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_PATTERN

    def get_queryset(self) -> QuerySet[Series]:
        """Returns the series the requesting user may see."""
        return series_visible_to(user=self.request.user)

    @extend_schema(parameters=[WEEK_PARAM], responses=WeekSerializer)
    @action(detail=True, methods=["get"])
    def week(
        self, request: Request, slug: str | None = None, format: str | None = None
    ) -> Response:
        """Returns the series' week: seven daily values, Monday to Sunday (`week.json` too)."""
        week = week_param(request) or IsoWeek.current()
        return Response(series_week(series=self.get_object(), week=week))


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("series", OpenApiTypes.STR, description="Series slug."),
            WEEK_PARAM,
        ]
    )
)
class MetricViewSet(viewsets.ModelViewSet):
    """Metrics, filterable by `series` (slug) and `week`; writes need model permissions."""

    queryset = Metric.objects.all()
    serializer_class = MetricSerializer

    def get_queryset(self) -> QuerySet[Metric]:
        """Returns the visible metrics, filtered by the query parameters."""
        qs = metrics_visible_to(user=self.request.user)
        slug = self.request.query_params.get("series")
        if slug is not None:
            qs = qs.filter(series__slug=slug) if is_slug(slug) else qs.none()
        week = week_param(self.request)
        if week is not None:
            start, end = week.bounds()
            qs = qs.filter(timestamp__gte=start, timestamp__lt=end)
        return qs
