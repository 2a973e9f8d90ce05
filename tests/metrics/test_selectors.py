"""Units of metrics.selectors.series_week: aggregations, empty days, week edges, time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from metrics.models import Metric, Series
from metrics.selectors import series_week, series_week_by_pk
from metrics.weeks import IsoWeek

pytestmark = pytest.mark.django_db

W48 = IsoWeek(2026, 48)
W48_LABELS = [f"2026-11-{day}" for day in range(23, 30)]


def at(day: int, hour: int = 12, minute: int = 0, tz: ZoneInfo | None = None) -> datetime:
    """Returns an aware datetime in November 2026 (UTC unless `tz` is given)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=tz or UTC)


def make_series(aggregation: str, slug: str = "cpu") -> Series:
    """Returns a new series with the given aggregation."""
    return Series.objects.create(slug=slug, name=slug.upper(), unit="%", aggregation=aggregation)


def add(series: Series, *points: tuple[datetime, float]) -> list[Metric]:
    """Creates the (timestamp, value) points of a series; returns them in creation order."""
    return [Metric.objects.create(series=series, timestamp=t, value=v) for t, v in points]


def sample(series: Series) -> None:
    """Adds three Monday values (out of time order), one Wednesday value, nothing else."""
    add(series, (at(23, 9), 4.0), (at(23, 18), 1.0), (at(23, 7), 7.0), (at(25, 12), 2.5))


@pytest.mark.parametrize(
    ("aggregation", "monday"),
    [("sum", 12.0), ("avg", 4.0), ("min", 1.0), ("max", 7.0), ("last", 1.0)],
)
def test_each_aggregation_computes_the_days_value(aggregation, monday):
    """Tests that sum, avg, min, max and last each reduce a day's metrics to its value."""
    series = make_series(aggregation)
    sample(series)
    week = series_week(series=series, week=W48)
    assert week["values"] == [monday, None, 2.5, None, None, None, None]


def test_payload_has_the_contract_shape():
    """Tests that the payload holds exactly series, week, labels, values, unit, aggregation."""
    series = make_series("avg")
    add(series, (at(29, 8), 3.0))
    assert series_week(series=series, week=W48) == {
        "series": "cpu",
        "week": "2026-W48",
        "labels": W48_LABELS,
        "values": [None, None, None, None, None, None, 3.0],
        "unit": "%",
        "aggregation": "avg",
    }


def test_empty_week_is_seven_nulls():
    """Tests that a week without metrics has seven labels and seven null values."""
    series = make_series("sum")
    add(series, (at(30, 12), 1.0))
    week = series_week(series=series, week=W48)
    assert week["labels"] == W48_LABELS
    assert week["values"] == [None] * 7


def test_other_series_are_not_counted():
    """Tests that another series' metrics on the same days do not leak into the week."""
    series, other = make_series("sum"), make_series("sum", slug="ram")
    add(series, (at(24), 1.0))
    add(other, (at(24), 100.0), (at(26), 5.0))
    assert series_week(series=series, week=W48)["values"] == [None, 1.0, *[None] * 5]


def test_last_takes_the_latest_timestamp_not_the_latest_insert():
    """Tests that `last` is the value with the latest timestamp, whatever the insert order."""
    series = make_series("last")
    add(series, (at(24, 20), 9.0), (at(24, 6), 1.0), (at(26, 1), 3.0), (at(26, 23, 59), 4.0))
    assert series_week(series=series, week=W48)["values"] == [None, 9.0, None, 4.0, *[None] * 3]


def test_last_breaks_timestamp_ties_by_primary_key():
    """Tests that of two metrics at the same instant, `last` is the one created later."""
    series = make_series("last")
    add(series, (at(27, 10), 5.0), (at(27, 10), 6.0), (at(27, 9), 8.0))
    assert series_week(series=series, week=W48)["values"][4] == 6.0


def test_sunday_night_belongs_to_the_week_and_monday_midnight_to_the_next():
    """Tests that Sunday 23:59 local is the week's last day and Monday 00:00 the next week."""
    series = make_series("sum")
    add(series, (at(29, 23, 59), 1.0), (at(30, 0, 0), 10.0), (at(23, 0, 0), 100.0))
    assert series_week(series=series, week=W48)["values"] == [100.0, *[None] * 5, 1.0]
    assert series_week(series=series, week=IsoWeek(2026, 49))["values"][0] == 10.0


def test_days_follow_the_settings_time_zone(settings):
    """Tests that with TIME_ZONE Europe/Berlin, 23:30 UTC Tuesday counts for Wednesday."""
    settings.TIME_ZONE = "Europe/Berlin"
    series = make_series("sum")
    add(series, (at(24, 23, 30), 2.0), (at(24, 22, 30), 1.0))
    assert series_week(series=series, week=W48)["values"] == [None, 1.0, 2.0, *[None] * 4]


def test_a_week_read_again_follows_a_changed_time_zone(settings):
    """Tests that a week read again after TIME_ZONE changed is cut at the new zone's midnights."""
    series = make_series("sum")
    add(series, (at(24, 23, 30), 2.0), (at(24, 22, 30), 1.0))
    assert series_week(series=series, week=W48)["values"] == [None, 3.0, *[None] * 5]
    settings.TIME_ZONE = "Europe/Berlin"
    assert series_week(series=series, week=W48)["values"] == [None, 1.0, 2.0, *[None] * 4]
    settings.TIME_ZONE = "America/New_York"
    assert series_week(series=series, week=W48)["values"] == [None, 3.0, *[None] * 5]


def test_week_bounds_follow_the_settings_time_zone(settings):
    """Tests that the week starts and ends at local midnight, not at UTC midnight."""
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    series = make_series("sum")
    # 23:30 UTC on Sunday 22nd is already Monday in Berlin; 23:30 UTC on the 29th is not W48.
    add(series, (at(22, 23, 30), 1.0), (at(29, 23, 30), 50.0), (at(29, 23, 59, tz=berlin), 2.0))
    assert series_week(series=series, week=W48)["values"] == [1.0, *[None] * 5, 2.0]


@pytest.mark.parametrize("aggregation", ["sum", "avg", "min", "max", "last"])
def test_the_week_is_one_aggregate_query(aggregation, django_assert_num_queries):
    """Tests that the week costs one SQL query, whatever the aggregation and the data."""
    series = make_series(aggregation)
    sample(series)
    with django_assert_num_queries(1):
        week = series_week(series=series, week=W48)
    assert week["values"][0] is not None


@pytest.mark.parametrize("aggregation", ["sum", "avg", "min", "max", "last"])
def test_by_primary_key_is_the_same_payload(aggregation, django_assert_num_queries):
    """Tests that series_week_by_pk (the stream's read) returns series_week's payload."""
    series = make_series(aggregation)
    sample(series)
    with django_assert_num_queries(2):
        week = series_week_by_pk(pk=series.pk, week=W48)
    assert week == series_week(series=series, week=W48)


def test_by_primary_key_of_no_series_is_none():
    """Tests that series_week_by_pk returns None once the series is gone."""
    series = make_series("sum")
    pk = series.pk
    series.delete()
    assert series_week_by_pk(pk=pk, week=W48) is None


@pytest.mark.parametrize("aggregation", ["sum", "avg", "min", "max", "last"])
def test_the_week_reads_the_index_alone(aggregation):
    """
    Tests that the week's query finds its rows and their values in the (series, timestamp,
    id, value) index, without a table lookup per row: its cost then grows with the day's rows
    far more slowly.
    """
    from django.db import connection

    from metrics.selectors import _week_edges, _week_sql

    series = make_series(aggregation)
    sample(series)
    edges, _ = _week_edges(connection.alias, connection.vendor, connection.timezone, W48, UTC)
    params = {"series": series.pk, **{f"e{i}": edge for i, edge in enumerate(edges)}}
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"EXPLAIN QUERY PLAN {_week_sql('default', 'sqlite', aggregation)}", params
            )
            searches = [row[3] for row in cursor.fetchall() if "metrics_metric" in row[3]]
            assert len(searches) == 7
            assert all("COVERING INDEX metric_series_ts_cover" in s for s in searches), searches
        else:
            # A handful of rows: without this the planner may rightly read the table.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute(f"EXPLAIN {_week_sql('default', 'postgresql', aggregation)}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index Only Scan using metric_series_ts_cover" in plan, plan


def test_series_pk_by_slug_finds_the_series_or_none():
    """Tests that series_pk_by_slug (every subscribe's key) finds a series by slug alone."""
    from metrics.selectors import series_pk_by_slug

    series = make_series("sum", slug="cpu")
    make_series("sum", slug="cpu-2")
    assert series_pk_by_slug(slug="cpu") == series.pk
    assert series_pk_by_slug(slug="gpu") is None


def test_can_view_series_by_pk_follows_can_view_series(django_user_model):
    """
    Tests that the subscribe's permission check by primary key says what can_view_series
    says: public series to anyone, private ones with metrics.view_series, no series never.
    """
    from django.contrib.auth.models import AnonymousUser, Permission

    from metrics.selectors import can_view_series, can_view_series_by_pk

    public = make_series("sum", slug="public")
    private = Series.objects.create(slug="private", name="P", aggregation="sum", is_public=False)
    plain = django_user_model.objects.create_user("plain")
    viewer = django_user_model.objects.create_user("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_series"))
    viewer = django_user_model.objects.get(pk=viewer.pk)
    for user in (None, AnonymousUser(), plain, viewer):
        for series in (public, private):
            expected = can_view_series(user=user, series=series)
            assert can_view_series_by_pk(user=user, pk=series.pk) is expected
    assert can_view_series_by_pk(user=viewer, pk=private.pk)
    assert not can_view_series_by_pk(user=plain, pk=private.pk)
    assert not can_view_series_by_pk(user=viewer, pk=private.pk + public.pk + 1)
