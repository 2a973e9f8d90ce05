"""Reads: the one place the week's data and what a user may see are computed."""

from __future__ import annotations

from datetime import datetime, time, tzinfo
from functools import lru_cache
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
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
    with connection.cursor() as cursor:
        cursor.execute(_series_sql(connection.alias, connection.vendor), [pk])
        row = cursor.fetchone()
    return None if row is None else _week_payload(pk, *row, week=week, using=using)


def _week_payload(
    series_id: int, slug: str, unit: str, aggregation: str, *, week: IsoWeek, using: str | None
) -> dict[str, Any]:
    """Returns the payload of series_week(), for the series' id and fields."""
    connection = connections[using or router.db_for_read(Metric)]
    alias, vendor = connection.alias, connection.vendor
    edges, labels = _week_edges(
        alias, vendor, connection.timezone, week, timezone.get_default_timezone()
    )
    params = [x for i in range(7) for x in (series_id, edges[i], edges[i + 1])]
    with connection.cursor() as cursor:
        cursor.execute(_week_sql(alias, vendor, Aggregation(aggregation)), params)
        values = list(cursor.fetchone())
    return {
        "series": slug,
        "week": str(week),
        "labels": list(labels),
        "values": values,
        "unit": unit,
        "aggregation": aggregation,
    }


# The caches below hold what is constant per database, week and time zone: building it
# cost more than the query. Their keys hold everything the result depends on (the alias'
# vendor and time zone, settings.TIME_ZONE's zone), so a changed setting is a new entry.
@lru_cache(maxsize=64)
def _week_edges(
    alias: str, vendor: str, db_timezone: tzinfo | None, week: IsoWeek, tz: tzinfo
) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """
    Returns the week's eight local midnights, Monday to the next Monday (DST-safe day edges,
    adapted for the alias' database), and its seven day labels.
    """
    edges = [datetime.combine(day, time(), tzinfo=tz) for day in week.days]
    edges.append(week.bounds(tz)[1])
    adapt = connections[alias].ops.adapt_datetimefield_value
    return tuple(map(adapt, edges)), tuple(d.isoformat() for d in week.days)


@lru_cache(maxsize=16)
def _series_sql(alias: str, vendor: str) -> str:
    """Returns the query of a series' slug, unit and aggregation by primary key."""
    qn = connections[alias].ops.quote_name
    columns = ", ".join(
        qn(Series._meta.get_field(f).column) for f in ("slug", "unit", "aggregation")
    )
    return (
        f"SELECT {columns} FROM {qn(Series._meta.db_table)} WHERE {qn(Series._meta.pk.column)} = %s"
    )


@lru_cache(maxsize=32)
def _week_sql(alias: str, vendor: str, aggregation: Aggregation) -> str:
    """
    Returns the week query: one row of seven values, each a subquery over one day's range of
    the (series, timestamp) index. Grouping rows by a computed day index sorted every row,
    which cost 3-4 times as much; the ORM's TruncDate called Python per row on SQLite.
    """
    qn = connections[alias].ops.quote_name
    meta = Metric._meta
    ts, value = qn(meta.get_field("timestamp").column), qn(meta.get_field("value").column)
    day = (
        f"FROM {qn(meta.db_table)} "
        f"WHERE {qn(meta.get_field('series').column)} = %s AND {ts} >= %s AND {ts} < %s"
    )
    if aggregation == Aggregation.LAST:
        one = f"(SELECT {value} {day} ORDER BY {ts} DESC, {qn(meta.pk.column)} DESC LIMIT 1)"
    else:
        one = f"(SELECT {_SQL_AGGREGATES[aggregation]}({value}) {day})"
    return "SELECT " + ", ".join([one] * 7)


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
