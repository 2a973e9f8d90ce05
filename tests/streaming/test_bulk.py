"""
Bulk writes through Metric.objects (StreamingQuerySet): update(), bulk_create(),
bulk_update() and delete() broadcast every affected key, old and new, exactly once per
transaction, with a number of queries that does not grow with the number of rows.

"Exactly once" is counted with a sentinel: after the bulk write, a metric is written to
another key; once the sentinel's update arrives, everything sent before it has arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.test.utils import CaptureQueriesContext

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True)

W48, W49, W50 = IsoWeek(2026, 48), IsoWeek(2026, 49), IsoWeek(2026, 50)
Frame = dict[str, Any]


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def at(week: IsoWeek, day: int, hour: int = 12) -> datetime:
    """Returns a UTC instant on a day (0 = Monday) of `week`."""
    return datetime.combine(week.days[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


def make_rows(series: Series, week: IsoWeek, count: int, value: float = 1.0) -> None:
    """Creates `count` metrics spread over the days of `week`."""
    Metric.objects.bulk_create(
        Metric(series=series, timestamp=at(week, i % 7, i % 20), value=value) for i in range(count)
    )


async def subscribed(*pairs: tuple[str, IsoWeek]) -> ConsumerSocket:
    """Returns a socket subscribed to each (series slug, week), after earlier writes went out."""
    await sync_to_async(publisher.flush)()
    socket = await ConsumerSocket().connect()
    for slug, week in pairs:
        reply = await socket.subscribe(slug, str(week))
        assert reply["response_status"] == 200, reply
    return socket


async def frames_until_sentinel(socket: ConsumerSocket, sentinel: Series) -> list[Frame]:
    """Writes a metric to the sentinel's week 2026-W50; returns the frames before its update."""
    await sync_to_async(Metric.objects.create)(series=sentinel, timestamp=at(W50, 0), value=1)
    sentinel_key = week_key(sentinel.pk, W50)
    frames = []
    while (frame := await socket.frame())["key"] != sentinel_key:
        frames.append(frame)
    assert await socket.quiet(0.2)
    return frames


def per_key(frames: list[Frame]) -> dict[str, list[Frame]]:
    """Groups frames by key."""
    grouped: dict[str, list[Frame]] = {}
    for frame in frames:
        grouped.setdefault(frame["key"], []).append(frame)
    return grouped


@sync_to_async
def current(series: Series, week: IsoWeek) -> dict[str, Any]:
    """Returns the week's payload as the database holds it now."""
    return series_week(series=Series.objects.get(pk=series.pk), week=week)


async def run_bulk(
    write: Callable[[Series, Series], Any], expected: list[tuple[str, IsoWeek]], once: bool = True
) -> dict[str, list[Frame]]:
    """
    Runs `write(cpu, mem)` against 10 metrics of cpu in W48 and 10 in W49, subscribed to
    cpu and mem in W48 and W49; checks each expected key got one frame equal to the
    database (or, not `once`, ended equal to it), and no other key got any. Returns the frames
    by key.
    """
    cpu = await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    mem = await sync_to_async(Series.objects.create)(slug="mem", name="Memory")
    sentinel = await sync_to_async(Series.objects.create)(slug="sentinel", name="Sentinel")
    await sync_to_async(make_rows)(cpu, W48, 10)
    await sync_to_async(make_rows)(cpu, W49, 10)
    pairs = [(s, w) for s in ("cpu", "mem") for w in (W48, W49)] + [("sentinel", W50)]
    socket = await subscribed(*pairs)

    await sync_to_async(write)(cpu, mem)
    series = {"cpu": cpu, "mem": mem}
    wanted = {week_key(series[slug].pk, week): (series[slug], week) for slug, week in expected}
    early: list[Frame] = []
    if not once:
        # Writes the relay alone carries come later than signalled ones: wait for them.
        states = {key: await current(s, week) for key, (s, week) in wanted.items()}
        held: dict[str, Any] = {}
        while any(held.get(key) != state for key, state in states.items()):
            frame = await socket.frame()
            early.append(frame)
            held[frame["key"]] = frame.get("payload")
    frames = per_key(early + await frames_until_sentinel(socket, sentinel))
    assert set(frames) == set(wanted)
    for key, (s, week) in wanted.items():
        if once:
            assert len(frames[key]) == 1, frames[key]
        assert frames[key][-1]["payload"] == await current(s, week)
    await socket.close()
    return frames


async def test_update_of_values_broadcasts_each_week_once():
    """Tests that QuerySet.update() over rows of two weeks sends one update per week."""
    frames = await run_bulk(
        lambda cpu, mem: Metric.objects.filter(series=cpu).update(value=2.5),
        [("cpu", W48), ("cpu", W49)],
    )
    assert {sum(f[0]["payload"]["values"]) for f in frames.values()} == {25.0}


async def test_update_moving_rows_a_week_later_broadcasts_old_and_new_weeks():
    """Tests that update(timestamp=F() + 1 week) on W48 rows updates W48 (now empty) and W49."""
    await run_bulk(
        lambda cpu, mem: Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0)).update(
            timestamp=F("timestamp") + timedelta(weeks=1)
        ),
        [("cpu", W48), ("cpu", W49)],
    )


async def test_update_moving_rows_with_a_plain_value_broadcasts_old_and_new_weeks():
    """Tests that update(timestamp=<datetime in W49>) on W48 rows updates both weeks."""
    await run_bulk(
        lambda cpu, mem: Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0)).update(
            timestamp=at(W49, 3)
        ),
        [("cpu", W48), ("cpu", W49)],
    )


async def test_update_moving_rows_to_another_series_broadcasts_both_series():
    """Tests that update(series=mem) moves the W48 rows: cpu's W48 and mem's W48 update."""
    await run_bulk(
        lambda cpu, mem: Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0)).update(
            series=mem
        ),
        [("cpu", W48), ("mem", W48)],
    )


async def test_bulk_create_broadcasts_each_week_once():
    """Tests that bulk_create() of 50 metrics over two weeks sends one update per week."""

    def write(cpu: Series, mem: Series) -> None:
        make_rows(mem, W48, 25, value=2.0)
        make_rows(mem, W49, 25, value=2.0)

    frames = await run_bulk(write, [("mem", W48), ("mem", W49)])
    assert {sum(f[0]["payload"]["values"]) for f in frames.values()} == {50.0}


async def test_bulk_create_upserting_existing_rows_broadcasts_their_old_weeks_too():
    """Tests that bulk_create(update_conflicts=True) moving W48 rows to W49 updates both."""

    def write(cpu: Series, mem: Series) -> None:
        rows = Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0))
        upserts = [Metric(pk=m.pk, series=cpu, timestamp=at(W49, 6), value=2.0) for m in rows]
        Metric.objects.bulk_create(
            upserts,
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["timestamp", "value"],
        )

    frames = await run_bulk(write, [("cpu", W48), ("cpu", W49)])
    w48 = next(f for key, f in frames.items() if key.endswith(str(W48)))
    assert w48[0]["payload"]["values"] == [None] * 7


async def test_bulk_update_moving_timestamps_broadcasts_old_and_new_weeks():
    """Tests that bulk_update(["timestamp", "value"]) moving W48 rows to W49 updates both."""

    def write(cpu: Series, mem: Series) -> None:
        rows = list(Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0)))
        for row in rows:
            row.timestamp += timedelta(weeks=1)
            row.value = 3.0
        Metric.objects.bulk_update(rows, ["timestamp", "value"])

    await run_bulk(write, [("cpu", W48), ("cpu", W49)])


async def test_bulk_update_after_an_unmanaged_move_sends_both_weeks():
    """
    Tests that rows moved by a plain QuerySet (no StreamingManager) then bulk_update()d from
    stale objects end with both weeks equal to the database: the triggers capture the move.
    """

    def write(cpu: Series, mem: Series) -> None:
        rows = list(Metric.objects.filter(series=cpu, timestamp__lt=at(W49, 0, 0)))
        QuerySet(Metric).filter(pk__in=[r.pk for r in rows]).update(
            timestamp=F("timestamp") + timedelta(weeks=1)
        )
        for row in rows:
            row.value = 4.0
        Metric.objects.bulk_update(rows, ["value"])

    frames = await run_bulk(write, [("cpu", W48), ("cpu", W49)], once=False)
    w49 = frames[week_key(frames_series(frames, W49), W49)][-1]["payload"]["values"]
    assert sum(v for v in w49 if v) == 50.0


def frames_series(frames: dict[str, list[Frame]], week: IsoWeek) -> int:
    """Returns the series id of the one key of `week` in `frames`."""
    return next(int(key.split(":")[0]) for key in frames if key.endswith(str(week)))


async def test_queryset_delete_broadcasts_each_week_once():
    """Tests that QuerySet.delete() of rows over two weeks sends one update per week."""
    frames = await run_bulk(
        lambda cpu, mem: Metric.objects.filter(series=cpu).delete(),
        [("cpu", W48), ("cpu", W49)],
    )
    assert all(f[0]["payload"]["values"] == [None] * 7 for f in frames.values())


async def test_several_bulk_writes_in_one_transaction_send_each_key_once():
    """Tests that update, bulk_create, bulk_update and delete in one atomic send one per key."""

    def write(cpu: Series, mem: Series) -> None:
        with transaction.atomic():
            Metric.objects.filter(series=cpu).update(value=5.0)
            make_rows(cpu, W48, 5)
            rows = list(Metric.objects.filter(series=cpu, timestamp__gte=at(W49, 0, 0)))
            for row in rows:
                row.timestamp -= timedelta(weeks=1)
            Metric.objects.bulk_update(rows[:5], ["timestamp"])
            Metric.objects.filter(series=cpu, value=1.0).delete()

    await run_bulk(write, [("cpu", W48), ("cpu", W49)])


def moved_copies(series: Series) -> list[Metric]:
    """Returns unsaved copies of the series' metrics, a week later (for bulk_update)."""
    return [
        Metric(pk=m.pk, series_id=m.series_id, timestamp=m.timestamp + timedelta(weeks=1))
        for m in Metric.objects.filter(series=series)
    ]


# Each returns the bulk call to count, after doing the reads it needs uncounted.
BULK_WRITES: dict[str, Callable[[Series, Series, int], Callable[[], Any]]] = {
    "update": lambda s, o, n: lambda: Metric.objects.filter(series=s).update(value=9.0),
    "update-move": lambda s, o, n: (
        lambda: Metric.objects.filter(series=s).update(
            timestamp=F("timestamp") + timedelta(weeks=1)
        )
    ),
    "update-series": lambda s, o, n: lambda: Metric.objects.filter(series=s).update(series=o),
    "bulk_create": lambda s, o, n: lambda: make_rows(s, W49, n),
    "bulk_update": lambda s, o, n: (
        lambda copies: lambda: Metric.objects.bulk_update(copies, ["timestamp"])
    )(moved_copies(s)),
    "delete": lambda s, o, n: lambda: Metric.objects.filter(series=s).delete(),
}


def queries_of(name: str, rows: int) -> int:
    """Returns the queries one bulk call of `name` issues over `rows` rows."""
    series = Series.objects.create(slug=f"s{rows}", name="S")
    other = Series.objects.create(slug=f"o{rows}", name="O")
    make_rows(series, W48, rows)
    call = BULK_WRITES[name](series, other, rows)
    with CaptureQueriesContext(connection) as captured:
        call()
    return len(captured)


@pytest.mark.parametrize("name", sorted(BULK_WRITES))
def test_bulk_calls_issue_as_many_queries_for_200_rows_as_for_10(name):
    """Tests that each bulk call's query count is the same for 10 and for 200 rows."""
    small, large = queries_of(name, 10), queries_of(name, 200)
    assert small == large
    # BEGIN and COMMIT count too on SQLite: keys read before, the write, keys read after.
    assert large <= 5


def test_the_django_private_api_streaming_relies_on_is_there():
    """
    Tests the canary for streaming/capture/django_private.py: Django still has the private
    attributes its fast QuerySet.delete() uses, so the fast path is attached.
    """
    from streaming.capture import django_private

    assert django_private.ATTACHED
