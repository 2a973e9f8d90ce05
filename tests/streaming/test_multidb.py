"""
Several databases: a write made with using="other" is broadcast after *that* database's
transaction commits, with the payload read from that database (DCRF ignores `using`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from metrics.models import Metric, Series
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])

W48, W50 = IsoWeek(2026, 48), IsoWeek(2026, 50)
MONDAY = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
async def cpu() -> Series:
    """Returns series cpu, created with the same pk in both databases (default empty)."""
    series = await Series.objects.acreate(slug="cpu", name="CPU")
    await Series.objects.using("other").acreate(pk=series.pk, slug="cpu", name="CPU other")
    return series


async def subscribed(cpu: Series) -> tuple[ConsumerSocket, str]:
    """Returns a socket subscribed to cpu's W48 and W50 (read from default), and W48's key."""
    await sync_to_async(publisher.flush)()
    socket = await ConsumerSocket().connect()
    for week in (W48, W50):
        reply = await socket.subscribe("cpu", str(week))
        assert reply["response_status"] == 200, reply
    return socket, week_key(cpu.pk, W48)


async def frames_until_default_sentinel(socket: ConsumerSocket, cpu: Series) -> list[dict]:
    """Writes a metric to cpu's W50 on default; returns the frames that came before it."""
    await Metric.objects.acreate(series=cpu, timestamp=datetime(2026, 12, 7, tzinfo=UTC), value=1)
    sentinel = week_key(cpu.pk, W50)
    frames = []
    while (frame := await socket.frame())["key"] != sentinel:
        frames.append(frame)
    return frames


async def test_a_write_to_the_other_database_is_read_back_from_it(cpu):
    """Tests that Metric.objects.using("other").create() sends other's payload, not default's."""
    await Metric.objects.acreate(series=cpu, timestamp=MONDAY, value=5.0)
    socket, key = await subscribed(cpu)
    await Metric.objects.using("other").acreate(series_id=cpu.pk, timestamp=MONDAY, value=42.0)
    frame = await socket.frame()
    assert frame["key"] == key
    assert frame["payload"]["values"] == [42.0, None, None, None, None, None, None]
    assert frame["payload"]["series"] == "cpu"
    await socket.close()


async def test_bulk_update_on_the_other_database_is_read_back_from_it(cpu):
    """Tests that db_manager("other").filter().update() broadcasts other's new values."""
    await Metric.objects.using("other").acreate(series_id=cpu.pk, timestamp=MONDAY, value=1.0)
    await Metric.objects.acreate(series=cpu, timestamp=MONDAY, value=5.0)
    socket, key = await subscribed(cpu)
    await sync_to_async(Metric.objects.db_manager("other").filter(series_id=cpu.pk).update)(
        value=7.0
    )
    frame = await socket.frame()
    assert (frame["key"], frame["payload"]["values"][0]) == (key, 7.0)
    await socket.close()


def write_in_other_transaction(series_id: int, commit: bool) -> None:
    """Writes W48 on other inside an atomic block of other, committed or rolled back."""

    class Rollback(Exception):
        pass

    try:
        with transaction.atomic(using="other"):
            Metric.objects.using("other").create(series_id=series_id, timestamp=MONDAY, value=3)
            if not commit:
                raise Rollback
    except Rollback:
        pass


async def test_an_other_database_transaction_broadcasts_on_its_own_commit_only(cpu):
    """Tests that a rolled-back atomic(using="other") sends nothing and a committed one sends."""
    socket, key = await subscribed(cpu)
    await sync_to_async(write_in_other_transaction)(cpu.pk, commit=False)
    assert [f["key"] for f in await frames_until_default_sentinel(socket, cpu)] == []

    await sync_to_async(write_in_other_transaction)(cpu.pk, commit=True)
    frames: list[dict[str, Any]] = await frames_until_default_sentinel(socket, cpu)
    assert [(f["key"], f["payload"]["values"][0]) for f in frames] == [(key, 3.0)]
    await socket.close()
