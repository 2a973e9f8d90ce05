"""
The application-level keepalive: a small `heartbeat` frame to every open socket every
STREAMING["KEEPALIVE_SECONDS"], so a client can tell a quiet connection from a dead one
(docs/protocol.md, "Heartbeat"). One loop per event loop writes one pre-encoded frame to
every socket it serves: no task, timer or encoding per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.serve.daphne import Wire, frame_of
from streaming.serve.loops import per_loop

logger = logging.getLogger("streaming.serve.keepalive")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Sockets written between two yields to the event loop: a beat of many thousand sockets
# must not hold back the updates waiting behind it.
BATCH = 1000
# Each interval's beat is spread over this many turns, a slice of the sockets each: 5,000
# sockets written at once held the event loop as long as an update to all of them did.
SLICES = 10


def heartbeat_text(interval: float) -> str:
    """Returns the heartbeat frame's JSON text, announcing the interval in seconds."""
    return protocol.encode({"action": "heartbeat", "interval": interval})


class Keepalive:
    """The open sockets of one event loop, and the one task that beats them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Each socket's daphne connection, or its ASGI send under other servers, in the
        # slice it was added to (in turn): a socket stays in its slice, so it gets one
        # heartbeat an interval however many others come and go.
        self.slices: list[dict[object, Wire | Send]] = [{} for _ in range(SLICES)]
        self._added = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> dict[object, Wire | Send]:
        """Returns every socket beaten, whatever its slice."""
        return {owner: target for part in self.slices for owner, target in part.items()}

    def add(self, owner: object, send: Send, wire: Wire | None) -> None:
        """Starts beating `owner`'s socket; does nothing while the keepalive is off (0)."""
        if streaming_settings.KEEPALIVE_SECONDS <= 0:
            return
        self.slices[self._added % SLICES][owner] = wire if wire is not None else send
        self._added += 1
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())

    def discard(self, owner: object) -> None:
        """Stops beating `owner`'s socket (it closed)."""
        for part in self.slices:
            if part.pop(owner, None) is not None:
                return

    async def _run(self) -> None:
        # Ends once no socket is left (or the setting turned it off); add() starts it again.
        while any(self.slices):
            interval = streaming_settings.KEEPALIVE_SECONDS
            if interval <= 0:
                return
            for part in self.slices:
                await asyncio.sleep(interval / SLICES)
                try:
                    await self.beat(interval, list(part.values()))
                except Exception:
                    logger.exception("streaming: keepalive beat failed")

    async def beat(self, interval: float, targets: list[Wire | Send]) -> None:
        """Sends the heartbeat frame once to each of `targets`."""
        text = heartbeat_text(interval)
        # frame_of frames it once (autobahn, loaded by daphne only) for every daphne socket.
        framed: dict[str, Any] = {"text": text}
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        others: list[Send] = []
        for count, target in enumerate(targets, 1):
            if not isinstance(target, Wire):
                others.append(target)
                continue
            if count % BATCH == 0:
                await asyncio.sleep(0)
            # A socket over its buffer limit is not reading: a heartbeat queued behind its
            # backlog would prove nothing, so it gets none (offer() declines).
            target.offer(frame_of(framed), limit)
        message = {"type": "websocket.send", "text": text}
        for send in others:
            try:
                await send(message)
            except Exception:
                logger.debug("streaming: heartbeat to a closing socket failed", exc_info=True)


# Returns the running event loop's keepalive, creating it on first use.
get_keepalive = per_loop(Keepalive)
