"""
Two daphne processes sharing one Redis, as behind a load balancer: a write handled by
either server, or by a script, reaches sockets connected to the other one.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token

from metrics.models import Series
from tests.support.processes import DaphneServer, run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

WEEK = "2026-W48"


@pytest.fixture
def servers(transactional_db, use_redis: str) -> Iterator[tuple[DaphneServer, DaphneServer]]:
    """Returns two daphne servers, A and B, on their own ports, sharing the test Redis."""
    a, b = DaphneServer(use_redis), DaphneServer(use_redis)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """Returns the status and JSON body of one HTTP request."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def writer_token() -> str:
    """Returns the API token of a user allowed to add metrics."""
    user = User.objects.create_user("writer")
    user.user_permissions.add(Permission.objects.get(codename="add_metric"))
    return Token.objects.create(user=user).key


async def test_writes_through_server_a_and_a_script_reach_server_b(servers, use_redis):
    """Tests that a REST write on A and an ORM script both reach a subscriber on B."""
    a, b = servers
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="max")
    token = await sync_to_async(writer_token)()
    on_b = await StreamSubscriber(b.ws_url).connect()
    on_a = await StreamSubscriber(a.ws_url).connect()
    key = (await on_b.subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"]
    assert (await on_a.subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"] == key

    metric = {"series": "cpu", "timestamp": "2026-11-24T12:00:00Z", "value": 4.5}
    status, body = await asyncio.to_thread(
        http, "POST", f"{a.http_url}/api/metrics/", metric, token
    )
    assert status == 201, body
    await on_b.wait_for(lambda c: c.payload(key)["values"][1] == 4.5)
    await on_a.wait_for(lambda c: c.payload(key)["values"][1] == 4.5)

    await asyncio.to_thread(
        run_script,
        """
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime(2026, 11, 26, 8, tzinfo=timezone.utc), value=9.0)
        """,
        use_redis,
    )
    await on_b.wait_for(lambda c: c.payload(key)["values"][3] == 9.0)
    assert on_b.payload(key)["values"] == [None, 4.5, None, 9.0, None, None, None]
    await on_a.wait_for(lambda c: c.payload(key)["values"][3] == 9.0)

    # Both servers answer the same REST read and are healthy through the shared Redis.
    for server in servers:
        url = f"{server.http_url}/api/series/cpu/week/?week={WEEK}"
        assert (await asyncio.to_thread(http, "GET", url))[1]["values"][3] == 9.0
        status, health = await asyncio.to_thread(http, "GET", f"{server.http_url}/healthz")
        assert status == 200, health
    await on_a.close()
    await on_b.close()
