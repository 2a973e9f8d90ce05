"""
The /ws/stream/ protocol, spoken to settings.asgi.application with WebsocketCommunicator
over the in-memory channel layer: subscribe, updates, unsubscribe and error replies.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek
from settings.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
W48, W49 = IsoWeek(2026, 48), IsoWeek(2026, 49)
REPLY_KEYS = {"action", "request_id", "response_status", "errors", "data"}


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
async def socket():
    """Returns a connected communicator, disconnected after the test."""
    communicator = WebsocketCommunicator(application, "/ws/stream/", headers=ORIGIN)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    yield communicator
    await communicator.disconnect()


def subscribe(request_id: Any = 1, week: str | None = "2026-W48", **params: Any) -> dict:
    """Returns a subscribe message for series cpu (params override it)."""
    params = {"series": "cpu", **({"week": week} if week else {}), **params}
    return {
        "action": "subscribe",
        "request_id": request_id,
        "stream": "metrics.week",
        "params": params,
    }


async def receive(communicator: WebsocketCommunicator, timeout: float = 10) -> dict:
    """Returns the next frame as JSON, waiting without letting a timeout cancel the app."""
    deadline = time.monotonic() + timeout
    while await communicator.receive_nothing(timeout=0.05, interval=0.005):
        assert time.monotonic() < deadline, "no frame arrived"
    return await communicator.receive_json_from()


async def ask(communicator: WebsocketCommunicator, message: dict) -> dict:
    """Sends a message and returns the next frame."""
    await communicator.send_json_to(message)
    return await receive(communicator)


def metric_at(series: Series, moment: datetime, value: float) -> Metric:
    """Creates a metric (called through database_sync_to_async: it commits at once)."""
    return Metric.objects.create(series=series, timestamp=moment, value=value)


async def test_subscribe_replies_with_the_snapshot(socket, cpu):
    """Tests that subscribe replies 200 with its action, request_id and the week snapshot."""
    reply = await ask(socket, subscribe(request_id="abc"))
    assert set(reply) == REPLY_KEYS
    assert reply["action"] == "subscribe"
    assert reply["request_id"] == "abc"
    assert reply["response_status"] == 200
    assert reply["errors"] == []
    data = reply["data"]
    assert set(data) == {"stream", "key", "version", "payload"}
    assert data["stream"] == "metrics.week"
    assert data["key"] == f"{cpu.pk}:2026-W48"
    assert isinstance(data["version"], int)
    expected = await database_sync_to_async(series_week)(series=cpu, week=W48)
    assert data["payload"] == expected
    assert data["payload"]["values"] == [2.0, *[None] * 6]


async def test_subscribe_without_week_means_the_current_week(socket, cpu):
    """Tests that `week` is optional and defaults to this week."""
    reply = await ask(socket, subscribe(week=None))
    assert reply["response_status"] == 200
    assert reply["data"]["key"] == f"{cpu.pk}:{IsoWeek.current()}"
    assert reply["data"]["payload"]["week"] == str(IsoWeek.current())


async def test_saves_and_deletes_push_updates(socket, cpu):
    """Tests that create, save and delete each push the key's new payload, versions growing."""
    reply = await ask(socket, subscribe())
    key, version = reply["data"]["key"], reply["data"]["version"]

    metric = await database_sync_to_async(metric_at)(cpu, datetime(2026, 11, 25, tzinfo=UTC), 5.0)
    update = await receive(socket)
    assert set(update) == {"action", "stream", "key", "version", "payload"}
    assert (update["action"], update["stream"], update["key"]) == ("update", "metrics.week", key)
    assert update["version"] > version
    assert update["payload"]["values"] == [2.0, None, 5.0, None, None, None, None]

    metric.value = 6.5
    await database_sync_to_async(metric.save)()
    changed = await receive(socket)
    assert changed["payload"]["values"][2] == 6.5
    assert changed["version"] > update["version"]

    await database_sync_to_async(metric.delete)()
    deleted = await receive(socket)
    assert deleted["payload"]["values"] == [2.0, *[None] * 6]
    assert deleted["version"] > changed["version"]


async def test_unsubscribe_replies_200_and_stops_updates(socket, cpu):
    """Tests that after unsubscribe a key's writes are no longer pushed, others still are."""
    key48 = (await ask(socket, subscribe(request_id=1)))["data"]["key"]
    key49 = (await ask(socket, subscribe(request_id=2, week="2026-W49")))["data"]["key"]
    message = {**subscribe(request_id=3), "action": "unsubscribe"}
    reply = await ask(socket, message)
    assert reply["response_status"] == 200
    assert reply["action"] == "unsubscribe"
    assert reply["request_id"] == 3
    assert reply["data"] == {"stream": "metrics.week", "key": key48}

    await database_sync_to_async(metric_at)(cpu, datetime(2026, 11, 24, tzinfo=UTC), 1.0)
    # A sentinel write to the key still subscribed: once it arrives, the first is settled.
    await database_sync_to_async(metric_at)(cpu, datetime(2026, 12, 1, tzinfo=UTC), 3.0)
    update = await receive(socket)
    assert update["key"] == key49
    assert update["payload"]["values"][1] == 3.0
    assert await socket.receive_nothing(timeout=0.2)


async def test_updates_reach_every_subscribed_socket(socket, cpu):
    """Tests that two sockets on the same key both get the update."""
    other = WebsocketCommunicator(application, "/ws/stream/", headers=ORIGIN)
    assert (await other.connect(timeout=5))[0]
    await ask(socket, subscribe())
    await ask(other, subscribe())
    await database_sync_to_async(metric_at)(cpu, datetime(2026, 11, 29, tzinfo=UTC), 8.0)
    for communicator in (socket, other):
        assert (await receive(communicator))["payload"]["values"][6] == 8.0
    await other.disconnect()


BAD_REQUESTS = [
    pytest.param({**subscribe(), "stream": "nope.week"}, 404, id="unknown-stream"),
    pytest.param(subscribe(series="nope"), 404, id="unknown-series"),
    pytest.param(subscribe(week="2026-W99"), 400, id="week-99"),
    pytest.param(subscribe(week="-1"), 400, id="week-negative"),
    pytest.param({**subscribe(), "params": {"week": "2026-W48"}}, 400, id="missing-series"),
    pytest.param(subscribe(colour="red"), 400, id="extra-param"),
    pytest.param({**subscribe(), "params": ["cpu"]}, 400, id="params-not-object"),
    pytest.param({**subscribe(), "stream": 7}, 400, id="stream-not-string"),
    pytest.param({**subscribe(), "extra": True}, 400, id="extra-field"),
    pytest.param(subscribe(series=5), 400, id="series-not-string"),
]


@pytest.mark.parametrize(("message", "status"), BAD_REQUESTS)
async def test_bad_subscribe_gets_an_error_reply_and_the_socket_stays_open(
    socket, cpu, message, status
):
    """Tests that each invalid subscribe gets its 4xx reply, then a valid one still works."""
    reply = await ask(socket, message)
    assert set(reply) == REPLY_KEYS
    assert reply["response_status"] == status
    assert reply["action"] == "subscribe"
    assert reply["request_id"] == 1
    assert reply["errors"]
    assert reply["data"] is None
    ok = await ask(socket, subscribe(request_id=2))
    assert (ok["request_id"], ok["response_status"]) == (2, 200)


async def test_unknown_action_gets_a_4xx_reply(socket, cpu):
    """Tests that an action the consumer does not have is refused, echoing the action."""
    reply = await ask(socket, {"action": "explode", "request_id": 9})
    assert 400 <= reply["response_status"] < 500
    assert (reply["action"], reply["request_id"]) == ("explode", 9)
    assert reply["errors"]
    assert (await ask(socket, subscribe()))["response_status"] == 200


async def test_missing_action_gets_a_4xx_reply(socket, cpu):
    """Tests that an object without an action is refused with action null."""
    reply = await ask(socket, {"request_id": 4, "stream": "metrics.week"})
    assert 400 <= reply["response_status"] < 500
    assert (reply["action"], reply["request_id"]) == (None, 4)
    assert (await ask(socket, subscribe()))["response_status"] == 200


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"text_data": '{"action": "subscribe",'}, id="malformed-json"),
        pytest.param({"text_data": "NaN-ish garbage"}, id="not-json"),
        pytest.param({"text_data": json.dumps([subscribe()])}, id="json-array"),
        pytest.param({"text_data": "42"}, id="json-number"),
        pytest.param({"text_data": '"subscribe"'}, id="json-string"),
        pytest.param({"bytes_data": b'{"action": "subscribe"}'}, id="binary-frame"),
    ],
)
async def test_frames_that_are_not_json_objects_get_400_with_action_null(socket, cpu, frame):
    """Tests that malformed JSON, non-objects and binary frames get 400, action null."""
    await socket.send_to(**frame)
    reply = await receive(socket)
    assert reply["response_status"] == 400
    assert reply["action"] is None
    assert reply["request_id"] is None
    assert reply["errors"]
    assert (await ask(socket, subscribe()))["response_status"] == 200


async def test_private_series_is_404_for_anonymous_like_an_unknown_one(socket, cpu):
    """
    Tests that an anonymous socket may neither subscribe to nor unsubscribe from a private
    series, gets no data, and is answered exactly as for a series that does not exist.
    """
    await database_sync_to_async(Series.objects.create)(slug="revenue", name="R", is_public=False)
    for action in ("subscribe", "unsubscribe"):
        private = await ask(socket, {**subscribe(series="revenue"), "action": action})
        unknown = await ask(socket, {**subscribe(series="no-such"), "action": action})
        assert private == unknown, (private, unknown)
        assert (private["response_status"], private["data"]) == (404, None)
    assert await socket.receive_nothing(timeout=0.1)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"host", b"127.0.0.1")], id="no-origin"),
        pytest.param([(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")], id="foreign"),
    ],
)
async def test_connection_without_an_allowed_origin_is_refused(headers):
    """Tests that AllowedHostsOriginValidator refuses a socket without a matching Origin."""
    communicator = WebsocketCommunicator(application, "/ws/stream/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()
