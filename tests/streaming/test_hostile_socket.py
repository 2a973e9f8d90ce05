"""
Hostile input on /ws/stream/: every case gets an error reply or a documented close code,
and the server, and every other client, carries on (docs/security.md).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import websockets
from asgiref.sync import sync_to_async
from websockets.exceptions import InvalidStatus

from metrics.models import Metric, Series
from streaming.protocol import group_name
from streaming.serve.hub import get_hub
from streaming.serve.limits import CLOSE_RATE_LIMITED, CLOSE_TOO_LARGE
from tests.support.consumer import ConsumerSocket
from tests.support.wsclient import StreamSubscriber, origin_for

pytestmark = pytest.mark.django_db(transaction=True)

WEEK = "2026-W48"
TUESDAY = datetime(2026, 11, 24, 12, tzinfo=UTC)
SUBSCRIBE = {"action": "subscribe", "stream": "metrics.week"}


@pytest.fixture
def series() -> Series:
    """Returns a public series, summed per day."""
    return Series.objects.create(slug="cpu", name="CPU", aggregation="sum")


async def write(series: Series, value: float) -> None:
    """Saves one metric of `series` on the Tuesday of WEEK."""
    await sync_to_async(Metric.objects.create)(series=series, timestamp=TUESDAY, value=value)


async def send_then_drain(ws: websockets.ClientConnection, frames: list[str | bytes]) -> None:
    """Sends the frames, then reads until the connection closes (raising ConnectionClosed)."""
    for frame in frames:
        await ws.send(frame)
    while True:
        await ws.recv()


async def still_serves(socket: ConsumerSocket) -> None:
    """Fails unless `socket` still answers a valid subscribe."""
    reply = await socket.subscribe("cpu")
    assert reply["response_status"] == 200, reply


async def test_frames_that_are_not_json_objects_get_400_with_action_null(series):
    """Tests that invalid JSON, binary frames, non-objects and NaN get a 400 reply each."""
    socket = await ConsumerSocket().connect()
    frames = ["{", "not json", "[]", "1", '"text"', "null", "true", '{"a": NaN}', "[" * 5000]
    for text in frames:
        await socket.send(text)
        reply = await socket.frame()
        assert (reply["action"], reply["response_status"]) == (None, 400), (text, reply)
        assert reply["errors"]
    await socket.send(data=b"\x00\xff binary")
    reply = await socket.frame()
    assert (reply["action"], reply["response_status"]) == (None, 400)
    await still_serves(socket)
    await socket.close()


async def test_unknown_or_missing_actions_and_streams_get_error_replies(series):
    """Tests that unknown, missing and non-string actions and unknown streams are refused."""
    socket = await ConsumerSocket().connect()
    cases = [
        ({"action": "dance"}, 405),
        ({"request_id": 1}, 405),
        ({"action": 7}, 400),
        ({"action": ["subscribe"]}, 400),
        ({**SUBSCRIBE, "stream": "nope", "params": {"series": "cpu"}}, 404),
        ({**SUBSCRIBE, "stream": 5, "params": {"series": "cpu"}}, 400),
        ({**SUBSCRIBE, "params": {"series": "no-such-series"}}, 404),
    ]
    for message, status in cases:
        reply = await socket.request(message)
        assert reply["response_status"] == status, (message, reply)
        assert reply["errors"], reply
    await still_serves(socket)
    await socket.close()


async def test_bad_params_get_400_with_a_field_message(series):
    """Tests that missing, extra, wrongly typed, out-of-range and huge params get a 400."""
    socket = await ConsumerSocket().connect()
    huge = "x" * 10_000
    params = [
        {},
        {"week": WEEK},
        {"series": "cpu", "week": WEEK, "colour": "red"},
        {"series": 5},
        {"series": None},
        {"series": ["cpu"]},
        {"series": "cpu", "week": 48},
        {"series": "cpu", "week": -1},
        {"series": "cpu", "week": "-1"},
        {"series": "cpu", "week": "2026-W99"},
        {"series": "cpu", "week": "2026-W00"},
        {"series": "cpu", "week": "0000-W01"},
        {"series": "cpu", "week": "0001-W01"},
        {"series": "cpu", "week": "9999-W52"},
        {"series": "cpu", "week": "2026-W48\n"},
        {"series": "cpu", "week": "2026-W\uff14\uff18"},
        {"series": huge},
        {"series": "cpu\x00"},
        {"series": "cpu", "week": "2026-W48\x00"},
        {"series": "cpu", "week": huge},
    ]
    for value in params:
        reply = await socket.request({**SUBSCRIBE, "params": value})
        assert reply["response_status"] == 400, (value, reply)
        assert "params" in reply["errors"][0], reply
    for message in [
        {**SUBSCRIBE, "params": "cpu"},
        {**SUBSCRIBE, "params": ["cpu"]},
        {**SUBSCRIBE, "params": {"series": "cpu"}, "extra": 1},
        {**SUBSCRIBE, "params": {"series": "cpu"}, "self": 1, "scope": {}, "consumer": 2},
    ]:
        reply = await socket.request(message)
        assert reply["response_status"] == 400, (message, reply)
    await still_serves(socket)
    await socket.close()


async def test_frame_over_the_size_limit_closes_with_4009(series, settings):
    """Tests that a text or binary frame over MAX_MESSAGE_BYTES closes the socket (4009)."""
    settings.STREAMING = {**settings.STREAMING, "MAX_MESSAGE_BYTES": 1000}
    for frame in [{"text": "x" * 1001}, {"text": "é" * 501}, {"data": b"x" * 1001}]:
        socket = await ConsumerSocket().connect()
        await socket.send(**frame)
        assert await socket.output() == {"type": "websocket.close", "code": CLOSE_TOO_LARGE}
    socket = await ConsumerSocket().connect()
    await socket.send(json.dumps({**SUBSCRIBE, "params": {"series": "x" * 900}}))
    assert (await socket.frame())["response_status"] == 400
    await socket.close()


async def test_subscriptions_past_the_cap_are_refused(series, settings):
    """Tests that a connection's subscription past MAX_SUBSCRIPTIONS gets 429, others stay."""
    settings.STREAMING = {**settings.STREAMING, "MAX_SUBSCRIPTIONS": 3}
    socket = await ConsumerSocket().connect()
    for week in ["2026-W46", "2026-W47", "2026-W48"]:
        assert (await socket.subscribe("cpu", week))["response_status"] == 200
    refused = await socket.subscribe("cpu", "2026-W49")
    assert refused["response_status"] == 429, refused
    # Resubscribing to a key held does not count, and unsubscribing frees a place.
    assert (await socket.subscribe("cpu", "2026-W48"))["response_status"] == 200
    params = {"series": "cpu", "week": "2026-W46"}
    left = await socket.request(
        {"action": "unsubscribe", "stream": "metrics.week", "params": params}
    )
    assert left["response_status"] == 200
    assert (await socket.subscribe("cpu", "2026-W49"))["response_status"] == 200
    await socket.close()


async def test_a_flood_is_rate_limited_then_closed_with_4029(series, settings):
    """Tests that a flooding connection gets 429 replies, then is closed with 4029."""
    limits = {"RATE_PER_SECOND": 0.5, "RATE_BURST": 5, "RATE_STRIKES": 3}
    settings.STREAMING = {**settings.STREAMING, **limits}
    socket = await ConsumerSocket().connect()
    for _ in range(20):
        await socket.send(json.dumps({"action": "dance"}))
    statuses = []
    while True:
        message = await socket.output()
        if message["type"] == "websocket.close":
            assert message["code"] == CLOSE_RATE_LIMITED
            break
        statuses.append(json.loads(message["text"])["response_status"])
    assert statuses == [405] * 5 + [429] * 2


async def test_subscribing_twice_is_idempotent(series):
    """Tests that a second subscribe to a key keeps one membership and one update a change."""
    socket = await ConsumerSocket().connect()
    first, second = await socket.subscribe("cpu"), await socket.subscribe("cpu")
    assert first["response_status"] == second["response_status"] == 200
    key = first["data"]["key"]
    assert len(get_hub().groups[group_name("metrics.week", key)]) == 1
    await write(series, 4.0)
    update = await socket.frame()
    assert (update["action"], update["payload"]["values"][1]) == ("update", 4.0)
    assert await socket.quiet(0.5)
    await socket.close()


@pytest.mark.redis
async def test_hostile_clients_leave_the_server_and_other_clients_working(series, daphne):
    """
    Tests that against a real daphne, after garbage, oversized frames (ours and daphne's
    limit), a flood and a subscription storm, the server lives and a bystander still gets
    every update.
    """
    bystander = await StreamSubscriber(daphne.ws_url).connect()
    key = (await bystander.subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"]
    expected = 0.0

    async def bystander_still_receives() -> None:
        nonlocal expected
        expected += 1
        await write(series, 1.0)
        await bystander.wait_for(lambda c: c.payload(key)["values"][1] == expected)
        assert daphne.process.poll() is None

    async def closed_with(frames: list[str | bytes]) -> int:
        async with websockets.connect(
            daphne.ws_url, origin=origin_for(daphne.ws_url), max_size=None
        ) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(send_then_drain(ws, frames), 10)
            return ws.close_code

    garbage = ["{", b"\x00", "[]", '{"action": 1}', '{"action": "subscribe", "params": 1}']
    async with websockets.connect(daphne.ws_url, origin=origin_for(daphne.ws_url)) as ws:
        for frame in garbage:
            await ws.send(frame)
            assert json.loads(await ws.recv())["response_status"] == 400
    await bystander_still_receives()

    assert await closed_with(["x" * (64 * 1024 + 1)]) == CLOSE_TOO_LARGE
    await bystander_still_receives()
    # Past daphne's own frame limit (1 MiB) autobahn drops the connection mid-frame.
    # daphne drops a frame over its own 1 MiB limit mid-frame; uvicorn takes 16 MiB (its
    # --ws-max-size), so the consumer's own cap answers.
    assert await closed_with([b"x" * (2 * 1024 * 1024)]) in (1006, 1009, CLOSE_TOO_LARGE)
    await bystander_still_receives()

    assert await closed_with(['{"action": "dance"}'] * 200) == CLOSE_RATE_LIMITED
    await bystander_still_receives()

    greedy = await StreamSubscriber(daphne.ws_url).connect()
    replies = []
    for week in range(1, 53):
        # Paced under the message rate, so only the subscription cap refuses.
        await asyncio.sleep(0.04)
        replies.append(
            await greedy.subscribe("metrics.week", series="cpu", week=f"2026-W{week:02d}")
        )
    assert [r["response_status"] for r in replies] == [200] * 50 + [429] * 2
    assert "subscriptions" in replies[-1]["errors"][0]
    await greedy.close()
    await bystander_still_receives()
    await bystander.close()


async def test_a_socket_to_no_route_is_refused_at_the_handshake(daphne):
    """Tests that an unknown WebSocket path gets HTTP 403 (no 500, no traceback) and no socket."""
    url = daphne.ws_url.replace("/ws/stream/", "/ws/nowhere/")
    with pytest.raises(InvalidStatus) as refusal:
        async with websockets.connect(url, origin=daphne.http_url):
            pass
    assert refusal.value.response.status_code == 403
    # The server is unharmed: the stream endpoint still subscribes.
    await sync_to_async(Series.objects.create)(slug="after", name="after", aggregation="max")
    async with websockets.connect(daphne.ws_url, origin=daphne.http_url) as ws:
        subscribe = {"stream": "metrics.week", "params": {"series": "after"}}
        await ws.send(json.dumps({"action": "subscribe", "request_id": 1, **subscribe}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (reply["request_id"], reply["response_status"]) == (1, 200)
