"""
The application-level keepalive: a small `heartbeat` frame to every open socket every
STREAMING["KEEPALIVE_SECONDS"], so a client can tell a quiet connection from a dead one
(docs/protocol.md, "Heartbeat"). One loop per event loop writes one pre-encoded frame to
every socket it serves: no task, timer or encoding per socket.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.serve.daphne import Wire, frame_of

logger = logging.getLogger("streaming.serve.keepalive")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# Sockets written between two yields to the event loop: a beat of many thousand sockets
# must not hold back the updates waiting behind it.
BATCH = 1000


def heartbeat_text(interval: float) -> str:
    """Returns the heartbeat frame's JSON text, announcing the interval in seconds."""
    return protocol.encode({"action": "heartbeat", "interval": interval})


class Keepalive:
    """The open sockets of one event loop, and the one task that beats them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Each socket's daphne connection, or its ASGI send under other servers.
        self.sockets: dict[object, Wire | Send] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, owner: object, send: Send, wire: Wire | None) -> None:
        """Starts beating `owner`'s socket; does nothing while the keepalive is off (0)."""
        if streaming_settings.KEEPALIVE_SECONDS <= 0:
            return
        self.sockets[owner] = wire if wire is not None else send
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())

    def discard(self, owner: object) -> None:
        """Stops beating `owner`'s socket (it closed)."""
        self.sockets.pop(owner, None)

    async def _run(self) -> None:
        # Ends once no socket is left (or the setting turned it off); add() starts it again.
        while self.sockets:
            interval = streaming_settings.KEEPALIVE_SECONDS
            if interval <= 0:
                return
            await asyncio.sleep(interval)
            try:
                await self.beat(interval)
            except Exception:
                logger.exception("streaming: keepalive beat failed")

    async def beat(self, interval: float) -> None:
        """Sends the heartbeat frame once to every socket."""
        text = heartbeat_text(interval)
        # frame_of frames it once (autobahn, loaded by daphne only) for every daphne socket.
        framed: dict[str, Any] = {"text": text}
        limit = streaming_settings.SOCKET_BUFFER_BYTES
        others: list[Send] = []
        for count, target in enumerate(list(self.sockets.values()), 1):
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


_keepalives: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Keepalive] = (
    weakref.WeakKeyDictionary()
)


def get_keepalive() -> Keepalive:
    """Returns the running event loop's keepalive, creating it on first use."""
    loop = asyncio.get_running_loop()
    keepalive = _keepalives.get(loop)
    if keepalive is None:
        keepalive = _keepalives[loop] = Keepalive(loop)
    return keepalive
