"""
The database is the source of truth: every committed change reaches every subscriber, whoever
wrote it (other programs, raw SQL, bulk calls) and however the writer died, with or without
Redis. Real daphne servers, real writer processes, the real test database (both engines).
"""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from tests.support.foreign import run_sql
from tests.support.processes import DaphneServer, run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = pytest.mark.django_db(transaction=True)

W48, W49 = IsoWeek(2026, 48), IsoWeek(2026, 49)


@pytest.fixture(params=["no-redis", "redis"])
def layer(request, redis_url: str) -> str | None:
    """Runs a test without Redis (the relay alone), and with Redis shared by every process."""
    return redis_url if request.param == "redis" else None


@pytest.fixture
def server(transactional_db, layer: str | None) -> Iterator[DaphneServer]:
    """Returns a running daphne server on the test database and the chosen layer."""
    process = DaphneServer(layer).start()
    yield process
    process.stop()


@pytest.fixture
def cpu(transactional_db) -> Series:
    """Returns a sum series with one metric in W48."""
    series = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
    Metric.objects.create(series=series, timestamp=at(W48, 1), value=1)
    return series


def at(week: IsoWeek, day: int, hour: int = 12) -> datetime:
    """Returns a UTC instant on a day (0 = Monday) of `week`."""
    return datetime.combine(week.days[day], datetime.min.time(), tzinfo=UTC).replace(hour=hour)


async def database_payload(series: Series, week: IsoWeek) -> dict[str, Any]:
    """Returns the week's payload as the database holds it now."""
    return await sync_to_async(series_week)(series=series, week=week)


async def subscriber(server: DaphneServer, *weeks: IsoWeek, slug: str = "cpu") -> Any:
    """Returns a client subscribed to `slug` in each week."""
    client = await StreamSubscriber(server.ws_url).connect()
    for week in weeks:
        reply = await client.subscribe("metrics.week", series=slug, week=str(week))
        assert reply["response_status"] == 200, reply
    return client


async def converged(client: Any, series: Series, *weeks: IsoWeek, timeout: float = 15) -> None:
    """Waits until the client holds the database's payload of each week."""
    for week in weeks:
        expected = await database_payload(series, week)
        key = week_key(series.pk, week)
        await client.wait_for(lambda c: c.payload(key) == expected, timeout)  # noqa: B023


KILLED_WRITES = {
    # The writer dies in an on_commit hook that runs after streaming's own.
    "on_commit": """
        from django.db import transaction
        with transaction.atomic():
            Metric.objects.create(series_id={pk}, timestamp=ts, value=5)
            transaction.on_commit(lambda: os.kill(os.getpid(), {sig}))
    """,
    "autocommit save": """
        Metric.objects.create(series_id={pk}, timestamp=ts, value=5)
        os.kill(os.getpid(), {sig})
    """,
    "queryset update": """
        Metric.objects.filter(series_id={pk}).update(value=5)
        os.kill(os.getpid(), {sig})
    """,
}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("kind", list(KILLED_WRITES))
async def test_a_writer_killed_right_after_commit_reaches_every_subscriber(
    server, layer, cpu, kind, sig
):
    """
    Tests that a writer killed right after its COMMIT (by SIGKILL or SIGTERM, which run no
    exit hooks) still reaches every subscriber within seconds, with no later write.
    """
    clients = [await subscriber(server, W48) for _ in range(2)]
    code = "import os\nfrom datetime import datetime, UTC\nfrom metrics.models import Metric\n"
    code += f"ts = datetime({at(W48, 2).year}, {at(W48, 2).month}, {at(W48, 2).day}, 9, tzinfo=UTC)"
    code += "\n" + textwrap.dedent(KILLED_WRITES[kind]).format(pk=cpu.pk, sig=int(sig))
    with pytest.raises(AssertionError, match=rf"script failed \(-{int(sig)}\)"):
        await sync_to_async(run_script)(code, layer)
    assert await sync_to_async(Metric.objects.filter(value=5).exists)()
    for client in clients:
        await converged(client, cpu, W48)
        await client.close()


@pytest.mark.parametrize("layer", ["no-redis"], indirect=True)
async def test_writes_by_a_program_that_is_not_django_reach_their_keys_only(server, cpu):
    """
    Tests that INSERT, an UPDATE moving a row to another week, a two-row UPDATE and DELETE,
    made with the database's own driver, each bring the affected keys to the database's
    state, and that an unaffected key gets no update at all.
    """
    mem = await sync_to_async(Series.objects.create)(slug="mem", name="Memory")
    client = await subscriber(server, W48, W49)
    bystander = await subscriber(server, W48, slug="mem")
    table = Metric._meta.db_table
    run_sql(
        [
            (
                f"INSERT INTO {table} (series_id, timestamp, value) VALUES (%s, %s, 2)",
                [cpu.pk, at(W48, 3)],
            )
        ]
    )
    await converged(client, cpu, W48)
    first = await sync_to_async(lambda: Metric.objects.filter(series=cpu).order_by("pk")[0].pk)()
    run_sql([(f"UPDATE {table} SET timestamp = %s WHERE id = %s", [at(W49, 0), first])])
    await converged(client, cpu, W48, W49)
    run_sql([(f"UPDATE {table} SET value = value + 10 WHERE series_id = %s", [cpu.pk])])
    await converged(client, cpu, W48, W49)
    run_sql([(f"DELETE FROM {table} WHERE series_id = %s", [cpu.pk])])
    await converged(client, cpu, W48, W49)
    assert (await database_payload(cpu, W49))["values"] == [None] * 7
    updates = [m for m in bystander.received if m.get("action") == "update"]
    assert updates == [], updates
    assert bystander.payload(week_key(mem.pk, W48))["values"] == [None] * 7
    await client.close()
    await bystander.close()


@pytest.mark.parametrize("layer", ["no-redis"], indirect=True)
async def test_without_redis_orm_scripts_bulk_calls_and_rest_reach_a_subscriber(server, cpu):
    """
    Tests that with no Redis anywhere, an ORM create and a QuerySet.update() in other
    processes and a REST write to the server all reach a subscriber.
    """
    client = await subscriber(server, W48)
    stamp = at(W48, 4)
    await sync_to_async(run_script)(
        "from datetime import datetime, UTC\nfrom metrics.models import Metric\n"
        f"Metric.objects.create(series_id={cpu.pk}, "
        f"timestamp=datetime.fromisoformat({stamp.isoformat()!r}), value=3)",
        None,
    )
    await converged(client, cpu, W48)
    await sync_to_async(run_script)(
        "from metrics.models import Metric\n"
        f"Metric.objects.filter(series_id={cpu.pk}).update(value=8)",
        None,
    )
    await converged(client, cpu, W48)
    token = await sync_to_async(run_script)(
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "user = User.objects.create_superuser('root', password='x')\n"
        "print(Token.objects.create(user=user).key)",
        None,
    )
    status, body = await sync_to_async(post_json)(
        server.http_url + "/api/metrics/",
        {"series": "cpu", "timestamp": at(W48, 5).isoformat(), "value": 40},
        token.strip(),
    )
    assert status == 201, body
    await converged(client, cpu, W48)
    assert client.payload(week_key(cpu.pk, W48))["values"][5] == 40
    await client.close()


def post_json(url: str, data: dict[str, Any], token: str) -> tuple[int, str]:
    """POSTs JSON with a DRF token; returns the status and body."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


MOVER = """
import random
from datetime import datetime, UTC
from metrics.models import Metric
weeks = [{weeks}]
rng = random.Random({seed})
for _ in range({rounds}):
    # A stale instance, loaded before the other process's moves: save() writes in autocommit.
    metric = Metric.objects.get(pk={pk})
    metric.timestamp = datetime.fromisoformat(rng.choice(weeks))
    metric.value = rng.randint(1, 99)
    metric.save()
"""


async def test_two_processes_moving_one_row_in_autocommit_always_converge(server, layer, cpu):
    """
    Tests the autocommit move race: two processes moving the same row between three weeks
    with save() outside transactions leave every week equal to the database.
    """
    weeks = (W48, W49, IsoWeek(2026, 50))
    client = await subscriber(server, *weeks)
    pk = await sync_to_async(lambda: Metric.objects.get(series=cpu).pk)()
    stamps = ", ".join(repr(at(week, 2).isoformat()) for week in weeks)
    movers = [
        sync_to_async(run_script, thread_sensitive=False)(
            MOVER.format(weeks=stamps, seed=seed, rounds=60, pk=pk), layer
        )
        for seed in (1, 2)
    ]
    await asyncio.gather(*movers)
    await converged(client, cpu, *weeks)
    await client.close()


async def test_a_rolled_back_transaction_or_savepoint_records_and_sends_nothing(server, cpu):
    """
    Tests that a rolled-back transaction and a rolled-back savepoint leave no change in the
    log, and that a subscriber gets no update from them.
    """
    from django.db import transaction

    from streaming.models import Change

    client = await subscriber(server, W48)

    def write() -> None:
        with transaction.atomic():
            Metric.objects.create(series=cpu, timestamp=at(W48, 3), value=10)
            transaction.set_rollback(True)
        with transaction.atomic():
            sid = transaction.savepoint()
            Metric.objects.create(series=cpu, timestamp=at(W48, 4), value=20)
            transaction.savepoint_rollback(sid)

    def newest() -> int:
        return Change.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # By id, not by count: the server's relay may prune old rows meanwhile.
    before = await sync_to_async(newest)()
    await sync_to_async(write)()
    assert not await sync_to_async(Change.objects.filter(id__gt=before).exists)()
    # Something that does commit, after: the subscriber's next update is that one.
    await sync_to_async(Metric.objects.create)(series=cpu, timestamp=at(W48, 5), value=30)
    await converged(client, cpu, W48)
    updates = [m for m in client.received if m.get("action") == "update"]
    assert all(m["payload"]["values"][3:5] == [None, None] for m in updates), updates
    await client.close()
