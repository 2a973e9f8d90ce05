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
        cursor.execute(_series_sql(connection.alias, connection.vendor), {"pk": pk})
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
    sql = _week_sql(alias, vendor, Aggregation(aggregation))
    params = {"series": series_id, **{f"e{i}": edge for i, edge in enumerate(edges)}}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if vendor == "sqlite":
            values = list(cursor.fetchone())
        else:
            by_day = dict(cursor.fetchall())
            values = [by_day.get(i) for i in range(7)]
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
        f"SELECT {columns} FROM {qn(Series._meta.db_table)} "
        f"WHERE {qn(Series._meta.pk.column)} = %(pk)s"
    )


@lru_cache(maxsize=32)
def _week_sql(alias: str, vendor: str, aggregation: Aggregation) -> str:
    """
    Returns the week query. On SQLite, one row of seven values, each a subquery over one
    day's range of the covering index (Metric.Meta): grouping rows by a computed day index
    sorted every row, which cost 3 times as much at 800 rows. Elsewhere, that grouping (a
    hash aggregate on PostgreSQL, where planning seven subqueries cost 0.5 ms more).
    Parameters are named (%(series)s, the day edges %(e0)s to %(e7)s): Django's SQLite
    cursor turns positional ones into its own with a regular expression per execute, which
    cost as much as running the query.
    """
    qn = connections[alias].ops.quote_name
    meta = Metric._meta
    ts, value = qn(meta.get_field("timestamp").column), qn(meta.get_field("value").column)
    table, series = qn(meta.db_table), qn(meta.get_field("series").column)
    latest_first = f"ORDER BY {ts} DESC, {qn(meta.pk.column)} DESC"
    if vendor == "sqlite":
        subqueries = []
        for i in range(7):
            edges = f"{ts} >= %(e{i})s AND {ts} < %(e{i + 1})s"
            day = f"FROM {table} WHERE {series} = %(series)s AND {edges}"
            if aggregation == Aggregation.LAST:
                subqueries.append(f"(SELECT {value} {day} {latest_first} LIMIT 1)")
            else:
                subqueries.append(f"(SELECT {_SQL_AGGREGATES[aggregation]}({value}) {day})")
        return "SELECT " + ", ".join(subqueries)
    # Plain comparisons with the day edges: the ORM's TruncDate cost more to compile than to run.
    days = " ".join(f"WHEN {ts} < %(e{i + 1})s THEN {i}" for i in range(6))
    rows = (
        f"SELECT CASE {days} ELSE 6 END AS d, {value} AS v, {ts} AS t, "
        f"{qn(meta.pk.column)} AS i FROM {table} "
        f"WHERE {series} = %(series)s AND {ts} >= %(e0)s AND {ts} < %(e7)s"
    )
    if aggregation == Aggregation.LAST:
        number = "ROW_NUMBER() OVER (PARTITION BY d ORDER BY t DESC, i DESC)"
        return f"SELECT d, v FROM (SELECT d, v, {number} AS n FROM ({rows}) r) l WHERE n = 1"
    return f"SELECT d, {_SQL_AGGREGATES[aggregation]}(v) FROM ({rows}) r GROUP BY d"


def can_view_series(*, user: User | None, series: Series) -> bool:
    """Returns whether `user` may see `series`: public ones, or with metrics.view_series."""
    return _may_view(user, is_public=series.is_public)


def series_pk_by_slug(*, slug: str, using: str | None = None) -> int | None:
    """Returns the primary key of the series with `slug`, or None if there is none."""
    return _series_column("pk", "slug", slug, using)


def can_view_series_by_pk(*, user: User | None, pk: int, using: str | None = None) -> bool:
    """Returns can_view_series() for the series with primary key `pk`; False if there is none."""
    is_public = _series_column("is_public", "pk", pk, using)
    return is_public is not None and _may_view(user, is_public=bool(is_public))


def _may_view(user: User | None, *, is_public: bool) -> bool:
    if is_public:
        return True
    return bool(user is not None and user.is_authenticated and user.has_perm(VIEW_PERMISSION))


def _series_column(column: str, by: str, value: Any, using: str | None) -> Any:
    """
    Returns one column of the series whose `by` column equals `value`, or None. Every
    subscribe asks twice (its key, then its permission): a plain cursor, as the ORM's
    queryset took about ten times as long to build as the query to run (docs/benchmarks.md).
    """
    connection = connections[using or router.db_for_read(Series)]
    with connection.cursor() as cursor:
        cursor.execute(_series_lookup_sql(connection.alias, column, by), {"value": value})
        row = cursor.fetchone()
    return None if row is None else row[0]


@lru_cache(maxsize=16)
def _series_lookup_sql(alias: str, column: str, by: str) -> str:
    qn = connections[alias].ops.quote_name
    meta = Series._meta
    fields = (meta.pk if name == "pk" else meta.get_field(name) for name in (column, by))
    select, where = (qn(str(field.column)) for field in fields)  # type: ignore[union-attr]
    return f"SELECT {select} FROM {qn(meta.db_table)} WHERE {where} = %(value)s"


def series_visible_to(*, user: User | None) -> QuerySet[Series]:
    """Returns the series `user` may see; the others are not listed, nor found (404)."""
    qs = Series.objects.all()
    if user is not None and user.is_authenticated and user.has_perm(VIEW_PERMISSION):
        return qs
    return qs.filter(is_public=True)


def metrics_visible_to(*, user: User | None) -> QuerySet[Metric]:
    """Returns the metrics of the series `user` may see."""
    return Metric.objects.filter(series__in=series_visible_to(user=user)).select_related("series")
