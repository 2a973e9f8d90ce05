"""
Redis Sentinel, as docs/deploy.md configures it: the channel layer
finds the master through a real sentinel process, and a save reaches a subscriber.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from metrics.models import Metric, Series
from tests.support.consumer import ConsumerSocket
from tests.support.redis_server import RedisServer, free_port, wait_for_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def sentinel(redis_server: RedisServer) -> Iterator[tuple[str, int]]:
    """Returns the address of a sentinel process watching the test's redis_server as master."""
    port = free_port()
    config = Path(redis_server.dir) / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {redis_server.dir}\n"
        f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n"
    )
    process = subprocess.Popen([redis_server.binary, str(config), "--sentinel"])
    try:
        wait_for_port(port)
        yield ("127.0.0.1", port)
    finally:
        process.kill()
        process.wait(10)


async def test_save_reaches_a_subscriber_through_sentinel(settings, sentinel):
    """Tests that the documented Sentinel settings carry a save to a subscribed socket."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"sentinels": [sentinel], "master_name": "mymaster"}]},
        }
    }
    series = await Series.objects.acreate(slug="cpu", name="CPU", aggregation="max")
    socket = await ConsumerSocket().connect()
    reply = await socket.subscribe("cpu", "2026-W48")
    assert reply["response_status"] == 200, reply
    await database_sync_to_async(Metric.objects.create)(
        series=series, timestamp=datetime(2026, 11, 24, 12, tzinfo=UTC), value=4.5
    )
    while True:
        frame = await socket.frame()
        if frame.get("action") == "update" and frame["payload"]["values"][1] == 4.5:
            break
    assert frame["version"] > reply["data"]["version"]
    await socket.close()
