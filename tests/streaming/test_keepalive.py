"""
The sockets' heartbeat frame (streaming/serve/keepalive.py): every open socket gets it at the
configured interval, from one loop per process, through the ASGI send and daphne's wire alike.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from streaming.serve.keepalive import SLICES, get_keepalive
from tests.support.consumer import ConsumerSocket
from tests.support.processes import DaphneServer
from tests.support.wsclient import origin_for

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = {"action": "heartbeat", "interval": 0.2}


@pytest.fixture
def keepalive_on(settings) -> None:
    """Runs this process's sockets with a heartbeat every 0.2 s, on the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {
        "VERSION_STORE": {"BACKEND": "streaming.publish.versions.LocalVersionStore"},
        "KEEPALIVE_SECONDS": 0.2,
    }


async def test_every_socket_gets_heartbeats_from_one_loop(keepalive_on):
    """Tests that two sockets each receive heartbeats, and a closed one is forgotten."""
    first, second = await ConsumerSocket().connect(), await ConsumerSocket().connect()
    keepalive = get_keepalive()
    task = keepalive._task
    assert task is not None
    for _ in range(2):
        assert await first.frame(timeout=5) == BEAT
        assert await second.frame(timeout=5) == BEAT
    assert keepalive._task is task, "one loop for every socket"
    assert len(keepalive.sockets) == 2

    await second.close()
    assert len(keepalive.sockets) == 1
    assert await first.frame(timeout=5) == BEAT
    await first.close()
    assert keepalive.sockets == {}
    await asyncio.wait_for(task, timeout=5)


async def test_no_heartbeat_when_off(settings):
    """Tests that KEEPALIVE_SECONDS = 0 sends nothing and starts no loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {"KEEPALIVE_SECONDS": 0}
    socket = await ConsumerSocket().connect()
    assert await socket.quiet(0.5)
    assert get_keepalive().sockets == {}
    await socket.close()


async def test_daphne_socket_gets_heartbeats(transactional_db):
    """Tests that a socket of a real daphne server receives the heartbeat frame."""
    server = await asyncio.to_thread(DaphneServer(None, STREAMING_KEEPALIVE_SECONDS="0.3").start)
    try:
        async with websockets.connect(server.ws_url, origin=origin_for(server.ws_url)) as socket:
            for _ in range(2):
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
                assert frame == {"action": "heartbeat", "interval": 0.3}
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_beat_is_spread_over_slices_that_churn_leaves_in_place(keepalive_on):
    """
    Tests that sockets are beaten a slice at a time (not 5,000 at once), each staying in the
    slice it joined while others come and go, so it keeps one heartbeat an interval.
    """
    keepalive = get_keepalive()
    sent: list[tuple[str, dict]] = []

    def recorder(name: str):
        async def send(message: dict) -> None:
            sent.append((name, message))

        return send

    for n in range(3 * SLICES):
        keepalive.add(f"socket-{n}", recorder(f"socket-{n}"), None)
    assert [len(part) for part in keepalive.slices] == [3] * SLICES
    where = {owner: k for k, part in enumerate(keepalive.slices) for owner in part}
    for n in range(0, 3 * SLICES, 4):
        keepalive.discard(f"socket-{n}")
    keepalive.add("late", recorder("late"), None)
    assert all(where[o] == k for k, part in enumerate(keepalive.slices) for o in part if o in where)

    await keepalive.beat(0.2, list(keepalive.slices[1].values()))
    assert sorted(name for name, _ in sent) == sorted(keepalive.slices[1])
    assert {m["text"] for _, m in sent} == {'{"action":"heartbeat","interval":0.2}'}
    for owner in list(keepalive.sockets):
        keepalive.discard(owner)
