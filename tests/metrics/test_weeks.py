"""
Time: weeks follow settings.TIME_ZONE across DST changes (Europe/Berlin: summer time starts
on Sunday 2026-03-29, in 2026-W13, and ends on Sunday 2026-10-25, in 2026-W43), ISO week 53
exists in 2026, and the weeks straddling the year boundary (2026-W53, 2027-W01) work.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import streaming
from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.streams import params_key
from metrics.weeks import IsoWeek, weeks_in_year

BERLIN = ZoneInfo("Europe/Berlin")
SPRING, AUTUMN = IsoWeek(2026, 13), IsoWeek(2026, 43)


@pytest.fixture(autouse=True)
def berlin(settings) -> None:
    """Runs every test with TIME_ZONE = Europe/Berlin."""
    settings.TIME_ZONE = "Europe/Berlin"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """Returns a Berlin wall-clock time as an aware datetime."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize("week", [SPRING, AUTUMN])
def test_a_week_with_a_dst_change_still_runs_monday_to_sunday(week):
    """Tests that a DST week has seven days, Monday first and Sunday (the change) last."""
    days = week.days
    assert len(days) == 7
    assert [d.isoweekday() for d in days] == [1, 2, 3, 4, 5, 6, 7]
    assert days[-1] in (date(2026, 3, 29), date(2026, 10, 25))
    assert week.shift(1).monday == days[-1] + timedelta(days=1)


def test_bounds_of_a_dst_week_are_local_midnights_an_hour_short_or_long():
    """Tests that bounds() runs from local Monday midnight to the next, 167 h or 169 h apart."""
    start, end = SPRING.bounds()
    assert (start, end) == (local(date(2026, 3, 23), 0), local(date(2026, 3, 30), 0))
    assert (start.utcoffset(), end.utcoffset()) == (timedelta(hours=1), timedelta(hours=2))
    # Same-tzinfo subtraction is wall-clock time in Python: compare in UTC.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=167)
    start, end = AUTUMN.bounds()
    assert (start.utcoffset(), end.utcoffset()) == (timedelta(hours=2), timedelta(hours=1))
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=169)


@pytest.mark.parametrize("week", [SPRING, AUTUMN])
def test_a_metric_at_half_past_midnight_lands_on_its_local_day(week):
    """Tests that IsoWeek.of and bounds() put 00:30 local time of each day in its own day."""
    start, end = week.bounds()
    for day in week.days:
        moment = local(day, 0, 30).astimezone(UTC)
        assert IsoWeek.of(moment) == week
        assert start <= moment < end
    # The Monday after, at 00:30 local, is already the next week (it is Sunday in UTC).
    after = local(week.days[-1] + timedelta(days=1), 0, 30).astimezone(UTC)
    assert after.date() == week.days[-1]
    assert IsoWeek.of(after) == week.shift(1)
    assert not after < end


@pytest.mark.django_db
@pytest.mark.parametrize("week", [SPRING, AUTUMN])
def test_the_selector_puts_each_half_past_midnight_metric_on_its_local_day(week):
    """Tests that series_week() counts a 00:30 local metric of day i at index i, DST or not."""
    series = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
    for i, day in enumerate(week.days):
        Metric.objects.create(series=series, timestamp=local(day, 0, 30), value=i + 1)
        Metric.objects.create(series=series, timestamp=local(day, 23, 30), value=10 * (i + 1))
    # Just outside: Sunday 23:59 before the week, Monday 00:30 after it.
    Metric.objects.create(
        series=series, timestamp=local(week.monday, 0) - timedelta(minutes=1), value=1000
    )
    next_monday = week.days[-1] + timedelta(days=1)
    Metric.objects.create(series=series, timestamp=local(next_monday, 0, 30), value=1000)
    payload = series_week(series=series, week=week)
    assert payload["labels"] == [d.isoformat() for d in week.days]
    assert payload["values"] == [11.0 * (i + 1) for i in range(7)]


def test_2026_has_an_iso_week_53_and_2027_has_not():
    """Tests that 2026-W53 parses (Dec 28th is in week 53) and 2027-W53 is refused."""
    assert date(2026, 12, 28).isocalendar()[1] == 53
    assert weeks_in_year(2026) == 53
    assert weeks_in_year(2027) == 52
    assert IsoWeek.parse("2026-W53") == IsoWeek(2026, 53)
    with pytest.raises(ValueError):
        IsoWeek.parse("2027-W53")


@pytest.mark.django_db
def test_subscribing_to_a_week_53_that_does_not_exist_is_invalid():
    """Tests that subscribe params with 2027-W53 are a 400 (InvalidParams), 2026-W53 a key."""
    series = Series.objects.create(slug="cpu", name="CPU")
    assert params_key({"series": "cpu", "week": "2026-W53"}) == f"{series.pk}:2026-W53"
    with pytest.raises(streaming.InvalidParams):
        params_key({"series": "cpu", "week": "2027-W53"})


def test_week_53_straddles_the_year_and_shifts_into_2027_w01():
    """Tests that 2026-W53 runs Mon 2026-12-28 to Sun 2027-01-03 and shifts to 2027-W01."""
    w53 = IsoWeek(2026, 53)
    assert w53.days[0] == date(2026, 12, 28)
    assert w53.days[-1] == date(2027, 1, 3)
    assert w53.shift(1) == IsoWeek(2027, 1)
    assert IsoWeek(2027, 1).shift(-1) == w53
    assert IsoWeek(2026, 52).shift(1) == w53
    assert w53.shift(2) == IsoWeek(2027, 2)
    assert str(w53.shift(1)) == "2027-W01"
    assert IsoWeek.of(date(2027, 1, 1)) == w53
    assert IsoWeek.of(date(2027, 1, 4)) == IsoWeek(2027, 1)
    assert w53 < IsoWeek(2027, 1)


@pytest.mark.django_db
def test_the_selector_splits_new_year_by_local_time():
    """Tests that 2026-W53 and 2027-W01 payloads hold their own days, in Berlin time."""
    series = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
    # 23:30 UTC on New Year's Eve is already 00:30 on January 1st in Berlin.
    Metric.objects.create(
        series=series, timestamp=datetime(2026, 12, 31, 23, 30, tzinfo=UTC), value=1
    )
    Metric.objects.create(series=series, timestamp=local(date(2027, 1, 3), 23, 30), value=2)
    Metric.objects.create(series=series, timestamp=local(date(2027, 1, 4), 0, 30), value=4)
    w53 = series_week(series=series, week=IsoWeek(2026, 53))
    w01 = series_week(series=series, week=IsoWeek(2027, 1))
    assert w53["week"] == "2026-W53"
    assert w53["labels"][0] == "2026-12-28"
    assert w53["labels"][-1] == "2027-01-03"
    assert w53["values"] == [None, None, None, None, 1.0, None, 2.0]
    assert w01["labels"] == [(date(2027, 1, 4) + timedelta(days=i)).isoformat() for i in range(7)]
    assert w01["values"] == [4.0, None, None, None, None, None, None]
