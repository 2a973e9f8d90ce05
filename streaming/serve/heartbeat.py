"""
The hub's heartbeat: a message it sends itself through the channel layer every
STREAMING["HEARTBEAT_SECONDS"]. One that fails or does not come back means messages may
have been lost (Redis restarted, a subscription dropped): once beats return, the hub
re-joins its groups and re-sends every subscribed key with a fresh version.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streaming.conf import streaming_settings

logger = logging.getLogger("streaming.serve.hub")


class Heartbeat:
    """Round trips through the layer on `channel`; calls `recover` after a loss."""

    def __init__(self, layer: Any, channel: str, recover: Callable[[], Awaitable[None]]) -> None:
        self.layer = layer
        self.channel = channel
        self.recover = recover
        digest = hashlib.blake2b(channel.encode(), digest_size=8).hexdigest()
        self.group = f"streaming.hb.{digest}"
        self.last_beat = 0.0
        self._sent: dict[int, float] = {}
        self._lost_at: int | None = None

    async def run(self) -> None:
        """Sends a beat every interval; a beat unanswered within the timeout is a loss."""
        interval = streaming_settings.HEARTBEAT_SECONDS
        timeout = max(4 * interval, 2.0)
        while True:
            try:
                await self.layer.group_add(self.group, self.channel)
                break
            except Exception:
                await asyncio.sleep(interval)
        seq = 0
        while True:
            await asyncio.sleep(interval)
            seq += 1
            now = time.monotonic()
            # Recorded before sending: the echo may arrive before group_send returns.
            self._sent[seq] = now
            try:
                beat = {"type": "stream.heartbeat", "seq": seq}
                await asyncio.wait_for(self.layer.group_send(self.group, beat), timeout)
            except Exception:
                self._lost(seq)
            if any(now - sent > timeout for sent in self._sent.values()):
                self._sent.clear()
                self._lost(seq)

    def received(self, seq: int) -> Awaitable[None] | None:
        """Called with each beat that came back; returns the recovery to run, if one is due."""
        self._sent.pop(seq, None)
        self.last_beat = time.monotonic()
        if self._lost_at is None or seq <= self._lost_at:
            return None
        self._lost_at = None
        logger.warning("streaming: channel layer is back; resyncing")
        return self.recover()

    def _lost(self, seq: int) -> None:
        if self._lost_at is None:
            logger.warning("streaming: channel layer lost messages; resync once it is back")
            self._lost_at = seq
