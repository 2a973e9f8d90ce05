"""
The Server-Sent Events endpoint /sse/stream/ on a real daphne, read by a plain HTTP client:
snapshots, updates from another process, `gone`, `revoked`, errors, and memberships released.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import Client

from metrics.models import Series
from tests.support.processes import DaphneServer, run_script
from tests.support.sseclient import EventStreamClient, query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

WEEK = "2026-W48"
WRITE_TUESDAY = """
from datetime import datetime, timezone
from metrics.models import Metric, Series
Metric.objects.create(series=Series.objects.get(slug="cpu"),
                      timestamp=datetime(2026, 11, 24, 12, tzinfo=timezone.utc), value=7.5)
"""


def plain(**params: str) -> str:
    """Returns the path of a one-subscription request of metrics.week."""
    return "/sse/stream/?" + urlencode({"stream": "metrics.week", **params})


async def opened(daphne, path: str, cookie: str | None = None) -> EventStreamClient:
    """Returns a client that sent its request and read the response's head."""
    return await EventStreamClient(daphne.port, path, cookie).open()


async def session_cookie(*, staff: bool = False, view_private: bool = False) -> str:
    """Returns the Cookie header of a logged-in user's real session."""

    def login() -> str:
        user = User.objects.create_user(f"u{User.objects.count()}", is_staff=staff)
        if view_private:
            user.user_permissions.add(Permission.objects.get(codename="view_series"))
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}"

    return await sync_to_async(login)()


async def subscribers(daphne, cookie: str) -> float:
    """Returns daphne's metrics.week subscriber count, from its /metrics/."""
    client = await opened(daphne, "/metrics/", cookie)
    assert client.status == 200
    text = (await client.raw()).decode()
    await client.close()
    match = re.search(r'^streaming_subscribers{stream="metrics.week"} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


async def test_snapshot_then_update_then_gone_then_released(daphne, use_redis):
    """
    Tests that a subscriber gets the snapshot with its version, then an ORM write of another
    process as a newer update, then `gone` once the series is deleted; and that its
    membership is released when it disconnects.
    """
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="max")
    staff = await session_cookie(staff=True)
    client = await opened(daphne, plain(series="cpu", week=WEEK))
    assert client.status == 200
    assert client.headers["content-type"].startswith("text/event-stream")

    name, snapshot = await client.next_event()
    assert name == "subscribe"
    assert snapshot["response_status"] == 200
    assert snapshot["request_id"] is None
    data = snapshot["data"]
    assert data["stream"] == "metrics.week"
    assert data["payload"]["values"] == [None] * 7
    assert await subscribers(daphne, staff) == 1

    await asyncio.to_thread(run_script, WRITE_TUESDAY, use_redis)
    name, update = await client.wait_for(lambda n, d: n == "update")
    assert update["key"] == data["key"]
    assert update["version"] > data["version"]
    assert update["payload"]["values"] == [None, 7.5, None, None, None, None, None]

    await asyncio.to_thread(
        run_script, "from metrics.models import Series\nSeries.objects.all().delete()", use_redis
    )
    name, gone = await client.wait_for(lambda n, d: n == "gone")
    assert gone["key"] == data["key"]
    assert gone["version"] > update["version"]

    await client.close()
    # The server learns of the close asynchronously: poll, without a time bound of its own.
    while await subscribers(daphne, staff) != 0:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def test_a_reconnect_to_another_server_resyncs_with_a_fresh_snapshot(daphne, use_redis):
    """
    Tests that no stickiness is needed: a client that lost its stream to one server and
    reconnects to another gets a snapshot holding what was written meanwhile, at a higher
    version, then that server's updates.
    """
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="max")
    first = await opened(daphne, plain(series="cpu", week=WEEK))
    _, before = await first.next_event()
    await first.close()
    await asyncio.to_thread(run_script, WRITE_TUESDAY, use_redis)

    other = DaphneServer(use_redis).start()
    try:
        second = await opened(other, plain(series="cpu", week=WEEK))
        _, after = await second.next_event()
        assert after["data"]["version"] > before["data"]["version"]
        assert after["data"]["payload"]["values"][1] == 7.5
        await sync_to_async(Series.objects.filter(slug="cpu").update)(name="Processor")
        _, update = await second.wait_for(lambda n, d: n == "update")
        assert update["version"] > after["data"]["version"]
        await second.close()
    finally:
        other.stop()


async def test_several_subscriptions_in_one_request_each_get_a_reply(daphne):
    """
    Tests the `subscribe=` form: each subscription gets its own reply with its request_id,
    a refused one (unknown series) a 404 reply while the others stream.
    """
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    await sync_to_async(Series.objects.create)(slug="mem", name="Memory")
    path = "/sse/stream/?" + query(
        {"stream": "metrics.week", "params": {"series": "cpu", "week": WEEK}, "request_id": 1},
        {"stream": "metrics.week", "params": {"series": "mem", "week": WEEK}, "request_id": "b"},
        {"stream": "metrics.week", "params": {"series": "nope"}, "request_id": 3},
    )
    client = await opened(daphne, path)
    assert client.status == 200
    replies = {}
    for _ in range(3):
        name, reply = await client.next_event()
        assert name == "subscribe"
        replies[reply["request_id"]] = reply
    assert replies[1]["data"]["payload"]["series"] == "cpu"
    assert replies["b"]["data"]["payload"]["series"] == "mem"
    assert replies[3]["response_status"] == 404
    assert replies[3]["errors"] == ["Not found, or not visible to you."]
    await client.close()


async def test_the_subscribe_form_streams_even_when_every_subscription_is_refused(daphne):
    """
    Tests that a `subscribe=` request (the browser client's) is 200 with a 404 reply event
    when its only subscription is refused, so the client learns which one and why.
    """
    path = "/sse/stream/?" + query({"stream": "metrics.week", "params": {"series": "nope"}})
    client = await opened(daphne, path)
    assert client.status == 200
    name, reply = await client.next_event()
    assert (name, reply["response_status"], reply["request_id"]) == ("subscribe", 404, None)
    await client.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (plain(series="nope"), 404),
        (plain(series="cpu", week="2026-W99"), 400),
        (plain(series="cpu", colour="red"), 400),
        ("/sse/stream/?stream=no.such.stream", 404),
        ("/sse/stream/?subscribe=%7Bnot%20json", 400),
        ("/sse/stream/?subscribe=%5B%5D", 400),
        ("/sse/stream/?subscribe=%7B%7D&stream=metrics.week", 400),
        ("/sse/stream/?series=cpu", 400),
        ("/sse/stream/?" + query(*[{"stream": "metrics.week"}] * 51), 429),
    ],
)
async def test_a_request_that_cannot_stream_gets_its_status(daphne, path, status):
    """Tests that bad params, unknown series and streams answer 4xx with errors, no stream."""
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    client = await opened(daphne, path)
    assert client.status == status
    assert client.headers["content-type"] == "application/json"
    body = await client.body()
    assert body["errors"], body
    await client.close()


async def test_a_private_series_is_404_anonymously_and_streams_with_the_permission(daphne):
    """Tests that the session cookie authenticates: a private series is hidden from anonymous."""
    await sync_to_async(Series.objects.create)(slug="secret", name="Secret", is_public=False)
    anonymous = await opened(daphne, plain(series="secret", week=WEEK))
    assert anonymous.status == 404
    assert (await anonymous.body())["errors"] == ["Not found, or not visible to you."]
    await anonymous.close()

    cookie = await session_cookie(view_private=True)
    allowed = await opened(daphne, plain(series="secret", week=WEEK), cookie)
    assert allowed.status == 200
    name, reply = await allowed.next_event()
    assert (name, reply["response_status"]) == ("subscribe", 200)
    await allowed.close()


async def test_logout_revokes_a_private_series(daphne):
    """Tests that deleting the session (a logout) sends `revoked` at the next re-check."""
    await sync_to_async(Series.objects.create)(slug="secret", name="Secret", is_public=False)
    cookie = await session_cookie(view_private=True)
    client = await opened(daphne, plain(series="secret", week=WEEK), cookie)
    _, reply = await client.next_event()
    assert reply["response_status"] == 200

    await sync_to_async(Session.objects.all().delete)()
    name, revoked = await client.wait_for(lambda n, d: n in ("revoked", "update", "gone"))
    assert name == "revoked"
    assert revoked == {"action": "revoked", "stream": "metrics.week", "key": reply["data"]["key"]}
    await client.close()


async def test_an_idle_stream_gets_heartbeats(transactional_db, use_redis):
    """
    Tests that a stream, even one without subscriptions (the client's first request), gets
    the WebSocket's heartbeat frame every KEEPALIVE_SECONDS, so proxies keep it and clients
    can tell it is alive.
    """
    server = DaphneServer(use_redis, STREAMING_KEEPALIVE_SECONDS="0.5").start()
    try:
        client = await opened(server, "/sse/stream/")
        assert client.status == 200
        name, beat = await client.next_event()
        assert (name, beat) == ("heartbeat", {"action": "heartbeat", "interval": 0.5})
        await client.close()
    finally:
        server.stop()


async def test_other_methods_are_405(daphne):
    """Tests that only GET streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daphne.port)
    writer.write(b"POST /sse/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405")
    assert b"Allow: GET" in head or b"allow: GET" in head
    writer.close()
