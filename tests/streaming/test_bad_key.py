"""
One bad key does not starve the others. A `sum` week holding two values of 1.7e308 has no
payload (SQLite sums to inf, which JSON refuses; PostgreSQL's SUM overflows): its updates
fail, are logged, counted (/metrics/) and retried with backoff, while every other key of
the same transaction, batch or resync goes out; once the data is fixed, it converges too.
Real daphne servers, a real Redis, the real test database (both engines).
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from rest_framework.authtoken.models import Token

from metrics.models import Metric, Series
from metrics.streams import payload, week_key
from metrics.weeks import IsoWeek
from streaming.ops.stats import stats
from tests.conftest import redis_settings
from tests.support.processes import DaphneServer
from tests.support.redis_server import RedisServer
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

W48 = IsoWeek(2026, 48)
STREAM = "metrics.week"
HUGE = 1.7e308


def at(day: int, hour: int = 12) -> datetime:
    """Returns a UTC instant on a day (0 = Monday) of W48."""
    return datetime.combine(W48.days[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


def make_series(*slugs: str) -> list[Series]:
    """Creates sum series, each with one metric in W48."""
    made = []
    for slug in slugs:
        series = Series.objects.create(slug=slug, name=slug, aggregation="sum")
        Metric.objects.create(series=series, timestamp=at(0), value=1)
        made.append(series)
    return made


def poison(series: Series) -> None:
    """Writes the two values whose sum has no payload."""
    Metric.objects.create(series=series, timestamp=at(2), value=HUGE)
    Metric.objects.create(series=series, timestamp=at(2, 13), value=HUGE)


def cure(series: Series) -> None:
    """Deletes the huge values."""
    Metric.objects.filter(series=series, value=HUGE).delete()


def staff_token() -> str:
    """Returns the DRF token of a new staff user."""
    user = User.objects.create_user("ops", is_staff=True)
    return Token.objects.create(user=user).key


def counter(text: str, name: str) -> float:
    """Returns the metrics.week sample of `name` in a Prometheus text body."""
    match = re.search(rf'^{name}{{stream="{STREAM}"}} (\S+)$', text, re.M)
    assert match, f"no {name} in:\n{text}"
    return float(match[1])


def scrape_server(server: DaphneServer, token: str) -> str:
    """Returns the server's /metrics/ body, read as a staff user."""
    request = urllib.request.Request(
        server.http_url + "/metrics/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def scrape_here(token: str) -> str:
    """Returns this process's /metrics/ body (the writer's counters), read as a staff user."""
    response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    return response.content.decode()


async def subscriber(server: DaphneServer, *series: Series) -> StreamSubscriber:
    """Returns a client subscribed to W48 of each series."""
    client = await StreamSubscriber(server.ws_url).connect()
    for one in series:
        reply = await client.subscribe(STREAM, series=one.slug, week=str(W48))
        assert reply["response_status"] == 200, reply
    return client


async def holds_database(client: StreamSubscriber, series: Series, timeout: float = 10) -> None:
    """Waits until the client holds the database's payload of the series' W48."""
    key = week_key(series.pk, W48)
    wanted = await sync_to_async(payload)(key, None)
    await client.wait_for(lambda c: c.payload(key) == wanted, timeout)


def pushed_versions(client: StreamSubscriber, series: Series) -> list[int]:
    """Returns the versions pushed to the client for the series' W48, in order."""
    key = week_key(series.pk, W48)
    return [
        m["version"] for m in client.received if m.get("action") == "update" and m["key"] == key
    ]


async def test_a_bad_key_does_not_hold_back_the_keys_of_its_transaction(daphne, use_redis, caplog):
    """
    Tests that when one transaction makes a key bad (written first) and changes two others,
    every subscriber of the others gets them while the bad key is still bad; the bad key's
    failures show at /metrics/ (the writer's send_failures, the server's repair_failures),
    the writer logs it, the server retries it with backoff (a few tries in seconds, not a
    hot loop), and once the huge values are deleted its subscribers converge on it too.
    """
    bad, good, other = await sync_to_async(make_series)("bad", "good", "other")
    token = await sync_to_async(staff_token)()
    both = await subscriber(daphne, bad, good)
    others = await subscriber(daphne, good, other)
    sent_failures = stats.snapshot()["send_failures"].get(STREAM, 0)

    def write() -> None:
        with transaction.atomic():
            poison(bad)
            Metric.objects.create(series=good, timestamp=at(3), value=5)
            Metric.objects.create(series=other, timestamp=at(4), value=6)

    await sync_to_async(write)()
    for client, series in ((both, good), (others, good), (others, other)):
        await holds_database(client, series)
    assert both.payload(week_key(bad.pk, W48))["values"][2] is None

    writer = await sync_to_async(scrape_here)(token)
    assert counter(writer, "streaming_send_failures_total") > sent_failures
    bad_key = repr(week_key(bad.pk, W48))
    assert any(bad_key in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    server_failures = 0.0
    async with asyncio.timeout(15):
        while server_failures < 3:
            await asyncio.sleep(0.2)
            text = await asyncio.to_thread(scrape_server, daphne, token)
            server_failures = counter(text, "streaming_repair_failures_total")
    # Backoff: 0.5 s doubling between tries, so 3 s more add one or two. Tries 0.5 s apart
    # would add six, a loop without any delay hundreds.
    await asyncio.sleep(3)
    text = await asyncio.to_thread(scrape_server, daphne, token)
    assert counter(text, "streaming_repair_failures_total") <= server_failures + 2
    # Still bad: nothing was sent for it, and the others keep flowing.
    await sync_to_async(Metric.objects.create)(series=good, timestamp=at(5), value=7)
    await holds_database(others, good)
    assert pushed_versions(both, bad) == []

    await sync_to_async(cure)(bad)
    for series in (bad, good):
        await holds_database(both, series)
    await both.close()
    await others.close()


@pytest.fixture
def own_redis(settings, redis_server: RedisServer) -> RedisServer:
    """Makes this process broadcast through a private Redis the test may kill."""
    settings.CHANNEL_LAYERS, settings.STREAMING = redis_settings(redis_server.url)
    return redis_server


async def test_the_resync_after_a_heartbeat_loss_does_not_stop_at_a_bad_key(own_redis, server):
    """
    Tests that after Redis restarts (the hub's heartbeat is lost, then back), the resync
    re-sends every good key of the server at a fresh version although the first key it
    re-reads is bad; only the resync can send them: their data did not change.
    """
    bad, *goods = await sync_to_async(make_series)("bad", "good1", "good2")
    (bystander,) = await sync_to_async(make_series)("bystander")
    clients = [await subscriber(server, bad, *goods) for _ in range(2)]
    await sync_to_async(poison)(bad)
    before: dict[Any, int] = {}
    for client in clients:
        for series in goods:
            await holds_database(client, series)
            key = week_key(series.pk, W48)
            before[client, key] = client.state[key][0]

    own_redis.stop()
    # The heartbeat notices within its timeout (2 s); a write to a key nobody here watches
    # moves the database's clock, so a resync re-sends at a higher version.
    await asyncio.sleep(2.5)
    await sync_to_async(Metric.objects.create)(series=bystander, timestamp=at(1), value=2)
    own_redis.start()
    for client in clients:
        for series in goods:
            key = week_key(series.pk, W48)
            await client.wait_for(
                lambda c: c.state[key][0] > before[c, key],  # noqa: B023
                15,
            )
            await holds_database(client, series)

    await sync_to_async(cure)(bad)
    for client in clients:
        await holds_database(client, bad)
        await client.close()
