"""
Convergence after long outages and Redis rollbacks, and states that never go back. Versions
come from the database's clock, read in the payload's snapshot, so nothing Redis forgets or
restores can lower them. Real daphne servers, a real Redis, writer processes, and the real
test database (both engines).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async

from metrics.models import Metric, Series
from metrics.streams import payload, week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.conftest import redis_settings
from tests.support.processes import ROOT, DaphneServer, process_env, run_script
from tests.support.reconnecting import ReconnectingSubscriber
from tests.support.redis_server import RedisServer
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

W48 = IsoWeek(2026, 48)
STREAM = "metrics.week"
# Writers in other processes give up a failed broadcast after this (the default is 30 s):
# an outage of a few seconds outlasts it, as 35 s outlasted the default.
RETRY_SECONDS = 0.5
SHORT_RETRY = f"""
from django.conf import settings
from streaming.conf import streaming_settings
settings.STREAMING = {{**settings.STREAMING, "RETRY_SECONDS": {RETRY_SECONDS}}}
streaming_settings.reload()
"""
WRITER_PRELUDE = """
import random, sys, time
from datetime import datetime, timedelta, UTC
from metrics.models import Metric
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
def stamp():
    return MONDAY + timedelta(days=random.randrange(7), hours=random.randrange(6, 18))
def value():
    return float(random.randint(1, 9))
"""


def at(day: int, hour: int = 12) -> datetime:
    """Returns a UTC instant on a day (0 = Monday) of W48."""
    return datetime.combine(W48.days[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def own_redis(settings, redis_server: RedisServer) -> RedisServer:
    """Makes this process broadcast through a private Redis, giving up after RETRY_SECONDS."""
    settings.CHANNEL_LAYERS, streaming = redis_settings(redis_server.url)
    settings.STREAMING = {**streaming, "RETRY_SECONDS": RETRY_SECONDS}
    return redis_server


def make_series(*slugs: str) -> list[Series]:
    """Creates sum series."""
    return [Series.objects.create(slug=s, name=s, aggregation="sum") for s in slugs]


async def subscriber(server: DaphneServer, *series: Series) -> StreamSubscriber:
    """Returns a client subscribed to W48 of each series."""
    client = await StreamSubscriber(server.ws_url).connect()
    for one in series:
        reply = await client.subscribe(STREAM, series=one.slug, week=str(W48))
        assert reply["response_status"] == 200, reply
    return client


async def database_payload(series: Series) -> dict[str, Any] | None:
    """Returns the series' W48 payload as the database holds it now."""
    return await sync_to_async(payload)(week_key(series.pk, W48), None)


async def holds_database(client: Any, series: Series, timeout: float = 15) -> None:
    """Waits until the client holds the database's payload of the series' W48."""
    key = week_key(series.pk, W48)
    wanted = await database_payload(series)
    await client.wait_for(lambda c: key in c.state and c.payload(key) == wanted, timeout)


def pushed_versions(client: StreamSubscriber, key: str) -> list[int]:
    """Returns the versions of the pushes the client received for `key`, in order."""
    return [
        m["version"]
        for m in client.received
        if m.get("action") in ("update", "gone") and "request_id" not in m and m["key"] == key
    ]


def script_write(series: Series, value: float, day: int) -> str:
    """Returns a writer script's code: one ORM create, broadcast with the short retry."""
    stamp = at(day)
    return (
        SHORT_RETRY + "from datetime import datetime\nfrom metrics.models import Metric\n"
        f"Metric.objects.create(series_id={series.pk}, "
        f"timestamp=datetime.fromisoformat({stamp.isoformat()!r}), value={value})\n"
    )


async def write_elsewhere(series: Series, value: float, day: int, redis_url: str) -> None:
    """Creates a metric from another process, which broadcasts through `redis_url`."""
    await sync_to_async(run_script)(script_write(series, value, day), redis_url)


async def test_a_redis_outage_longer_than_the_retry_window_converges_during_and_after(
    own_redis, server
):
    """
    Tests that with Redis down for longer than the writers' retry window, writes from other
    processes reach every subscriber (old and arriving) through the relay during the outage,
    and once Redis is back, later writes do too, with versions that only grow.
    """
    cpu, mem = await sync_to_async(make_series)("cpu", "mem")
    clients = [await subscriber(server, cpu, mem) for _ in range(2)]
    await write_elsewhere(cpu, 1, 0, own_redis.url)
    for client in clients:
        await holds_database(client, cpu)

    own_redis.stop()
    await write_elsewhere(cpu, 2, 1, own_redis.url)
    await write_elsewhere(mem, 3, 2, own_redis.url)
    for client in clients:
        await holds_database(client, cpu)
        await holds_database(client, mem)
    # Well past the writers' retry window: their broadcasts were given up long ago.
    await asyncio.sleep(2 * RETRY_SECONDS)
    await write_elsewhere(mem, 4, 3, own_redis.url)
    await sync_to_async(Metric.objects.create)(series=cpu, timestamp=at(4), value=5)
    await asyncio.to_thread(publisher.flush, 10)
    late = ReconnectingSubscriber(
        server.ws_url,
        [(STREAM, {"series": s, "week": str(W48)}) for s in ("cpu", "mem")],
    ).start()
    for client in [*clients, late]:
        await holds_database(client, cpu)
        await holds_database(client, mem)

    own_redis.start()
    await write_elsewhere(cpu, 6, 5, own_redis.url)
    await write_elsewhere(mem, 7, 6, own_redis.url)
    for client in [*clients, late]:
        await holds_database(client, cpu)
        await holds_database(client, mem)
    for client in clients:
        for series in (cpu, mem):
            versions = pushed_versions(client, week_key(series.pk, W48))
            assert versions == sorted(set(versions)), versions
    assert server.process is not None
    assert server.process.poll() is None
    await late.stop()
    for client in clients:
        await client.close()


def save_snapshot(own_redis: RedisServer) -> Path:
    """Saves Redis's data (SAVE) and returns a copy of the RDB file."""
    client = redis.Redis(port=own_redis.port)
    client.set("streaming-test:marker", "old")
    client.save()
    client.close()
    copy = Path(own_redis.dir) / "old.rdb"
    shutil.copy(Path(own_redis.dir) / "dump.rdb", copy)
    return copy


def roll_back(own_redis: RedisServer, how: str, old: Path) -> None:
    """Restarts Redis empty, flushes it, or restarts it from the older RDB file."""
    if how == "restarted empty":
        own_redis.stop()
        (Path(own_redis.dir) / "dump.rdb").unlink()
        own_redis.start()
    elif how == "flushed":
        client = redis.Redis(port=own_redis.port)
        client.flushall()
        client.close()
    else:
        own_redis.stop()
        shutil.copy(old, Path(own_redis.dir) / "dump.rdb")
        own_redis.start()
        client = redis.Redis(port=own_redis.port)
        # The older data set is what the server runs with now.
        assert client.get("streaming-test:marker") == b"old"
        client.close()


@pytest.mark.parametrize("how", ["restarted empty", "flushed", "restored from an older RDB"])
async def test_versions_never_go_back_whatever_redis_forgets_or_restores(own_redis, server, how):
    """
    Tests that after Redis is restarted empty, flushed, or restarted from an RDB saved before
    later writes, the versions a subscriber is pushed stay above those it had, the next writes
    (from this process and another) are applied, and the client ends equal to the database.
    """
    (cpu,) = await sync_to_async(make_series)("cpu")
    key = week_key(cpu.pk, W48)
    client = await subscriber(server, cpu)
    await sync_to_async(Metric.objects.create)(series=cpu, timestamp=at(0), value=1)
    await holds_database(client, cpu)
    old = await asyncio.to_thread(save_snapshot, own_redis)
    await write_elsewhere(cpu, 2, 1, own_redis.url)
    await holds_database(client, cpu)
    before = client.state[key][0]

    await asyncio.to_thread(roll_back, own_redis, how, old)
    await sync_to_async(Metric.objects.create)(series=cpu, timestamp=at(2), value=4)
    await write_elsewhere(cpu, 8, 3, own_redis.url)
    await holds_database(client, cpu)
    assert client.payload(key)["values"][:4] == [1, 2, 4, 8]
    versions = pushed_versions(client, key)
    assert versions == sorted(set(versions)), versions
    assert versions[-1] > before
    await client.close()


KILLED_WRITER = "killed"
WRITERS = {
    "orm": """
        for _ in range(COUNT):
            Metric.objects.create(series_id=PK, timestamp=stamp(), value=value())
            time.sleep(0.005)
    """,
    "bulk": """
        for _ in range(COUNT // 4):
            Metric.objects.bulk_create(
                [Metric(series_id=PK, timestamp=stamp(), value=value()) for _ in range(4)]
            )
            time.sleep(0.02)
    """,
    "raw": """
        from django.db import connection
        table, s = Metric._meta.db_table, connection.settings_dict
        sql = f"INSERT INTO {table} (series_id, timestamp, value) VALUES (%s, %s, %s)"
        if connection.vendor == "sqlite":
            import sqlite3
            db = sqlite3.connect(s["NAME"], timeout=30, isolation_level=None)
            for _ in range(COUNT):
                when = stamp().strftime("%Y-%m-%d %H:%M:%S")
                db.execute(sql.replace("%s", "?"), (PK, when, value()))
                time.sleep(0.005)
        else:
            import psycopg
            db = psycopg.connect(
                host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
                password=s["PASSWORD"] or None, dbname=s["NAME"], autocommit=True,
            )
            for _ in range(COUNT):
                db.execute(sql, (PK, stamp(), value()))
                time.sleep(0.005)
    """,
    KILLED_WRITER: """
        for _ in range(COUNT):
            Metric.objects.create(series_id=PK, timestamp=stamp(), value=value())
            print("wrote", flush=True)
            time.sleep(0.005)
    """,
}


def start_writer(kind: str, pk: int, count: int, redis_url: str) -> subprocess.Popen[str]:
    """Starts a writer process that inserts `count` positive values into the series' W48."""
    body = textwrap.dedent(WRITERS[kind]).replace("PK", str(pk)).replace("COUNT", str(count))
    code = "import django\ndjango.setup()\n" + WRITER_PRELUDE + body
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=process_env(redis_url),
        stdout=subprocess.PIPE if kind == KILLED_WRITER else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def applied_states(client: StreamSubscriber, key: str) -> list[tuple[int, dict[str, Any]]]:
    """
    Returns every (version, payload) the client applied for `key`, in order, by the client
    rule: a subscribe reply replaces the state, a push applies if its version is higher.
    """
    states: list[tuple[int, dict[str, Any]]] = []
    for message in client.received:
        data = message.get("data")
        if message.get("response_status") == 200 and isinstance(data, dict):
            if data.get("key") == key:
                states.append((data["version"], data["payload"]))
        elif (
            message.get("action") == "update"
            and message.get("key") == key
            and "request_id" not in message
            and message["version"] > states[-1][0]
        ):
            states.append((message["version"], message["payload"]))
    return states


def week_sum(state: dict[str, Any]) -> float:
    """Returns the sum of a week payload's daily values."""
    return sum(v for v in state["values"] if v is not None)


async def wait_for_exit(process: subprocess.Popen[str]) -> None:
    """Waits for a writer to exit, and checks it succeeded."""
    code = await asyncio.to_thread(process.wait, 60)
    assert code == 0, process.stderr.read() if process.stderr else code


async def test_states_never_go_back_with_four_writers_one_killed_and_restarted(daphne, use_redis):
    """
    Tests that while 4 processes only insert positive values into one sum week (ORM creates,
    bulk_create, raw SQL through the driver, and a writer SIGKILLed mid-run twice and
    restarted), every state two subscribers apply has a sum at least the one before, the
    pushes' versions strictly grow, and each ends equal to the database.
    """
    (cpu,) = await sync_to_async(make_series)("cpu")
    key = week_key(cpu.pk, W48)
    clients = [await subscriber(daphne, cpu) for _ in range(2)]

    writers = [start_writer(kind, cpu.pk, 60, use_redis) for kind in ("orm", "bulk", "raw")]
    for _ in range(2):
        victim = start_writer(KILLED_WRITER, cpu.pk, 100_000, use_redis)
        assert victim.stdout is not None
        # Killed mid-run: after some writes, between or inside others.
        for _ in range(20):
            assert await asyncio.to_thread(victim.stdout.readline) == "wrote\n"
        victim.kill()
        await asyncio.to_thread(victim.wait, 10)
        victim.stdout.close()
    writers.append(start_writer(KILLED_WRITER, cpu.pk, 30, use_redis))
    for writer in writers:
        await wait_for_exit(writer)
    rows = await sync_to_async(Metric.objects.filter(series=cpu).count)()
    assert rows > 60 * 3 + 30

    for client in clients:
        await holds_database(client, cpu)
        states = applied_states(client, key)
        assert len(states) > 10
        sums = [week_sum(state) for _, state in states]
        assert all(b >= a for a, b in itertools.pairwise(sums)), sums
        versions = pushed_versions(client, key)
        assert versions == sorted(set(versions)), versions
        assert versions[0] > states[0][0]
        assert states[-1][1] == await database_payload(cpu)
        await client.close()
