"""
The sockets' heartbeat frame (streaming/serve/keepalive.py): every open socket gets it at the
configured interval, from one loop per process, through the ASGI send and daphne's wire alike.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from streaming.serve.keepalive import get_keepalive
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
