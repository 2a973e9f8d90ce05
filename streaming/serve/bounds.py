"""
What one socket may cost its server beyond its messages (docs/security.md): the unsent
bytes of its replies and pongs (past STREAMING["MAX_UNSENT_BYTES"] it is closed, 4008),
its pings (each takes a message token), and its keys once its consumer ends, however it ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streaming.conf import streaming_settings
from streaming.serve.daphne import Wire, police
from streaming.serve.hub import Hub, Member
from streaming.serve.keepalive import get_keepalive
from streaming.serve.limits import CLOSE_NOT_READING, CLOSE_RATE_LIMITED, FloodGuard
from streaming.serve.rechecks import get_rechecker

logger = logging.getLogger("streaming.serve.consumer")

# Leaves of consumers that ended without awaiting them (cancelled): kept until done.
_releases: set[asyncio.Task[None]] = set()


class BoundedSocket:
    """A consumer mixin: bounds a daphne socket's unsent bytes and pings, releases its keys."""

    hub: Hub
    subscriptions: dict[tuple[str, str], Member]
    flood: FloodGuard
    closing: bool
    wire: Wire | None

    def bound(self, wire: Wire | None) -> None:
        """Called at connect: polices the socket's pings and keepalive (daphne only)."""
        self.wire = wire
        if wire is not None:
            police(wire, self.admit_ping)

    async def send_json(self, content: Any, close: bool = False) -> None:
        """
        Sends a reply or push, unless the socket holds over MAX_UNSENT_BYTES unsent
        (its client stopped reading): it is closed with 4008 instead.
        """
        if self.closing or self.unread():
            return
        await super().send_json(content, close=close)  # type: ignore[misc]

    def unread(self) -> bool:
        """Closes the socket (4008) if its unsent bytes exceed MAX_UNSENT_BYTES; says so."""
        wire = self.wire
        if wire is None or wire.backlog() <= streaming_settings.MAX_UNSENT_BYTES:
            return False
        self.closing = True
        wire.protocol.sendClose(code=CLOSE_NOT_READING)
        return True

    def admit_ping(self) -> bool:
        """
        Called by daphne's protocol for each ping: returns whether to answer it. A ping
        takes a token like a message; flooding (4029) or not reading (4008) closes.
        """
        if self.closing or self.wire is None:
            return False
        verdict = self.flood.check()
        if verdict == FloodGuard.CLOSE:
            self.closing = True
            self.wire.protocol.sendClose(code=CLOSE_RATE_LIMITED)
            return False
        return verdict == FloodGuard.ALLOW and not self.unread()

    def release(self) -> None:
        """
        Called as the consumer ends, also when daphne cancels it (--application-close-timeout
        after a disconnect, before websocket_disconnect ran): leaves the keys it still holds
        in a task of their own, which no cancellation of the consumer stops.
        """
        get_rechecker().forget(self)
        get_keepalive().discard(self)
        wire = getattr(self, "wire", None)
        if wire is not None:
            police(wire, None)
        held = list(getattr(self, "subscriptions", {}))
        if not held:
            return
        self.subscriptions.clear()
        task = asyncio.get_running_loop().create_task(self._leave_all(held))
        _releases.add(task)
        task.add_done_callback(_releases.discard)

    async def _leave_all(self, held: list[tuple[str, str]]) -> None:
        for stream, key in held:
            try:
                await self.hub.leave(self, stream, key)
            except Exception:
                logger.warning("streaming: leaving %s %r failed", stream, key, exc_info=True)
