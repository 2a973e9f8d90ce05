"""
The SSE response's writer without a server (streaming/serve/sse.py): what waits for a client
that does not read stays bounded, and the events carry the WebSocket's frames verbatim.
"""

from __future__ import annotations

import asyncio
import functools
import json
from types import SimpleNamespace
from typing import Any

import pytest

from streaming import protocol
from streaming.serve import sse
from streaming.serve.sse import EventStream, event
from streaming.serve.sse_request import BadRequest, Wanted, parse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps the hub in this process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def events_of(body: bytes) -> list[tuple[str, Any]]:
    """Returns the (name, JSON data) of each event in an SSE body."""
    out = []
    for block in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_a_client_that_does_not_read_gets_only_the_newest_update_per_key():
    """
    Tests that while the response's send is stuck (a client not reading), a thousand updates
    of a key leave one waiting, and the client then gets that newest one only.
    """
    stuck = asyncio.Event()
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message["body"])
        await stuck.wait()

    stream = EventStream({"user": None}, send)
    writer = asyncio.get_running_loop().create_task(stream._write())
    member = await stream.hub.join(stream, stream._pusher(("s", "k")), "s", "k")
    stream.subscriptions[("s", "k")] = member
    await stream.hub.ready(member, 1)
    for version in range(2, 1002):
        await stream.hub.fanout(protocol.update_message("s", "k", version, {"v": version}))
        await asyncio.sleep(0)

    # The first update is being written; everything after it replaced one another.
    assert [d["version"] for _, d in events_of(b"".join(bodies))] == [2]
    assert list(stream.updates) == [("s", "k")]
    stuck.set()
    while len(bodies) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert [(n, d["version"]) for n, d in events_of(bodies[1])] == [("update", 1001)]
    writer.cancel()
    stream.release()


async def test_revoked_drops_the_keys_waiting_update():
    """Tests that a key revoked while its update waits gets `revoked`, not the update."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["body"])

    stream = EventStream({"user": None}, send)
    member = await stream.hub.join(stream, stream._pusher(("s", "k")), "s", "k")
    stream.subscriptions[("s", "k")] = member
    await stream.hub.ready(member, 1)
    await stream.hub.fanout(protocol.update_message("s", "k", 2, {"v": 2}))
    await stream.revoke(None, [("s", "k")])
    writer = asyncio.get_running_loop().create_task(stream._write())
    while not sent:  # noqa: ASYNC110
        await asyncio.sleep(0)
    revoked = {"action": "revoked", "stream": "s", "key": "k"}
    assert events_of(b"".join(sent)) == [("revoked", revoked)]
    assert not stream.hub.groups.get(protocol.group_name("s", "k"))
    writer.cancel()


def test_an_event_is_named_after_its_frames_action():
    """Tests that each event is one data line holding the frame's JSON, named by its action."""
    text = protocol.update_message("s", "k\nx", 3, {"a": "line\nbreak"})["text"]
    assert event(text) == f"event: update\ndata: {text}\n\n".encode()
    assert text.count("\n") == 0


def test_both_query_forms_parse_and_bad_ones_are_refused():
    """Tests the plain and `subscribe=` forms, and the 400/429 of malformed queries."""
    assert parse(b"stream=metrics.week&series=cpu") == [
        Wanted("metrics.week", {"series": "cpu"}, None, plain=True)
    ]
    assert parse(b'subscribe={"stream":"a","request_id":7}') == [Wanted("a", {}, 7)]
    assert parse(b"") == []
    for bad, status in [
        (b"stream=a&stream=b", 400),
        (b"stream=a&x=1&x=2", 400),
        (b"subscribe=%7B%22stream%22%3A%22a%22%2C%22extra%22%3A1%7D", 400),
        (b"subscribe=NaN", 400),
        (b"x=1", 400),
        (b"subscribe=%7B%7D&" * 51, 429),
        (b"%ff", 400),
    ]:
        with pytest.raises(BadRequest) as raised:
            parse(bad)
        assert raised.value.status == status, bad


async def test_a_failed_join_ends_the_response_and_holds_nothing(monkeypatch):
    """
    Tests that when the hub cannot join a key (the channel layer down), the response ends
    (the client reconnects with backoff) instead of streaming nothing for ever.
    """
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    joins: list[tuple[Any, ...]] = []

    async def refuse(*args: Any) -> None:
        joins.append(args[2:])
        raise OSError("channel layer down")

    stream = EventStream({"user": None}, send)
    monkeypatch.setattr(stream.hub, "join", refuse)
    wanted = Wanted("s", {}, 1)
    source = SimpleNamespace(name="s")
    await asyncio.wait_for(stream.run(receive, [(wanted, source, "k", 200, [])]), 5)
    assert joins == [("s", "k")]
    assert sent[0]["status"] == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert stream.subscriptions == {}


async def test_under_daphne_writing_waits_while_the_transport_is_full(monkeypatch):
    """
    Tests that the unsent bytes of daphne's transport are read through its send; that
    nothing is written while they exceed SOCKET_BUFFER_BYTES (updates meanwhile conflate);
    and that a client that reads nothing for STALL_SECONDS is dropped.
    """
    aborted: list[bool] = []
    transport = SimpleNamespace(
        dataBuffer=b"x" * 200_000,
        offset=100,
        _tempDataLen=50,
        abortConnection=lambda: aborted.append(True),
    )
    request = SimpleNamespace(channel=SimpleNamespace(transport=transport))
    bodies: list[bytes] = []

    async def handle_reply(protocol: Any, message: dict[str, Any]) -> None:
        bodies.append(message["body"])

    stream = EventStream({"user": None}, functools.partial(handle_reply, request))
    assert stream.transport is not None
    assert stream.transport.backlog() == 200_000 - 100 + 50
    writer = asyncio.get_running_loop().create_task(stream._write())
    push = stream._pusher(("s", "k"))
    for version in range(1, 101):
        await push(protocol.update_message("s", "k", version, {"v": version}))
        await asyncio.sleep(0.001)
    assert bodies == []
    transport.dataBuffer = b""
    while not bodies:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert [d["version"] for _, d in events_of(bodies[0])] == [100]
    assert aborted == []

    monkeypatch.setattr(sse, "STALL_SECONDS", 0.05)
    transport.dataBuffer = b"x" * 200_000
    await push(protocol.update_message("s", "k", 101, {"v": 101}))
    await asyncio.wait_for(writer, 5)
    assert aborted == [True]
    assert len(bodies) == 1
