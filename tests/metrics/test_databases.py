"""
The week selector on whichever database the suite runs against (`make test` runs it on
SQLite, then on PostgreSQL): days cut in zones west and east of UTC, half-hour offsets
and daylight-saving weeks, where SQLite and PostgreSQL truncate dates differently.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import environ
import pytest
from django.db import connection

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek

pytestmark = pytest.mark.django_db

AGGREGATIONS = ["sum", "avg", "min", "max", "last"]


def series_with(aggregation: str, *points: tuple[datetime, float]) -> Series:
    """Returns a new series holding the (timestamp, value) points, created in that order."""
    series = Series.objects.create(slug=f"s-{aggregation}", name="S", aggregation=aggregation)
    for timestamp, value in points:
        Metric.objects.create(series=series, timestamp=timestamp, value=value)
    return series


def values(series: Series, week: IsoWeek) -> list[float | None]:
    """Returns the week's seven daily values."""
    return series_week(series=series, week=week)["values"]


def test_database_url_selects_the_backend():
    """Tests that DATABASE_URL picks the engine, and the suite runs on the one it names."""
    parsed = environ.Env.db_url_config("postgres://postgres@127.0.0.1:5432/postgres")
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert (parsed["NAME"], parsed["USER"], parsed["PORT"]) == ("postgres", "postgres", 5432)
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_days_west_of_utc(settings, aggregation):
    """Tests that in New York (UTC-5), 03:30 UTC Wednesday still counts for Tuesday."""
    settings.TIME_ZONE = "America/New_York"
    series = series_with(
        aggregation,
        (datetime(2026, 11, 25, 3, 30, tzinfo=UTC), 4.0),  # Tuesday 22:30 local
        (datetime(2026, 11, 24, 15, 0, tzinfo=UTC), 2.0),  # Tuesday 10:00 local
        (datetime(2026, 11, 25, 5, 30, tzinfo=UTC), 8.0),  # Wednesday 00:30 local
        (datetime(2026, 11, 23, 4, 59, tzinfo=UTC), 100.0),  # Sunday 23:59 local: week 47
    )
    tuesday = {"sum": 6.0, "avg": 3.0, "min": 2.0, "max": 4.0, "last": 4.0}[aggregation]
    assert values(series, IsoWeek(2026, 48)) == [None, tuesday, 8.0, None, None, None, None]
    assert values(series, IsoWeek(2026, 47))[6] == 100.0


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_days_with_a_half_hour_offset(settings, aggregation):
    """Tests that in Kolkata (UTC+5:30), 18:45 UTC Tuesday is already Wednesday."""
    settings.TIME_ZONE = "Asia/Kolkata"
    series = series_with(
        aggregation,
        (datetime(2026, 11, 24, 18, 45, tzinfo=UTC), 5.0),  # Wednesday 00:15 local
        (datetime(2026, 11, 24, 18, 15, tzinfo=UTC), 1.0),  # Tuesday 23:45 local
        (datetime(2026, 11, 22, 18, 30, tzinfo=UTC), 3.0),  # Monday 00:00 local
    )
    assert values(series, IsoWeek(2026, 48)) == [3.0, 1.0, 5.0, None, None, None, None]


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_week_of_the_spring_daylight_saving_change(settings, aggregation):
    """Tests that a 23-hour Sunday (Berlin, 2026-03-29) keeps its last hour in the week."""
    settings.TIME_ZONE = "Europe/Berlin"
    series = series_with(
        aggregation,
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 1.0),  # Sunday 01:30 CET
        (datetime(2026, 3, 29, 21, 30, tzinfo=UTC), 2.0),  # Sunday 23:30 CEST
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 9.0),  # Monday 00:30 CEST: week 14
    )
    sunday = {"sum": 3.0, "avg": 1.5, "min": 1.0, "max": 2.0, "last": 2.0}[aggregation]
    assert values(series, IsoWeek(2026, 13)) == [None] * 6 + [sunday]
    assert values(series, IsoWeek(2026, 14))[0] == 9.0


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_week_of_the_autumn_daylight_saving_change(settings, aggregation):
    """Tests that a 25-hour Sunday (New York, 2026-11-01) counts both 01:30s, in order."""
    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    series = series_with(
        aggregation,
        (datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=new_york), 7.0),  # the second 01:30 (EST)
        (datetime(2026, 11, 1, 1, 30, fold=0, tzinfo=new_york), 5.0),  # the first 01:30 (EDT)
        (datetime(2026, 11, 2, 4, 59, tzinfo=UTC), 1.0),  # Sunday 23:59 EST
    )
    sunday = {"sum": 13.0, "avg": 13.0 / 3, "min": 1.0, "max": 7.0, "last": 1.0}[aggregation]
    week = values(series, IsoWeek(2026, 44))
    assert week[:6] == [None] * 6
    assert week[6] == pytest.approx(sunday)


def test_last_is_the_latest_moment_not_the_latest_local_clock(settings):
    """Tests that `last` orders by instant: EST 01:10 comes after EDT 01:50 that night."""
    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    series = series_with(
        "last",
        (datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=new_york), 2.0),  # 06:10 UTC
        (datetime(2026, 11, 1, 1, 50, fold=0, tzinfo=new_york), 3.0),  # 05:50 UTC
    )
    assert values(series, IsoWeek(2026, 44))[6] == 2.0
