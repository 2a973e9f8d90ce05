"""
The process-local hub: one channel-layer subscription per key per process, however many
sockets watch that key, and one pre-encoded frame fanned out to all of them.

It also keeps what each socket has seen: versions only grow per socket, and a socket that
is still waiting for its subscribe reply gets the newest update right after that reply.
Under daphne, frames go straight to each socket's transport, and a socket that stops
reading gets the newest update per key once it drains (streaming/serve/daphne/, stalls.py).
Over channels-redis's pub/sub layer, updates arrive through deliver(), in the layer's own
receive task (streaming/publish/redis_pubsub.py's inbox); anything else through _receive().
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
from streaming.serve.stalls import Stalls

logger = logging.getLogger("streaming.serve.hub")


class Hub(Joins, Repairs, Stalls):
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
        # Members without an outlet, whose sends the fan-out awaits (see deliver()).
        self._awaited = 0

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
            if member.wire is None:
                self._awaited += 1
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
        self._drop(owner, stream, key)

    def _drop(self, owner: object, stream: str, key: str) -> None:
        group = protocol.group_name(stream, key)
        members = self.groups.get(group)
        member = members.pop(owner, None) if members is not None else None
        if member is None:
            return
        member.pending = None
        member.left = True
        if member.wire is None:
            self._awaited -= 1
        stats.add("subscribers", stream, -1)
        if not members and group in self._joined:
            del self.groups[group], self.keys[group], self._joined[group]
            self._unjoined.discard(group)
            # Nothing reaches the key's sockets from here on; the layer is left in the
            # background, so a mass revocation does not wait one UNSUBSCRIBE per key.
            self._leave_later(group)

    def deliver(self, message: dict[str, Any]) -> bool:
        """
        Fans an update out in the caller's turn (channels-redis's receive task, through
        streaming.publish.redis_pubsub's inbox); returns False to leave it to the receive loop.
        """
        if message.get("type") != "stream.update" or self._awaited:
            # Only a socket without an outlet (an in-process test communicator) is awaited:
            # with one subscribed, the receive loop keeps every fan-out in order.
            return False
        skipped = self._offer(message)[1]
        if message["gone"]:
            self._forget(message, skipped)
        return True

    async def fanout(self, message: dict[str, Any]) -> None:
        """Sends an update to every local socket of its key that has not seen it."""
        inline, skipped = self._offer(message)
        version = message["version"]
        out = {"type": "websocket.send", "text": message["text"]}
        for member in inline:
            if member.left or version <= member.version:
                # Left, or sent something newer, while an earlier send of this loop awaited.
                continue
            member.version = version
            try:
                await member.send(out)
            except Exception:
                stats.add("dropped", message["stream"])
                logger.debug("streaming: send to a closing socket failed", exc_info=True)
        if message["gone"]:
            self._forget(message, skipped)

    def _offer(self, message: dict[str, Any]) -> tuple[list[Member], set[object]]:
        """
        Writes an update to its key's outlets, holding it for the sockets not ready or full;
        returns the members to await a send for (no outlet) and the owners that had it already.
        """
        members = self.groups.get(message["group"])
        inline: list[Member] = []
        skipped: set[object] = set()
        if not members:
            return inline, skipped
        version = message["version"]
        logger.debug(
            "streaming: fanout stream=%s key=%s version=%d sockets=%d",
            message["stream"],
            message["key"],
            version,
            len(members),
        )
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        frame = None
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
            if wire is None:
                inline.append(member)
                continue
            if frame is None:
                frame = wire.frame(message)
            if wire.offer(frame, limit):
                member.version = version
            else:
                self._hold(member, message)
        return inline, skipped

    def _forget(self, message: dict[str, Any], skipped: set[object]) -> None:
        """
        Drops a gone key's subscriptions: nothing more will come for it. A socket that skipped
        its frame holds a snapshot read before it, tagged with the same version: the delete
        that made it gone is sent again at a higher version, so it stays.
        """
        members = self.groups.get(message["group"])
        for owner in list(members or ()):
            if owner not in skipped:
                self._drop(owner, message["stream"], message["key"])

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
