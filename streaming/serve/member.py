"""One socket's subscription to one key, as the hub keeps it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streaming.serve.outlet import Outlet

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Member:
    """One socket's subscription to one key."""

    __slots__ = ("left", "pending", "ready", "send", "version", "wire")

    def __init__(self, send: Send, wire: Outlet | None = None) -> None:
        # The socket's own send, shared by its members: `left` keeps a left key silent.
        self.send = send
        self.wire = wire
        self.version = -1
        self.ready = False
        self.left = False
        # The newest update not sent yet: before the subscribe reply, or while stalled.
        self.pending: dict[str, Any] | None = None
