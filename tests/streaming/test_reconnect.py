"""
The render-subscribe gap and reconnects, against a real daphne server through Redis: a
change made after a page was rendered but before its socket subscribed is in the subscribe
snapshot (with a newer version), and a client that lost its socket, reconnects and
resubscribes holds the current payload, including what was written while it was away.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from metrics.models import Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek
from tests.support.processes import run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

STREAM = "metrics.week"
W48 = IsoWeek(2026, 48)


def write(value: float, redis_url: str, day: int = 24) -> None:
    """Creates a cpu metric on November `day` (2026-W48) in a separate script process."""
    run_script(
        f"""
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime(2026, 11, {day}, 12, tzinfo=timezone.utc),
                              value={value})
        """,
        redis_url,
    )


def rendered_payload(base_url: str) -> dict[str, Any]:
    """Returns the week payload embedded in cpu's 2026-W48 page, as the browser gets it."""
    with urllib.request.urlopen(f"{base_url}/series/cpu/?week={W48}", timeout=30) as response:
        html = response.read().decode()
    match = re.search(r'<script id="payload-cpu" type="application/json">(.*?)</script>', html)
    assert match, "no embedded payload in the page"
    return json.loads(match[1])


@sync_to_async
def database_payload() -> dict[str, Any]:
    """Returns cpu's W48 payload as the database holds it now."""
    return series_week(series=Series.objects.get(slug="cpu"), week=W48)


async def test_a_change_between_render_and_subscribe_is_in_the_snapshot(daphne, use_redis):
    """Tests that a write after the page render is in the later subscribe's newer snapshot."""
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    watcher = await StreamSubscriber(daphne.ws_url).connect()
    before = await watcher.subscribe(STREAM, series="cpu", week=str(W48))
    assert before["response_status"] == 200, before

    page = await sync_to_async(rendered_payload)(daphne.http_url)
    assert page["values"] == [None] * 7
    await sync_to_async(write)(5.0, use_redis)

    client = await StreamSubscriber(daphne.ws_url).connect()
    reply = await client.subscribe(STREAM, series="cpu", week=str(W48))
    assert reply["response_status"] == 200, reply
    assert reply["data"]["version"] > before["data"]["version"]
    assert reply["data"]["payload"] == await database_payload()
    assert reply["data"]["payload"]["values"][1] == 5.0
    await watcher.close()
    await client.close()


async def test_a_client_that_reconnects_and_resubscribes_holds_the_current_payload(
    daphne, use_redis
):
    """Tests close, write while away, reconnect + resubscribe: the client is current again."""
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    client = await StreamSubscriber(daphne.ws_url).connect()
    reply = await client.subscribe(STREAM, series="cpu", week=str(W48))
    key = reply["data"]["key"]
    await sync_to_async(write)(1.0, use_redis, day=23)
    await client.wait_for(lambda c: c.payload(key)["values"][0] == 1.0)

    await client.close()
    await sync_to_async(write)(2.0, use_redis, day=25)
    assert client.payload(key)["values"][2] is None

    await client.connect()
    reply = await client.subscribe(STREAM, series="cpu", week=str(W48))
    assert reply["response_status"] == 200, reply
    assert client.payload(key) == await database_payload()
    assert client.payload(key)["values"][:3] == [1.0, None, 2.0]

    # And updates flow again on the new socket.
    await sync_to_async(write)(3.0, use_redis, day=26)
    await client.wait_for(lambda c: c.payload(key)["values"][3] == 3.0)
    assert client.payload(key) == await database_payload()
    await client.close()
