"""
The async ORM broadcasts like the sync one: acreate, asave, adelete, the async bulk
QuerySet methods, and writes made by an async view.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient
from django.urls import path

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True)

W48, W49 = IsoWeek(2026, 48), IsoWeek(2026, 49)
MONDAY = datetime(2026, 11, 23, 12, tzinfo=UTC)


def write_in_atomic_block(series_id: int, value: float) -> Metric:
    """Creates a metric and moves it a week later, in one transaction."""
    with transaction.atomic():
        metric = Metric.objects.create(series_id=series_id, timestamp=MONDAY, value=value)
        metric.timestamp += timedelta(weeks=1)
        metric.save()
    return metric


# ATOMIC_REQUESTS cannot wrap an async view: it opts out, and runs transactions itself.
@transaction.non_atomic_requests
async def record(request: HttpRequest) -> JsonResponse:
    """An async view: creates a W48 metric, then a W49 one in its own transaction."""
    body = json.loads(request.body)
    series = await Series.objects.aget(slug=body["series"])
    first = await Metric.objects.acreate(series=series, timestamp=MONDAY, value=body["value"])
    second = await sync_to_async(write_in_atomic_block)(series.pk, body["value"])
    return JsonResponse({"ids": [first.pk, second.pk]}, status=201)


# Used as ROOT_URLCONF by the async view test.
urlpatterns = [path("record/", record)]


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
async def socket() -> Any:
    """Returns a socket subscribed to cpu's W48 and W49."""
    await Series.objects.acreate(slug="cpu", name="CPU")
    await sync_to_async(publisher.flush)()
    socket = await ConsumerSocket().connect()
    for week in (W48, W49):
        reply = await socket.subscribe("cpu", str(week))
        assert reply["response_status"] == 200, reply
    yield socket
    await socket.close()


@sync_to_async
def db_payloads() -> dict[str, dict[str, Any]]:
    """Returns cpu's W48 and W49 payloads as the database holds them now, by key."""
    cpu = Series.objects.get(slug="cpu")
    return {week_key(cpu.pk, w): series_week(series=cpu, week=w) for w in (W48, W49)}


async def converged(socket: ConsumerSocket, keys: set[str] | None = None) -> dict[str, Any]:
    """Reads frames until the newest payload of each key (default: both) equals the database's."""
    wanted = await db_payloads()
    if keys is not None:
        wanted = {k: v for k, v in wanted.items() if k in keys}
    newest: dict[str, Any] = {}
    while any(newest.get(k) != v for k, v in wanted.items()):
        frame = await socket.frame()
        newest[frame["key"]] = frame["payload"]
    return newest


async def test_acreate_asave_adelete_each_broadcast(socket):
    """Tests that acreate, asave (a move to W49) and adelete each reach the subscriber."""
    cpu = await Series.objects.aget(slug="cpu")
    w48, w49 = week_key(cpu.pk, W48), week_key(cpu.pk, W49)
    metric = await Metric.objects.acreate(series=cpu, timestamp=MONDAY, value=2.0)
    newest = await converged(socket, {w48})
    assert newest[w48]["values"][0] == 2.0

    metric.timestamp += timedelta(weeks=1)
    await metric.asave()
    newest = await converged(socket)
    assert (newest[w48]["values"][0], newest[w49]["values"][0]) == (None, 2.0)

    await metric.adelete()
    newest = await converged(socket, {w49})
    assert newest[w49]["values"] == [None] * 7


async def test_async_bulk_methods_broadcast(socket):
    """Tests that abulk_create, aupdate, abulk_update and QuerySet.adelete each broadcast."""
    cpu = await Series.objects.aget(slug="cpu")
    w48, w49 = week_key(cpu.pk, W48), week_key(cpu.pk, W49)
    rows = [Metric(series=cpu, timestamp=MONDAY + timedelta(days=i), value=1.0) for i in range(3)]
    await Metric.objects.abulk_create(rows)
    assert (await converged(socket, {w48}))[w48]["values"][:3] == [1.0, 1.0, 1.0]

    await Metric.objects.filter(series=cpu).aupdate(value=2.0)
    assert (await converged(socket, {w48}))[w48]["values"][:3] == [2.0, 2.0, 2.0]

    loaded = [m async for m in Metric.objects.filter(series=cpu)]
    for metric in loaded:
        metric.timestamp += timedelta(weeks=1)
    await Metric.objects.abulk_update(loaded, ["timestamp"])
    newest = await converged(socket)
    assert (newest[w48]["values"][:3], newest[w49]["values"][:3]) == ([None] * 3, [2.0] * 3)

    await Metric.objects.filter(series=cpu).adelete()
    assert (await converged(socket, {w49}))[w49]["values"] == [None] * 7


@pytest.mark.urls(__name__)
async def test_writes_made_by_an_async_view_broadcast(socket):
    """Tests that an async view's acreate and its sync_to_async transaction both broadcast."""
    response = await AsyncClient().post(
        "/record/", {"series": "cpu", "value": 6.0}, content_type="application/json"
    )
    assert response.status_code == 201
    newest = await converged(socket)
    assert sorted(p["values"][0] for p in newest.values()) == [6.0, 6.0]
