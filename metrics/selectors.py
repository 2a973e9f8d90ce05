"""Reads: the one place the week's data and what a user may see are computed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Avg, F, Max, Min, QuerySet, Sum, Window
from django.db.models.functions import FirstValue, TruncDate
from django.utils import timezone

from metrics.models import Aggregation, Metric, Series
from metrics.weeks import IsoWeek

VIEW_PERMISSION = "metrics.view_series"
_AGGREGATES = {
    Aggregation.SUM: Sum,
    Aggregation.AVG: Avg,
    Aggregation.MIN: Min,
    Aggregation.MAX: Max,
}

User = AbstractBaseUser | AnonymousUser


def series_week(*, series: Series, week: IsoWeek, using: str | None = None) -> dict[str, Any]:
    """
    Returns the week's payload: one value per day, Monday to Sunday in settings.TIME_ZONE,
    aggregated by the series' aggregation in one SQL query (null for a day with no data).
    """
    tz = timezone.get_default_timezone()
    start, end = week.bounds(tz)
    day = TruncDate("timestamp", tzinfo=tz)
    metrics = Metric.objects.db_manager(using) if using else Metric.objects
    rows = metrics.filter(series=series, timestamp__gte=start, timestamp__lt=end).order_by()
    if series.aggregation == Aggregation.LAST:
        latest_first = [F("timestamp").desc(), F("pk").desc()]
        last = Window(FirstValue("value"), partition_by=[day], order_by=latest_first)
        pairs = rows.annotate(day=day, v=last).values_list("day", "v").distinct()
    else:
        aggregate = _AGGREGATES[Aggregation(series.aggregation)]("value")
        pairs = rows.annotate(day=day).values("day").annotate(v=aggregate).values_list("day", "v")
    by_day = dict(pairs)
    return {
        "series": series.slug,
        "week": str(week),
        "labels": [d.isoformat() for d in week.days],
        "values": [by_day.get(d) for d in week.days],
        "unit": series.unit,
        "aggregation": series.aggregation,
    }


def can_view_series(*, user: User | None, series: Series) -> bool:
    """Returns whether `user` may see `series`: public ones, or with metrics.view_series."""
    if series.is_public:
        return True
    return bool(user is not None and user.is_authenticated and user.has_perm(VIEW_PERMISSION))


def series_visible_to(*, user: User | None) -> QuerySet[Series]:
    """Returns the series `user` may see; the others are not listed, nor found (404)."""
    qs = Series.objects.all()
    if user is not None and user.is_authenticated and user.has_perm(VIEW_PERMISSION):
        return qs
    return qs.filter(is_public=True)


def metrics_visible_to(*, user: User | None) -> QuerySet[Metric]:
    """Returns the metrics of the series `user` may see."""
    return Metric.objects.filter(series__in=series_visible_to(user=user)).select_related("series")
