"""
The hub's channel-layer memberships: its key groups and control groups, joined at
subscribe, joined again in the background while the layer refuses them, and after the
heartbeat saw the layer lose messages. A subscribe never waits on Redis for long: meanwhile
the database relay serves its key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streaming import protocol
from streaming.publish.redis_pubsub import attach_inbox
from streaming.serve.heartbeat import Heartbeat
from streaming.serve.repair import ALWAYS

logger = logging.getLogger("streaming.serve.joins")

# How long a subscribe waits for the channel layer to take its group before going on
# without it (the database relay serves the key meanwhile).
JOIN_TIMEOUT_SECONDS = 2.0


class Joins:
    """Mixed into streaming.serve.hub.Hub: what the hub has joined on the channel layer."""

    loop: asyncio.AbstractEventLoop
    layer: Any
    channel: str | None
    groups: dict[str, dict[object, Any]]
    keys: dict[str, tuple[str, str]]
    _controls: set[str]
    _joined: dict[str, asyncio.Future[None]]
    _unjoined: set[str]
    _joiner: asyncio.Task[None] | None
    _leaving: dict[str, None]
    _leaver: asyncio.Task[None] | None
    _tasks: list[asyncio.Task[None]]
    heartbeat: Heartbeat | None

    if TYPE_CHECKING:
        # Provided by the hub and its other mixin (streaming.serve.repair.Repairs).
        def _mark(self, group: str, version: int) -> None: ...

        def resync(self) -> None: ...

        def deliver(self, message: dict[str, Any]) -> bool: ...

        async def _guard(self, coro: Awaitable[None]) -> None: ...

        async def _receive(self) -> None: ...

    def _join_later(self, group: str) -> None:
        """Keeps trying to join `group` on the layer, with backoff, while it is subscribed."""
        self._unjoined.add(group)
        if self._joiner is None or self._joiner.done():
            self._joiner = self.loop.create_task(self._guard(self._rejoin_unjoined()))

    async def _rejoin_unjoined(self) -> None:
        delay = 0.5
        while self._unjoined:
            await asyncio.sleep(delay)
            if self.channel is None:
                continue
            for group in list(self._unjoined):
                if group not in self.keys:
                    self._unjoined.discard(group)
                    continue
                stream = self.keys[group][0]
                try:
                    await asyncio.wait_for(
                        self._add(group, protocol.control_group(stream)), JOIN_TIMEOUT_SECONDS
                    )
                except Exception:
                    break
                self._unjoined.discard(group)
                # Anything the layer carried before the join is read from the database.
                self._mark(group, ALWAYS)
            delay = min(delay * 2, 10.0)

    def _leave_later(self, group: str) -> None:
        """Leaves `group` on the layer in the background, one group at a time."""
        self._leaving[group] = None
        if self._leaver is None or self._leaver.done():
            self._leaver = self.loop.create_task(self._guard(self._discard_left()))

    async def _discard_left(self) -> None:
        # One at a time: a subscribe's join waits behind one discard at most, not behind
        # thousands queued on the layer's lock.
        while self._leaving:
            group = next(iter(self._leaving))
            del self._leaving[group]
            if group in self._joined or self.channel is None:
                # Subscribed again meanwhile (the layer keeps it), or nothing was joined.
                continue
            try:
                await asyncio.wait_for(
                    self.layer.group_discard(group, self.channel), JOIN_TIMEOUT_SECONDS
                )
            except Exception:
                # A layer that is down: the group is left when it comes back (the pub/sub
                # layer re-subscribes what it holds; one stray group costs a no-op).
                logger.debug("streaming: leaving %s failed", group, exc_info=True)

    async def _add(self, group: str, control: str) -> None:
        assert self.channel is not None
        await self.layer.group_add(group, self.channel)
        if control not in self._controls:
            await self.layer.group_add(control, self.channel)
            self._controls.add(control)

    async def _rejoin_and_resync(self) -> None:
        # Group memberships may be gone with the old Redis (core layer): add them again.
        assert self.channel is not None
        for group in list(self.groups):
            await self.layer.group_add(group, self.channel)
        for control in self._controls:
            await self.layer.group_add(control, self.channel)
        self.resync()

    async def _connect(self) -> None:
        """Creates the hub's channel, then its receive and heartbeat tasks."""
        channel = await asyncio.wait_for(
            self.layer.new_channel("streaming.hub."), JOIN_TIMEOUT_SECONDS
        )
        # Before the receive loop starts: from here on, updates reach deliver() first.
        attach_inbox(self.layer, channel, self.deliver)
        self.channel = channel
        self.heartbeat = Heartbeat(self.layer, channel, self._rejoin_and_resync)
        self._tasks += [
            self.loop.create_task(self._receive()),
            self.loop.create_task(self.heartbeat.run()),
        ]

    async def _connect_later(self) -> None:
        delay = 0.5
        while self.channel is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            try:
                await self._connect()
            except Exception:
                continue
        for group in list(self.keys):
            self._join_later(group)
