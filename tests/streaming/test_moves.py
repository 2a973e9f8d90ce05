"""
Moves and parent changes: a metric that changes week or series updates both keys (save()
and REST PATCH alike); a series' aggregation or unit change re-sends its subscribed keys;
deleting a series ends its subscribers' keys with a `gone` frame.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db.models import F, QuerySet
from django.test import Client

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True)

W48, W49 = IsoWeek(2026, 48), IsoWeek(2026, 49)
Frame = dict[str, Any]


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def monday(week: IsoWeek, hour: int = 12) -> datetime:
    """Returns a UTC instant on the Monday of `week`."""
    return datetime.combine(week.monday, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
async def series() -> dict[str, Series]:
    """Returns series cpu (one metric of 5.0 on Monday of W48) and mem (empty)."""
    cpu = await Series.objects.acreate(slug="cpu", name="CPU", unit="%")
    mem = await Series.objects.acreate(slug="mem", name="Memory")
    await Metric.objects.acreate(series=cpu, timestamp=monday(W48), value=5.0)
    await sync_to_async(publisher.flush)()
    return {"cpu": cpu, "mem": mem}


async def subscribed(*pairs: tuple[str, IsoWeek]) -> ConsumerSocket:
    """Returns a socket subscribed to each (series slug, week)."""
    socket = await ConsumerSocket().connect()
    for slug, week in pairs:
        reply = await socket.subscribe(slug, str(week))
        assert reply["response_status"] == 200, reply
    return socket


async def latest(socket: ConsumerSocket, wanted: dict[str, Any]) -> dict[str, Frame]:
    """Reads frames until each wanted key's newest payload equals its value there."""
    newest: dict[str, Frame] = {}
    while any(newest.get(k, {}).get("payload") != v for k, v in wanted.items()):
        frame = await socket.frame()
        newest[frame["key"]] = frame
    return newest


@sync_to_async
def db_week(series: Series, week: IsoWeek) -> dict[str, Any]:
    """Returns the week's payload as the database holds it now."""
    return series_week(series=Series.objects.get(pk=series.pk), week=week)


async def assert_follow(socket: ConsumerSocket, *keys: tuple[Series, IsoWeek]) -> None:
    """Waits until every (series, week) key's subscriber payload equals the database's."""
    wanted = {week_key(s.pk, w): await db_week(s, w) for s, w in keys}
    await latest(socket, wanted)


async def test_saving_a_metric_into_another_week_updates_both_weeks(series):
    """Tests that moving a metric's timestamp from W48 to W49 with save() updates both weeks."""
    cpu = series["cpu"]
    socket = await subscribed(("cpu", W48), ("cpu", W49))
    metric = await Metric.objects.aget(series=cpu)
    metric.timestamp = monday(W49)
    await metric.asave()
    await assert_follow(socket, (cpu, W48), (cpu, W49))
    assert (await db_week(cpu, W48))["values"] == [None] * 7
    await socket.close()


async def test_saving_a_metric_into_another_series_updates_both_series(series):
    """Tests that moving a metric from series cpu to mem with save() updates both keys."""
    cpu, mem = series["cpu"], series["mem"]
    socket = await subscribed(("cpu", W48), ("mem", W48))
    metric = await Metric.objects.aget(series=cpu)
    metric.series = mem
    await metric.asave()
    await assert_follow(socket, (cpu, W48), (mem, W48))
    assert (await db_week(mem, W48))["values"][0] == 5.0
    await socket.close()


async def test_saving_a_stale_instance_updates_the_week_its_row_was_in(series):
    """Tests that save() of an instance whose row moved meanwhile also updates the row's week."""
    cpu = series["cpu"]
    socket = await subscribed(("cpu", W48), ("cpu", W49))
    metric = await Metric.objects.aget(series=cpu)
    # Another program moves the row to W49 (a plain QuerySet: streaming cannot see it).
    await sync_to_async(QuerySet(Metric).filter(pk=metric.pk).update)(
        timestamp=F("timestamp") + timedelta(weeks=1)
    )
    metric.value = 7.0
    await metric.asave()
    # The save put the row back in W48: W49, where subscribers still had it, must empty.
    await assert_follow(socket, (cpu, W48), (cpu, W49))
    assert (await db_week(cpu, W49))["values"] == [None] * 7
    await socket.close()


def patch_metric(pk: int, body: dict[str, Any]) -> int:
    """PATCHes /api/metrics/<pk>/ as a user allowed to change metrics; returns the status."""
    user = User.objects.create_user("editor")
    user.user_permissions.add(Permission.objects.get(codename="change_metric"))
    client = Client()
    client.force_login(user)
    response = client.patch(f"/api/metrics/{pk}/", body, content_type="application/json")
    return response.status_code


async def test_rest_patch_moving_a_metric_updates_both_weeks(series):
    """Tests that PATCH of a metric's timestamp through the REST API updates W48 and W49."""
    cpu = series["cpu"]
    socket = await subscribed(("cpu", W48), ("cpu", W49))
    metric = await Metric.objects.aget(series=cpu)
    status = await sync_to_async(patch_metric)(metric.pk, {"timestamp": "2026-12-01T09:00:00Z"})
    assert status == 200
    await assert_follow(socket, (cpu, W48), (cpu, W49))
    assert (await db_week(cpu, W49))["values"][1] == 5.0
    await socket.close()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("aggregation", "max", {"aggregation": "max"}), ("unit", "MB", {"unit": "MB"})],
)
async def test_changing_a_series_resends_its_subscribed_weeks(series, field, value, expected):
    """Tests that saving a series' aggregation or unit re-sends every week it has subscribers."""
    cpu = series["cpu"]
    await Metric.objects.acreate(series=cpu, timestamp=monday(W48, 13), value=3.0)
    await Metric.objects.acreate(series=cpu, timestamp=monday(W49), value=1.0)
    socket = await subscribed(("cpu", W48), ("cpu", W49))
    setattr(cpu, field, value)
    await cpu.asave()
    newest = await latest(socket, {week_key(cpu.pk, w): await db_week(cpu, w) for w in (W48, W49)})
    for frame in newest.values():
        assert frame["action"] == "update"
        assert expected.items() <= frame["payload"].items()
    if field == "aggregation":
        assert newest[week_key(cpu.pk, W48)]["payload"]["values"][0] == 5.0
    await socket.close()


async def test_deleting_a_series_sends_gone_to_its_subscribers(series):
    """Tests that deleting a series ends each subscribed week with one final `gone` frame."""
    cpu = series["cpu"]
    socket = await subscribed(("cpu", W48), ("cpu", W49), ("mem", W48))
    keys = {week_key(cpu.pk, W48), week_key(cpu.pk, W49)}
    await cpu.adelete()
    gone: dict[str, Frame] = {}
    while set(gone) != keys:
        frame = await socket.frame()
        assert frame["key"] in keys, frame
        if frame["action"] == "gone":
            gone[frame["key"]] = frame
    for key, frame in gone.items():
        assert frame == {
            "action": "gone",
            "stream": "metrics.week",
            "key": key,
            "version": frame["version"],
        }
    # Gone is final: nothing more comes for those keys.
    assert await socket.quiet(0.3)
    await socket.close()


async def test_bulk_update_of_series_resends_their_subscribed_weeks(series):
    """Tests that Series.objects.update() re-sends the subscribed weeks of every series it hit."""
    cpu, mem = series["cpu"], series["mem"]
    socket = await subscribed(("cpu", W48), ("mem", W48))
    await Series.objects.filter(pk__in=[cpu.pk, mem.pk]).aupdate(unit="units")
    newest = await latest(socket, {week_key(s.pk, W48): await db_week(s, W48) for s in (cpu, mem)})
    assert {frame["payload"]["unit"] for frame in newest.values()} == {"units"}
    await socket.close()
