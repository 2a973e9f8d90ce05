"""
Flow control for sockets served through the ASGI send (uvicorn, hypercorn, test
communicators): what streaming.serve.daphne's Wire does for daphne's transports.

An ASGI server's send may wait for a slow client (uvicorn's waits for its write buffer to
drain). Awaited in the hub's fan-out loop, one such client would hold back every other
socket. An outlet queues each socket's updates and sends them in a task of its own, in
order; the queue holds at most one update per key (a newer one replaces it), so a client
that stops reading costs at most one frame per key it subscribed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger("streaming.serve.outlet")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Outlet(Protocol):
    """A socket the hub writes updates to with flow control: a daphne Wire or an AsgiOutlet."""

    @property
    def open(self) -> bool: ...

    def frame(self, message: dict[str, Any]) -> Any: ...

    def backlog(self) -> int: ...

    def offer(self, frame: Any, limit: int) -> bool: ...

    def write(self, frame: Any) -> None: ...


class AsgiOutlet:
    """One socket's ASGI send, used by the hub like a daphne Wire."""

    __slots__ = ("_queue", "_task", "closed", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.closed = False
        # Updates not sent yet, oldest first, at most one per key (the newest).
        self._queue: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        """Returns whether the socket still takes frames."""
        return not self.closed

    @staticmethod
    def frame(message: dict[str, Any]) -> tuple[str, str]:
        """Returns what this socket queues for an update: its key's group and its text."""
        return message["group"], message["text"]

    def backlog(self) -> int:
        """Returns how many updates wait (never more than the socket's keys)."""
        return len(self._queue)

    def offer(self, frame: tuple[str, str], limit: int) -> bool:
        """Queues an update, replacing a waiting one of the same key; always takes it."""
        self.write(frame)
        return True

    def write(self, frame: tuple[str, str]) -> None:
        """Queues an update and makes sure a task is sending the queue, in order."""
        if self.closed:
            return
        group, text = frame
        self._queue[group] = text
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._queue and not self.closed:
            group = next(iter(self._queue))
            text = self._queue.pop(group)
            try:
                await self.send({"type": "websocket.send", "text": text})
            except Exception:
                # A closing socket: nothing more goes to it.
                self.closed = True
                self._queue.clear()
                logger.debug("streaming: send to a closing socket failed", exc_info=True)


def outlet_of(owner: object, send: Send) -> Outlet | None:
    """
    Returns the socket's outlet: the daphne connection its consumer found at connect; under
    other servers one AsgiOutlet per socket, made on its first subscription; None for an
    in-process test communicator (no "server" in its scope), which the hub awaits inline.
    """
    wire: Outlet | None = getattr(owner, "wire", None)
    if wire is not None:
        return wire
    if "server" not in getattr(owner, "scope", {}):
        return None
    outlet: Outlet | None = getattr(owner, "outlet", None)
    if outlet is None:
        outlet = AsgiOutlet(send)
        # An owner that takes no attribute gets one outlet per subscription.
        with contextlib.suppress(AttributeError):
            owner.outlet = outlet  # type: ignore[attr-defined]
    return outlet
