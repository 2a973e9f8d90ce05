"""
Every queryset shape Django allows for update() and delete() behaves through the streaming
manager exactly as through a plain QuerySet, on both databases: the same result (or the
same error), the same rows after, and the subscribers of a real daphne server converge on
the database. Each shape runs first on a plain QuerySet in a transaction rolled back, then
through Model.objects for real, on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet, Subquery

from metrics.models import Metric, Series
from metrics.streams import payload
from metrics.weeks import IsoWeek
from tests.support.processes import DaphneServer
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

W48, W49, W50 = IsoWeek(2026, 48), IsoWeek(2026, 49), IsoWeek(2026, 50)
# Takes the model and returns the queryset to start from: QuerySet(model) or model.objects.
Start = Callable[[type], QuerySet]
Shape = Callable[[Start], Any]


def at(week: IsoWeek, day: int, hour: int = 12) -> datetime:
    """Returns a UTC instant on a day (0 = Monday) of `week`."""
    return datetime.combine(week.days[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


def series(q: Start, slug: str) -> Series:
    """Returns the series with `slug`."""
    return q(Series).get(slug=slug)


def metrics_of_cpu() -> QuerySet:
    """Returns a plain queryset of cpu's metric pks below 3, for subqueries."""
    return QuerySet(Metric).filter(series__slug="cpu", value__lt=3).values("pk")


def exists_in_mem() -> Exists:
    """Returns an Exists() true for metrics of the mem series."""
    return Exists(QuerySet(Series).filter(pk=OuterRef("series"), slug="mem"))


def count_of_series() -> Subquery:
    """Returns a subquery: the number of metrics of the row's series."""
    counts = QuerySet(Series).filter(pk=OuterRef("series")).annotate(c=Count("metrics"))
    return Subquery(counts.values("c")[:1])


UPDATES: dict[str, Shape] = {
    "filter and F": lambda q: (
        q(Metric).filter(series__slug="cpu", value__gte=3).update(value=F("value") * 2)
    ),
    "exclude": lambda q: q(Metric).exclude(series__slug="cpu").update(value=9),
    "annotate Count then filter": lambda q: (
        q(Metric).annotate(n=Count("series__metrics")).filter(n__gt=3).update(value=7)
    ),
    "annotate an expression then filter": lambda q: (
        q(Metric).annotate(double=F("value") * 2).filter(double__gt=5).update(value=F("value") + 1)
    ),
    "distinct": lambda q: q(Metric).filter(series__slug="cpu").distinct().update(value=3),
    "distinct on fields": lambda q: q(Metric).distinct("series").update(value=3),
    "order_by": lambda q: q(Metric).order_by("-timestamp").update(value=4),
    "order_by an aggregate": lambda q: (
        q(Metric).annotate(n=Count("series__metrics")).order_by("n").update(value=1)
    ),
    "values": lambda q: q(Metric).filter(series__slug="cpu").values("series").update(value=2),
    "values, annotate Count, filter": lambda q: (
        q(Metric).values("series").annotate(n=Count("id")).filter(n__gt=2).update(value=6)
    ),
    "pk in a values subquery": lambda q: (
        q(Metric).filter(pk__in=metrics_of_cpu()).update(value=0.5)
    ),
    "Exists": lambda q: q(Metric).filter(exists_in_mem()).update(value=11),
    "a Subquery value": lambda q: q(Metric).update(value=count_of_series()),
    "a related filter moving rows a week": lambda q: (
        q(Metric)
        .filter(series__slug="cpu", timestamp__lt=at(W49, 0))
        .update(timestamp=F("timestamp") + timedelta(days=7))
    ),
    "moving rows to another series": lambda q: (
        q(Metric).filter(series__slug="cpu", value__gt=4).update(series=series(q, "mem"))
    ),
    "select_related": lambda q: (
        q(Metric).select_related("series").filter(series__is_public=True).update(value=1)
    ),
    "select_for_update": lambda q: (
        q(Metric).select_for_update().filter(series__slug="mem").update(value=8)
    ),
    "none": lambda q: q(Metric).none().update(value=1),
    "a slice (refused)": lambda q: q(Metric)[:2].update(value=1),
    "union (refused)": lambda q: (
        q(Metric)
        .filter(series__slug="cpu")
        .union(q(Metric).filter(series__slug="mem"))
        .update(value=1)
    ),
    "a series' unit": lambda q: q(Series).filter(slug="cpu").update(unit="%"),
}

DELETES: dict[str, Shape] = {
    "filter": lambda q: q(Metric).filter(series__slug="cpu", value__lt=3).delete(),
    "exclude": lambda q: q(Metric).exclude(series__slug="cpu").delete(),
    "annotate Count then filter": lambda q: (
        q(Metric).annotate(n=Count("series__metrics")).filter(n__gt=3).delete()
    ),
    "distinct": lambda q: q(Metric).filter(series__slug="cpu").distinct().delete(),
    "distinct on fields (refused)": lambda q: q(Metric).distinct("series").delete(),
    "order_by": lambda q: q(Metric).order_by("value").delete(),
    "pk in a values subquery": lambda q: q(Metric).filter(pk__in=metrics_of_cpu()).delete(),
    "Exists": lambda q: q(Metric).filter(exists_in_mem()).delete(),
    "a related filter": lambda q: q(Metric).filter(series__slug="mem").delete(),
    "select_related": lambda q: (
        q(Metric).select_related("series").filter(series__is_public=True, value__gt=3).delete()
    ),
    "all": lambda q: q(Metric).all().delete(),
    "a slice (refused)": lambda q: q(Metric)[:2].delete(),
    "union (refused)": lambda q: (
        q(Metric).filter(series__slug="cpu").union(q(Metric).filter(series__slug="mem")).delete()
    ),
    "values (refused)": lambda q: q(Metric).values("pk").delete(),
    "a series, cascading": lambda q: q(Series).filter(slug="cpu").delete(),
}


def plain(model: type) -> QuerySet:
    """Returns a QuerySet that streaming does not watch."""
    return QuerySet(model)


def managed(model: type) -> QuerySet:
    """Returns the model's default manager's QuerySet (a StreamingQuerySet)."""
    return model.objects.all()


def make_data() -> None:
    """Creates cpu (6 metrics in W48, 3 in W49) and mem (2 in W48)."""
    cpu = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
    mem = Series.objects.create(slug="mem", name="Memory", aggregation="sum")
    rows = [Metric(series=cpu, timestamp=at(W48, i), value=i + 1) for i in range(6)]
    rows += [Metric(series=cpu, timestamp=at(W49, i), value=i + 1) for i in range(3)]
    rows += [Metric(series=mem, timestamp=at(W48, i), value=i + 2) for i in range(2)]
    Metric.objects.bulk_create(rows)


def state() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Returns every series and metric row."""
    metrics = QuerySet(Metric).order_by("pk").values_list("pk", "series_id", "timestamp", "value")
    rows = QuerySet(Series).order_by("pk").values_list("pk", "slug", "unit")
    return list(rows), list(metrics)


def outcome(shape: Shape, start: Start) -> Any:
    """Returns what the shape returned, or its error's type and text."""
    try:
        with transaction.atomic():
            return shape(start)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def plain_outcome(shape: Shape) -> tuple[Any, Any]:
    """Returns the shape's outcome on a plain QuerySet and the rows after, then rolls back."""
    with transaction.atomic():
        result = outcome(shape, plain)
        after = state()
        transaction.set_rollback(True)
    return result, after


def managed_outcome(shape: Shape) -> tuple[Any, Any]:
    """Returns the shape's outcome through Model.objects, in autocommit, and the rows after."""
    try:
        result = shape(managed)
    except Exception as exc:
        result = type(exc).__name__, str(exc)
    return result, state()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, redis_url: str) -> Iterator[DaphneServer]:
    """Returns one daphne server through Redis for every shape (each test has fresh data)."""
    process = DaphneServer(redis_url).start()
    yield process
    process.stop()


async def check(shape: Shape, server: DaphneServer) -> None:
    """Runs `shape` both ways and checks the outcomes match and a subscriber converges."""
    await sync_to_async(make_data)()
    client = await StreamSubscriber(server.ws_url).connect()
    for slug in ("cpu", "mem"):
        for week in (W48, W49, W50):
            reply = await client.subscribe("metrics.week", series=slug, week=str(week))
            assert reply["response_status"] == 200, reply
    keys = list(client.state)

    expected, expected_rows = await sync_to_async(plain_outcome)(shape)
    result, rows = await sync_to_async(managed_outcome)(shape)
    assert result == expected
    assert rows == expected_rows

    for key in keys:
        wanted = await sync_to_async(payload)(key, None)
        await client.wait_for(lambda c: c.payload(key) == wanted, 15)  # noqa: B023
    await client.close()


@pytest.mark.parametrize("name", list(UPDATES))
async def test_update_shapes_behave_as_plain_django_and_reach_subscribers(server, use_redis, name):
    """Tests that an update() of this shape matches a plain QuerySet's and converges."""
    await check(UPDATES[name], server)


@pytest.mark.parametrize("name", list(DELETES))
async def test_delete_shapes_behave_as_plain_django_and_reach_subscribers(server, use_redis, name):
    """Tests that a delete() of this shape matches a plain QuerySet's and converges."""
    await check(DELETES[name], server)


def test_the_shapes_that_failed_with_row_locks_change_rows(transactional_db):
    """
    Tests that the shapes FOR UPDATE refused on PostgreSQL (GROUP BY, DISTINCT) do write:
    the comparison above is not between two identical errors.
    """
    make_data()
    assert Metric.objects.annotate(n=Count("series__metrics")).filter(n__gt=3).update(value=7) == 9
    assert Metric.objects.filter(series__slug="cpu").distinct().update(value=3) == 9
    assert Metric.objects.annotate(n=Count("series__metrics")).filter(n__gt=3).delete()[0] == 9
    assert Metric.objects.distinct().delete()[0] == 2
    assert not Metric.objects.exists()
