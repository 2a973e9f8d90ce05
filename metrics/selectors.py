"""Reads: the one place the week's data and what a user may see are computed."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.utils import timezone

from metrics.models import Aggregation, Metric, Series
from metrics.weeks import IsoWeek

VIEW_PERMISSION = "metrics.view_series"
_SQL_AGGREGATES = {
    Aggregation.SUM: "SUM",
    Aggregation.AVG: "AVG",
    Aggregation.MIN: "MIN",
    Aggregation.MAX: "MAX",
}

User = AbstractBaseUser | AnonymousUser


def series_week(*, series: Series, week: IsoWeek, using: str | None = None) -> dict[str, Any]:
    """
    Returns the week's payload: one value per day, Monday to Sunday in settings.TIME_ZONE,
    aggregated by the series' aggregation in one SQL query (null for a day with no data).
    """
    tz = timezone.get_default_timezone()
    # Local midnights, Monday to the next Monday: DST-safe day edges as UTC instants.
    edges = [datetime.combine(day, time(), tzinfo=tz) for day in week.days]
    edges.append(week.bounds(tz)[1])
    connection = connections[using or router.db_for_read(Metric)]
    adapt = connection.ops.adapt_datetimefield_value
    params = [*map(adapt, edges[1:7]), series.pk, adapt(edges[0]), adapt(edges[7])]
    with connection.cursor() as cursor:
        cursor.execute(_week_sql(connection, Aggregation(series.aggregation)), params)
        by_day = dict(cursor.fetchall())
    return {
        "series": series.slug,
        "week": str(week),
        "labels": [d.isoformat() for d in week.days],
        "values": [by_day.get(i) for i in range(7)],
        "unit": series.unit,
        "aggregation": series.aggregation,
    }


def _week_sql(connection: BaseDatabaseWrapper, aggregation: Aggregation) -> str:
    """
    Returns the week query: each row's day index (0-6) compared against the day edges, then
    one value per day. Plain comparisons keep it in SQL; the ORM's TruncDate would call a
    Python function per row on SQLite, and compiling the query cost more than running it.
    """
    qn = connection.ops.quote_name
    meta = Metric._meta
    ts = qn(meta.get_field("timestamp").column)
    day = " ".join(f"WHEN {ts} < %s THEN {i}" for i in range(6))
    rows = (
        f"SELECT CASE {day} ELSE 6 END AS d, {qn(meta.get_field('value').column)} AS v, "
        f"{ts} AS t, {qn(meta.pk.column)} AS i FROM {qn(meta.db_table)} "
        f"WHERE {qn(meta.get_field('series').column)} = %s AND {ts} >= %s AND {ts} < %s"
    )
    if aggregation == Aggregation.LAST:
        latest_first = "ROW_NUMBER() OVER (PARTITION BY d ORDER BY t DESC, i DESC)"
        return f"SELECT d, v FROM (SELECT d, v, {latest_first} AS n FROM ({rows}) r) l WHERE n = 1"
    return f"SELECT d, {_SQL_AGGREGATES[aggregation]}(v) FROM ({rows}) r GROUP BY d"


def series_by_pk(*, pk: int, using: str | None = None) -> Series | None:
    """
    Returns the series with primary key `pk`, or None. A raw query: the publisher calls this
    for every update, and compiling the ORM's query took four times as long as running it.
    """
    alias = using or router.db_for_read(Series)
    qn = connections[alias].ops.quote_name
    sql = f"SELECT * FROM {qn(Series._meta.db_table)} WHERE {qn(Series._meta.pk.column)} = %s"
    return next(iter(Series.objects.db_manager(alias).raw(sql, [pk])), None)


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
