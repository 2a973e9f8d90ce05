"""
Faults with real processes: Redis killed mid-stream and restarted empty, and the daphne
server restarted on its port. Writers never fail, and every subscriber converges.
"""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.conftest import redis_settings
from tests.support.processes import DaphneServer
from tests.support.reconnecting import ReconnectingSubscriber
from tests.support.redis_server import RedisServer
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

WEEK = "2026-W48"
TUESDAY = datetime(2026, 11, 24, 12, tzinfo=UTC)
SUBSCRIPTION = ("metrics.week", {"series": "cpu", "week": WEEK})


@pytest.fixture
def series() -> Series:
    """Returns a public series, summed per day."""
    return Series.objects.create(slug="cpu", name="CPU", aggregation="sum")


@pytest.fixture
def own_redis(settings, redis_server: RedisServer) -> RedisServer:
    """
    Makes this process broadcast through a private Redis the test may kill. Its writers
    give up a failed broadcast after 0.5 s, so only the servers' resync can repair an outage.
    """
    settings.CHANNEL_LAYERS, streaming = redis_settings(redis_server.url)
    settings.STREAMING = {**streaming, "RETRY_SECONDS": 0.5}
    return redis_server


async def write(series: Series, value: float) -> None:
    """Saves one metric of `series` on the Tuesday of WEEK; fails if save() raises."""
    await sync_to_async(Metric.objects.create)(series=series, timestamp=TUESDAY, value=value)


async def database_payload(series: Series) -> dict[str, Any]:
    """Returns the week's payload as the database holds it now."""
    return await sync_to_async(series_week)(series=series, week=IsoWeek.parse(WEEK))


def http_status(url: str) -> int:
    """Returns the status of a GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def versions_of(client: StreamSubscriber, key: str) -> list[int]:
    """Returns the versions of the updates the client was pushed for `key`, in order."""
    return [
        m["version"] for m in client.received if m.get("action") == "update" and m["key"] == key
    ]


async def test_redis_killed_and_restarted_empty_every_subscriber_converges(
    own_redis, server, series
):
    """
    Tests that with Redis killed: saves commit without raising, HTTP and open sockets stay
    up, and every subscriber, old or arriving during the outage, gets the database's state
    through the server's relay; once an empty Redis is back, broadcasts go on with no server
    restart and versions keep growing.
    """
    clients = [await StreamSubscriber(server.ws_url).connect() for _ in range(2)]
    key = (await clients[0].subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"]
    await clients[1].subscribe("metrics.week", series="cpu", week=WEEK)
    await write(series, 1.0)
    for client in clients:
        await client.wait_for(lambda c: c.payload(key)["values"][1] == 1.0)
    before = max(versions_of(clients[0], key))

    own_redis.stop()
    await write(series, 2.0)
    await write(series, 4.0)
    # The writer gives up these broadcasts: the state must come from the server's relay.
    await asyncio.to_thread(publisher.flush, 10)
    assert await sync_to_async(Metric.objects.count)() == 3
    assert await asyncio.to_thread(http_status, server.http_url + "/") == 200
    for client in clients:
        pong = await client.socket.ping()
        await asyncio.wait_for(pong, 10)
    # A client arriving during the outage is served from the database.
    late = ReconnectingSubscriber(server.ws_url, [SUBSCRIPTION]).start()
    expected = await database_payload(series)
    assert expected["values"][1] == 7.0
    for client in [*clients, late]:
        await client.wait_for(lambda c: key in c.state and c.payload(key) == expected, 30)

    own_redis.start()
    await write(series, 8.0)
    expected = await database_payload(series)
    for client in [*clients, late]:
        await client.wait_for(lambda c: c.payload(key) == expected, 30)
    for client in clients:
        versions = versions_of(client, key)
        assert versions == sorted(set(versions)), versions
        assert versions[-1] > before
    assert server.process.poll() is None
    await late.stop()
    for client in clients:
        await client.close()


async def test_server_restart_clients_reconnect_resubscribe_and_converge(use_redis, series):
    """
    Tests that after daphne stops and starts again on its port, a client reconnects with
    backoff, resubscribes, gets the writes made while the server was down, and later ones.
    """
    first = DaphneServer(use_redis).start()
    client = ReconnectingSubscriber(first.ws_url, [SUBSCRIPTION]).start()
    try:
        await client.wait_for(lambda c: c.sessions == 1)
        key = client.keys[0]
        await write(series, 1.0)
        await client.wait_for(lambda c: c.payload(key)["values"][1] == 1.0)

        first.stop()
        await write(series, 2.0)
        second = DaphneServer(use_redis, port=first.port).start()
        try:
            await client.wait_for(lambda c: c.sessions == 2, 30)
            assert client.payload(key) == await database_payload(series)
            await write(series, 4.0)
            await client.wait_for(lambda c: c.payload(key)["values"][1] == 7.0)
            assert client.payload(key) == await database_payload(series)
            assert client.delays
            assert all(0 < d <= client.max_delay for d in client.delays)
        finally:
            second.stop()
    finally:
        await client.stop()
        first.stop()


async def test_a_subscribe_while_redis_is_paused_is_served_from_the_database(
    own_redis, server, series
):
    """
    Tests that with Redis frozen (SIGSTOP: connections hang, nothing fails), a new subscribe
    still gets its snapshot within seconds, and a write from this process reaches it through
    the server's relay; once Redis is back, later writes arrive too.
    """
    import os
    import signal

    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        client = await StreamSubscriber(server.ws_url).connect()
        reply = await client.subscribe("metrics.week", series="cpu", week=WEEK)
        assert reply["response_status"] == 200, reply
        key = reply["data"]["key"]
        await write(series, 3.0)
        expected = await database_payload(series)
        await client.wait_for(lambda c: c.payload(key) == expected, 15)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    await write(series, 5.0)
    expected = await database_payload(series)
    await client.wait_for(lambda c: c.payload(key) == expected, 15)
    await client.close()
