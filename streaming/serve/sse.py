"""
One response of the Server-Sent Events endpoint (docs/protocol.md, "Server-Sent Events"):
the WebSocket protocol's frames over one long HTTP response, for networks that refuse
WebSockets. Each frame is an event named after its action; subscriptions come in the query
string (streaming/serve/sse_request.py).

Updates reach it through the process's hub like a socket's. What waits to be written is
bounded whatever the client reads: each key keeps only its newest update (latest-wins)
while the response's send is busy or, under daphne, its transport holds more than
STREAMING["SOCKET_BUFFER_BYTES"] unsent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from channels.db import database_sync_to_async

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.ops.stats import stats
from streaming.publish import snapshot
from streaming.registry import Stream
from streaming.serve.hub import Member, Send, get_hub
from streaming.serve.keepalive import get_keepalive
from streaming.serve.rechecks import get_rechecker
from streaming.serve.sse_request import Resolved, Wanted, reply
from streaming.serve.stalls import DRAIN_POLL_SECONDS

logger = logging.getLogger("streaming.serve.sse")

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # Proxies that buffer responses (nginx) would hold the events back.
    (b"x-accel-buffering", b"no"),
]
GONE = "This stream is gone."
# The start of every frame protocol.encode() writes: its action comes first.
_ACTION = '{"action":"'
# Seconds a client may leave SOCKET_BUFFER_BYTES unread before it is dropped (daphne's
# --ping-timeout for sockets).
STALL_SECONDS = 30.0
# Leaves of streams that ended without awaiting them (cancelled): kept until done.
_releases: set[asyncio.Task[None]] = set()

Slot = tuple[str, str]


def event(text: str) -> bytes:
    """Returns a frame's SSE event: named after its action, the frame's JSON as data."""
    name = "message"
    if text.startswith(_ACTION):
        name = text[len(_ACTION) : text.find('"', len(_ACTION))]
    # Compact JSON holds no line break: one data line.
    return f"event: {name}\ndata: {text}\n\n".encode()


class Transport:
    """The Twisted transport of a daphne HTTP response: its unsent bytes, and its abort."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def backlog(self) -> int:
        """Returns how many bytes wait in the transport's user-space send buffer."""
        t = self.transport
        return len(t.dataBuffer) - t.offset + t._tempDataLen

    def abort(self) -> None:
        """Drops the connection at once; daphne then sends the response http.disconnect."""
        self.transport.abortConnection()


def transport_of(send: Any) -> Transport | None:
    """
    Returns daphne's transport behind `send` (daphne's send is `functools.partial(
    server.handle_reply, request)`), or None elsewhere: other servers' sends wait for the
    client themselves.
    """
    if not (isinstance(send, functools.partial) and send.args):
        return None
    transport = getattr(getattr(send.args[0], "channel", None), "transport", None)
    needed = ("dataBuffer", "offset", "_tempDataLen", "abortConnection")
    if not all(hasattr(transport, a) for a in needed):
        return None
    return Transport(transport)


class EventStream:
    """One SSE response: its subscriptions, what waits to be written, and its writer."""

    def __init__(self, scope: dict[str, Any], send: Send) -> None:
        self.scope = scope
        self.send = send
        self.hub = get_hub()
        self.subscriptions: dict[Slot, Member] = {}
        # Replies and `revoked` in order; then each key's newest update; then a heartbeat.
        self.events: list[str] = []
        self.updates: dict[Slot, str] = {}
        self.heartbeat: str | None = None
        self.wake = asyncio.Event()
        self.transport = transport_of(send)

    async def run(self, receive: Any, resolved: list[Resolved]) -> None:
        """Streams until the client goes: replies with snapshots first, then pushes."""
        await self.send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        # A comment: the client sees the stream open before the snapshots are read.
        await self.send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
        writer = asyncio.get_running_loop().create_task(self._write())
        try:
            try:
                await self._subscribe(resolved)
            except Exception:
                # The channel layer or the database failed a join: end the response, so the
                # client comes back (with backoff) instead of waiting on a stream that has
                # no keys. A socket is closed (4503) for the same reason.
                logger.warning("streaming: SSE subscribe failed; ending the stream", exc_info=True)
                writer.cancel()
                await self.send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            get_keepalive().add(self, self._beat, None)
            if self.subscriptions:
                get_rechecker().watch(self)
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            writer.cancel()
            self.release()

    async def _subscribe(self, resolved: list[Resolved]) -> None:
        """Joins every allowed key first, then reads each stream's keys in one snapshot."""
        streams: dict[str, tuple[Stream, list[tuple[Wanted, str]]]] = {}
        for wanted, stream, key, status, errors in resolved:
            if stream is None or key is None:
                self._queue(protocol.encode(reply(wanted, status, errors=errors)))
                continue
            streams.setdefault(stream.name, (stream, []))[1].append((wanted, key))
            slot = (stream.name, key)
            if slot not in self.subscriptions:
                self.subscriptions[slot] = await self.hub.join(self, self._pusher(slot), *slot)
        for name, (stream, items) in streams.items():
            keys = list(dict.fromkeys(key for _, key in items))
            try:
                version, payloads = await database_sync_to_async(snapshot.read)(
                    stream.payload, keys, None
                )
            except Exception:
                logger.exception("streaming: SSE snapshot of %d %s key(s) failed", len(keys), name)
                for wanted, key in items:
                    await self._leave((name, key))
                    self._queue(protocol.encode(reply(wanted, 500, errors=["Internal error."])))
                continue
            found = dict(zip(keys, payloads, strict=True))
            for wanted, key in items:
                payload = found[key]
                if payload is None:
                    await self._leave((name, key))
                    self._queue(protocol.encode(reply(wanted, 404, errors=[GONE])))
                    continue
                data = {"stream": name, "key": key, "version": version, "payload": payload}
                self._queue(protocol.encode(reply(wanted, 200, data=data)))
            for key in keys:
                joined = self.subscriptions.get((name, key))
                if joined is not None:
                    await self.hub.ready(joined, version)

    def _queue(self, text: str) -> None:
        self.events.append(text)
        self.wake.set()

    def _pusher(self, slot: Slot) -> Send:
        """Returns the hub's send for one key: keeps its newest update for the writer."""

        async def push(message: dict[str, Any]) -> None:
            if slot in self.updates:
                stats.add("conflated", slot[0])
            self.updates[slot] = message["text"]
            self.wake.set()

        return push

    async def _beat(self, message: dict[str, Any]) -> None:
        """The keepalive's send: one heartbeat waits at most, behind everything else."""
        self.heartbeat = message["text"]
        self.wake.set()

    async def _write(self) -> None:
        """Writes what waits, in chunks, whenever the transport has room for more."""
        try:
            await self._write_loop()
        except Exception:
            # The client went away mid-send: its http.disconnect ends the response.
            logger.debug("streaming: SSE write failed", exc_info=True)

    async def _write_loop(self) -> None:
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            stalled_at = loop.time()
            # Twisted tells no one when its buffer drains: poll it, as the hub does.
            while self.transport is not None and self.transport.backlog() > limit:
                # The client stopped reading: updates meanwhile replace each other.
                if loop.time() - stalled_at > STALL_SECONDS:
                    # Nor will it: drop it, as daphne drops a socket that answers no ping.
                    logger.info("streaming: SSE client stalled %ss; dropped", STALL_SECONDS)
                    self.transport.abort()
                    return
                await asyncio.sleep(DRAIN_POLL_SECONDS)
            self.wake.clear()
            texts = [*self.events, *self.updates.values()]
            if self.heartbeat is not None:
                texts.append(self.heartbeat)
            self.events, self.updates, self.heartbeat = [], {}, None
            if not texts:
                continue
            body = b"".join(event(text) for text in texts)
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    def forget_gone(self) -> None:
        """Drops subscriptions the hub ended (their object was deleted: `gone` was sent)."""
        for stream, key in list(self.subscriptions):
            if self not in self.hub.groups.get(protocol.group_name(stream, key), ()):
                del self.subscriptions[(stream, key)]

    async def revoke(self, user: Any, lost: list[Slot]) -> None:
        """Called by the re-checker: records the current user, drops and reports lost keys."""
        self.scope["user"] = user
        for slot in lost:
            if slot in self.subscriptions:
                await self._leave(slot)
                self.updates.pop(slot, None)
                stream, key = slot
                self._queue(protocol.encode({"action": "revoked", "stream": stream, "key": key}))

    async def _leave(self, slot: Slot) -> None:
        if self.subscriptions.pop(slot, None) is not None:
            await self.hub.leave(self, *slot)

    def release(self) -> None:
        """
        Called as the response ends, also when the server cancels it: leaves the keys it
        still holds in a task of their own, which no cancellation of the response stops.
        """
        get_rechecker().forget(self)
        get_keepalive().discard(self)
        held = list(self.subscriptions)
        self.subscriptions.clear()
        if held:
            task = asyncio.get_running_loop().create_task(self._leave_all(held))
            _releases.add(task)
            task.add_done_callback(_releases.discard)

    async def _leave_all(self, held: list[Slot]) -> None:
        for stream, key in held:
            try:
                await self.hub.leave(self, stream, key)
            except Exception:
                logger.warning("streaming: leaving %s %r failed", stream, key, exc_info=True)
