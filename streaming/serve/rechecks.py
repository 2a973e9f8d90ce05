"""
Permission re-checks, batched: every STREAMING["RECHECK_SECONDS"], one pass per process
over every connection with subscriptions, in one thread hop. Each session is re-read once
and each (user, key) permission runs once per pass, however many sockets share them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from channels.db import database_sync_to_async

from streaming.conf import streaming_settings
from streaming.serve import access

logger = logging.getLogger("streaming.serve.rechecks")


class Rechecker:
    """Re-checks the subscriptions of one event loop's connections, periodically."""

    def __init__(self) -> None:
        self.consumers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None

    def watch(self, consumer: Any) -> None:
        """Adds a connection to the passes; starts them on first use."""
        self.consumers.add(consumer)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, consumer: Any) -> None:
        """Removes a connection (it closed)."""
        self.consumers.discard(consumer)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(streaming_settings.RECHECK_SECONDS)
            try:
                await self.check(list(self.consumers))
            except Exception:
                # The database may be down: keep the subscriptions, try again next pass.
                logger.exception("streaming: permission re-check failed; retrying")

    async def check(self, consumers: list[Any]) -> None:
        """Re-checks `consumers` now; each one told `revoked` for every key it lost."""
        for consumer in consumers:
            consumer.forget_gone()
        consumers = [c for c in consumers if c.subscriptions]
        if not consumers:
            return
        work = [(c.scope, list(c.subscriptions)) for c in consumers]
        results = await database_sync_to_async(access.recheck_many)(work)
        for consumer, (user, lost) in zip(consumers, results, strict=True):
            await consumer.revoke(user, lost)


_recheckers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Rechecker] = (
    weakref.WeakKeyDictionary()
)


def get_rechecker() -> Rechecker:
    """Returns the running event loop's re-checker, creating it on first use."""
    loop = asyncio.get_running_loop()
    rechecker = _recheckers.get(loop)
    if rechecker is None:
        rechecker = _recheckers[loop] = Rechecker()
    return rechecker
