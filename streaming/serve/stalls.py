"""
The hub's full sockets: an update a socket cannot take now (its send buffer is over the
limit, or its subscribe reply is not out yet) is held, newest per key, and sent once the
socket drains: a client that stops reading costs one frame per key, never a growing queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streaming.conf import streaming_settings
from streaming.ops.stats import stats
from streaming.serve.member import Member
from streaming.serve.outlet import Outlet

# Seconds between looks at full sockets whose drain Twisted cannot report (see drained()).
DRAIN_POLL_SECONDS = 0.05


class Stalls:
    """Mixed into streaming.serve.hub.Hub: the updates held for sockets that cannot take them."""

    loop: asyncio.AbstractEventLoop
    # Sockets over their send-buffer limit, with the members holding an update for them.
    _stalled: dict[Outlet, set[Member]]
    _drainer: asyncio.Task[None] | None

    if TYPE_CHECKING:
        # Provided by streaming.serve.hub.Hub.
        async def _guard(self, coro: Awaitable[None]) -> None: ...

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
