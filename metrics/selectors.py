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
    fields = (series.slug, series.unit, series.aggregation)
    return _week_payload(series.pk, *fields, week=week, using=using)


def series_week_by_pk(*, pk: int, week: IsoWeek, using: str | None = None) -> dict[str, Any] | None:
    """
    Returns series_week()'s payload for the series with primary key `pk`, or None if there
    is none. The publisher calls this for every update: the series row comes from a plain
    cursor, as a model instance (ORM or raw()) took longer to build than to query.
    """
    connection = connections[using or router.db_for_read(Series)]
    qn = connection.ops.quote_name
    columns = ", ".join(
        qn(Series._meta.get_field(f).column) for f in ("slug", "unit", "aggregation")
    )
    sql = (
        f"SELECT {columns} FROM {qn(Series._meta.db_table)} WHERE {qn(Series._meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    return None if row is None else _week_payload(pk, *row, week=week, using=using)


def _week_payload(
    series_id: int, slug: str, unit: str, aggregation: str, *, week: IsoWeek, using: str | None
) -> dict[str, Any]:
    """Returns the payload of series_week(), for the series' id and fields."""
    tz = timezone.get_default_timezone()
    # Local midnights, Monday to the next Monday: DST-safe day edges as UTC instants.
    edges = [datetime.combine(day, time(), tzinfo=tz) for day in week.days]
    edges.append(week.bounds(tz)[1])
    connection = connections[using or router.db_for_read(Metric)]
    adapt = connection.ops.adapt_datetimefield_value
    params = [*map(adapt, edges[1:7]), series_id, adapt(edges[0]), adapt(edges[7])]
    with connection.cursor() as cursor:
        cursor.execute(_week_sql(connection, Aggregation(aggregation)), params)
        by_day = dict(cursor.fetchall())
    return {
        "series": slug,
        "week": str(week),
        "labels": [d.isoformat() for d in week.days],
        "values": [by_day.get(i) for i in range(7)],
        "unit": unit,
        "aggregation": aggregation,
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
