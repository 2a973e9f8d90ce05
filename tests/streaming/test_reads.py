"""
streaming/serve/reads.py: subscribes waiting for the database thread together share one
snapshot read per key, and a subscribe that arrives once a read has begun gets its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import close_old_connections

from metrics.models import Metric
from metrics.streams import WEEK_STREAM
from settings.asgi import application
from streaming.registry import get_stream
from streaming.serve.reads import Reads
from tests.streaming.test_consumer import ORIGIN, receive, subscribe

pytestmark = pytest.mark.django_db(transaction=True)
MONDAY = datetime(2026, 11, 23, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def payload_calls():
    """Counts the week stream's payload reads by key, for the length of the test."""
    stream = get_stream(WEEK_STREAM)
    original, calls = stream.payload, Counter()

    def counted(key, using):
        calls[key] += 1
        return original(key, using)

    # Stream is frozen: the registered instance is what the consumer reads.
    object.__setattr__(stream, "payload", counted)
    yield calls
    object.__setattr__(stream, "payload", original)


async def test_reads_waiting_together_share_one_snapshot_and_one_read_per_key(cpu) -> None:
    """Eight reads of two keys asked while the database thread is busy cause two payload reads."""
    stream = get_stream(WEEK_STREAM)
    calls: Counter[str] = Counter()

    def counted(key, using):
        calls[key] += 1
        return stream.payload(key, using)

    reads, counting = Reads(), dataclasses.replace(stream, payload=counted)
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    weeks = ["2026-W48"] * 5 + ["2026-W49"] * 3
    waiting = [asyncio.ensure_future(reads.read(counting, f"{cpu.pk}:{w}")) for w in weeks]
    await asyncio.sleep(0.05)
    release.set()
    await busy
    results = await asyncio.gather(*waiting)

    assert calls == {f"{cpu.pk}:2026-W48": 1, f"{cpu.pk}:2026-W49": 1}
    assert len({version for version, _ in results}) == 1
    assert [payload["values"][0] for _, payload in results] == [2.0] * 5 + [None] * 3


async def test_sockets_subscribing_at_once_get_their_snapshots_from_shared_reads(
    cpu, payload_calls
) -> None:
    """Eight sockets subscribing while the database thread is busy: each gets its key's state."""
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    sockets = [WebsocketCommunicator(application, "/ws/stream/", headers=ORIGIN) for _ in range(8)]
    for socket in sockets:
        assert (await socket.connect(timeout=5))[0]
    weeks = ["2026-W48"] * 5 + ["2026-W49"] * 3
    for n, (socket, week) in enumerate(zip(sockets, weeks, strict=True)):
        await socket.send_json_to(subscribe(request_id=n, week=week))
    await asyncio.sleep(0.2)
    release.set()
    await busy
    replies = [await receive(socket) for socket in sockets]
    for socket in sockets:
        await socket.disconnect()

    assert [r["response_status"] for r in replies] == [200] * 8
    assert [r["data"]["payload"]["values"][0] for r in replies] == [2.0] * 5 + [None] * 3
    # A subscribe whose join ends after a read began waits for the next read; most share.
    assert sum(payload_calls.values()) < 8, payload_calls


async def test_a_subscribe_after_a_read_began_reads_again_and_sees_later_commits(cpu) -> None:
    """A read already running may predate the newcomer's join: the newcomer waits for its own."""
    stream = get_stream(WEEK_STREAM)
    key = f"{cpu.pk}:2026-W48"
    inside, go_on, calls = threading.Event(), threading.Event(), Counter()

    def held(key, using):
        calls[key] += 1
        if calls[key] == 1:
            inside.set()
            go_on.wait(10)
        return stream.payload(key, using)

    def write() -> None:
        Metric.objects.create(series=cpu, timestamp=MONDAY, value=5.0)
        close_old_connections()

    reads = Reads()
    slow = dataclasses.replace(stream, payload=held)
    first = asyncio.ensure_future(reads.read(slow, key))
    assert await asyncio.to_thread(inside.wait, 10)
    # The first read's snapshot is taken; a commit now is not in it.
    await asyncio.to_thread(write)
    second = asyncio.ensure_future(reads.read(slow, key))
    await asyncio.sleep(0.05)
    go_on.set()
    (v1, p1), (v2, p2) = await first, await second

    assert calls[key] == 2
    assert p1["values"][0] == 2.0
    assert p2["values"][0] == 7.0
    assert v2 > v1


async def test_a_failing_key_fails_alone_and_a_departed_subscriber_cancels_nothing(cpu) -> None:
    """One key's payload error reaches its subscribers only; cancelling a waiter spares the read."""
    stream = get_stream(WEEK_STREAM)
    good, bad = f"{cpu.pk}:2026-W48", f"{cpu.pk}:2026-W49"

    def payload(key, using):
        if key == bad:
            raise RuntimeError("this key's payload fails")
        return stream.payload(key, using)

    reads, flaky = Reads(), dataclasses.replace(stream, payload=payload)
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    leaving = asyncio.ensure_future(reads.read(flaky, good))
    staying = asyncio.ensure_future(reads.read(flaky, good))
    failing = asyncio.ensure_future(reads.read(flaky, bad))
    await asyncio.sleep(0.05)
    leaving.cancel()
    release.set()
    await busy

    version, payload_of_good = await staying
    assert payload_of_good["values"][0] == 2.0
    assert version > 0
    with pytest.raises(RuntimeError, match="this key's payload fails"):
        await failing
    assert leaving.cancelled()


async def test_a_failed_snapshot_fails_every_waiter_and_leaves_no_failed_task(
    cpu, monkeypatch
) -> None:
    """When the snapshot itself fails (the database is down), each waiter gets the error once."""
    stream = get_stream(WEEK_STREAM)

    def down(*args):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr("streaming.serve.reads.snapshot.read_each", down)
    reads = Reads()
    waiting = [asyncio.ensure_future(reads.read(stream, f"{cpu.pk}:2026-W48")) for _ in range(3)]
    await asyncio.sleep(0)
    (task,) = reads._running
    results = await asyncio.gather(*waiting, return_exceptions=True)
    await task

    assert [str(r) for r in results] == ["database unavailable"] * 3
    assert task.exception() is None
