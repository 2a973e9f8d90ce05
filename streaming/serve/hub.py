"""
The process-local hub: one channel-layer subscription per key per process, however many
sockets watch that key, and one pre-encoded frame fanned out to all of them.

It also keeps what each socket has seen: versions only grow per socket, and a socket that
is still waiting for its subscribe reply gets the newest update right after that reply.
Under daphne, frames go straight to each socket's transport, and a socket that stops
reading gets the newest update per key once it drains (streaming/serve/daphne/).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable
from typing import Any

from streaming import protocol
from streaming.conf import channel_layer, streaming_settings
from streaming.ops.stats import stats
from streaming.publish.layer import serve_locally
from streaming.registry import AllKeys
from streaming.serve.daphne import Wire
from streaming.serve.heartbeat import Heartbeat
from streaming.serve.joins import JOIN_TIMEOUT_SECONDS, Joins
from streaming.serve.member import Member, Send
from streaming.serve.outlet import Outlet, outlet_of
from streaming.serve.relay import Relay
from streaming.serve.repair import ALWAYS, Repairs

logger = logging.getLogger("streaming.serve.hub")


# Seconds between looks at full sockets whose drain Twisted cannot report (see drained()).
DRAIN_POLL_SECONDS = 0.05


class Hub(Joins, Repairs):
    """Fans the channel layer's updates out to this event loop's sockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Any: the hub uses the Redis layers' new_channel(prefix), not in the base stub.
        self.layer: Any = channel_layer()
        self.channel: str | None = None
        self.groups: dict[str, dict[object, Member]] = {}
        self.keys: dict[str, tuple[str, str]] = {}
        self._joined: dict[str, asyncio.Future[None]] = {}
        self._controls: set[str] = set()
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.heartbeat: Heartbeat | None = None
        # Sockets over their send-buffer limit, with the members holding an update for them.
        self._stalled: dict[Outlet, set[Member]] = {}
        self._drainer: asyncio.Task[None] | None = None
        # Keys to re-read from the database, with the version their sockets must reach.
        self._dirty: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._repairer: asyncio.Task[None] | None = None
        self.relay: Relay | None = None
        # Groups the channel layer did not take yet (it was down): retried in the background.
        self._unjoined: set[str] = set()
        self._joiner: asyncio.Task[None] | None = None
        # Groups left by their last socket, not yet left on the channel layer (in order).
        self._leaving: dict[str, None] = {}
        self._leaver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts the relay, and connects to the channel layer (in the background if it is down)."""
        async with self._start_lock:
            if self.relay is not None:
                return
            self.relay = Relay(self.loop, self.relayed, self.resync)
            self.relay.start()
            try:
                await self._connect()
            except Exception as exc:
                logger.warning("streaming: channel layer unavailable (%r); relay only", exc)
                self._tasks.append(self.loop.create_task(self._guard(self._connect_later())))

    async def join(self, owner: object, send: Send, stream: str, key: str) -> Member:
        """Subscribes `owner` to a key; returns once the key's updates reach this hub."""
        await self.start()
        group = protocol.group_name(stream, key)
        joined = self._joined.get(group)
        if joined is None:
            joined = self._joined[group] = self.loop.create_future()
            self.groups[group] = {}
            self.keys[group] = (stream, key)
            try:
                if self.channel is None:
                    raise ConnectionError("no channel on the layer yet")
                await asyncio.wait_for(
                    self._add(group, protocol.control_group(stream)), JOIN_TIMEOUT_SECONDS
                )
            except asyncio.CancelledError as exc:
                del self._joined[group], self.groups[group], self.keys[group]
                joined.set_exception(exc)
                joined.exception()
                raise
            except Exception as exc:
                # The channel layer is down or stuck (Redis restarting, paused): the key is
                # served from the database meanwhile (the relay), and joined again until the
                # layer takes it. A subscribe never waits on Redis.
                logger.warning(
                    "streaming: joining %s failed (%r); relay only until it works", stream, exc
                )
                self._join_later(group)
            joined.set_result(None)
        await asyncio.shield(joined)
        members = self.groups[group]
        member = members.get(owner)
        if member is None:
            member = members[owner] = Member(send, outlet_of(owner, send))
            stats.add("subscribers", stream)
        member.ready = False
        return member

    async def ready(self, member: Member, version: int) -> None:
        """Called once the subscribe reply (at `version`) was sent: flushes what waited."""
        if member.left:
            return
        member.version = max(member.version, version)
        member.ready = True
        pending, member.pending = member.pending, None
        if pending is not None and pending["version"] > member.version:
            member.version = pending["version"]
            await member.send({"type": "websocket.send", "text": pending["text"]})

    async def leave(self, owner: object, stream: str, key: str) -> None:
        """Unsubscribes `owner`; the last one out drops the key's subscription."""
        group = protocol.group_name(stream, key)
        members = self.groups.get(group)
        member = members.pop(owner, None) if members is not None else None
        if member is None:
            return
        member.pending = None
        member.left = True
        stats.add("subscribers", stream, -1)
        if not members and group in self._joined:
            del self.groups[group], self.keys[group], self._joined[group]
            self._unjoined.discard(group)
            # Nothing reaches the key's sockets from here on; the layer is left in the
            # background, so a mass revocation does not wait one UNSUBSCRIBE per key.
            self._leave_later(group)

    async def fanout(self, message: dict[str, Any]) -> None:
        """Sends an update to every local socket of its key that has not seen it."""
        members = self.groups.get(message["group"])
        if not members:
            return
        version = message["version"]
        out = {"type": "websocket.send", "text": message["text"]}
        logger.debug(
            "streaming: fanout stream=%s key=%s version=%d sockets=%d",
            message["stream"],
            message["key"],
            version,
            len(members),
        )
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        frame = None
        skipped = set()
        # A copy of the keys alone: (owner, member) pairs would be 5,000 tuples per update at
        # N = 5,000, alive for the whole loop, so the GC promoted them to its oldest
        # generation and ran a 250-350 ms full collection every 3-5 s (docs/benchmarks.md).
        for owner in list(members):
            member = members.get(owner)
            if member is None:
                continue
            if version <= member.version:
                skipped.add(owner)
                continue
            wire = member.wire
            if not member.ready:
                self._hold(member, message)
                continue
            if wire is not None:
                if frame is None:
                    frame = wire.frame(message)
                if wire.offer(frame, limit):
                    member.version = version
                else:
                    self._hold(member, message)
                continue
            if member.left:
                # Left while an earlier send of this loop awaited.
                continue
            member.version = version
            try:
                await member.send(out)
            except Exception:
                stats.add("dropped", message["stream"])
                logger.debug("streaming: send to a closing socket failed", exc_info=True)
        if message["gone"]:
            # Nothing more will come for this key: forget it here too. A socket that skipped
            # this frame holds a snapshot read before it, tagged with the same version: the
            # delete that made it gone is sent again at a higher version, so it stays.
            for owner in list(members):
                if owner not in skipped:
                    await self.leave(owner, message["stream"], message["key"])

    def _hold(self, member: Member, message: dict[str, Any]) -> None:
        """Keeps `message` as the member's newest unsent update (latest-wins)."""
        if member.pending is not None:
            if message["version"] <= member.pending["version"]:
                return
            stats.add("conflated", message["stream"])
        member.pending = message
        if member.ready and member.wire is not None:
            self._stalled.setdefault(member.wire, set()).add(member)
            if getattr(member.wire, "watched", False):
                # Twisted tells us when it drains (Wire.resumeProducing calls drained()).
                return
            if self._drainer is None or self._drainer.done():
                self._drainer = self.loop.create_task(self._guard(self._drain()))

    def drained(self, wire: Outlet) -> None:
        """Called when a socket's send buffer drained: sends what it holds, newest per key."""
        held = self._stalled.get(wire)
        if held is None:
            return
        if not wire.open:
            del self._stalled[wire]
            return
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        while held and wire.backlog() <= limit:
            member = held.pop()
            pending, member.pending = member.pending, None
            if pending is not None and pending["version"] > member.version:
                member.version = pending["version"]
                wire.write(wire.frame(pending))
        if not held:
            del self._stalled[wire]

    async def _drain(self) -> None:
        """Polls stalled sockets Twisted does not report on (their producer slot was taken)."""
        while self._stalled:
            await asyncio.sleep(DRAIN_POLL_SECONDS)
            for wire in list(self._stalled):
                if not getattr(wire, "watched", False):
                    self.drained(wire)

    async def _receive(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
                kind = message.get("type")
                if kind == "stream.update":
                    await self.fanout(message)
                elif kind == "stream.refresh":
                    self.changed({message["stream"]: {AllKeys(message["prefix"]): ALWAYS}})
                elif kind == "stream.heartbeat" and self.heartbeat is not None:
                    recovery = self.heartbeat.received(message["seq"])
                    if recovery is not None:
                        self.loop.create_task(self._guard(recovery))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("streaming: hub receive failed")
                await asyncio.sleep(0.5)

    async def _guard(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except Exception:
            logger.exception("streaming: hub task failed")


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def _wire_drained(wire: Wire) -> None:
    hub = _hubs.get(asyncio.get_running_loop())
    if hub is not None:
        hub.drained(wire)


# Twisted calls a drained wire back in the reactor, which runs in the hub's event loop.
Wire.on_drain = _wire_drained


def get_hub() -> Hub:
    """Returns the running event loop's hub, creating it on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(loop)
        serve_locally(loop)
    return hub
