"""
Permission re-checks, batched: every STREAMING["RECHECK_SECONDS"], one pass per process
over every connection with subscriptions. Each session is re-read once and each distinct
(user, key) checked once per pass, however many sockets share them; a stream is asked about
many keys at once (Stream.permissions). The database thread is shared with the views and
the subscribes, so a pass takes it in bounded hops: at most SESSIONS_PER_HOP sessions or
KEYS_PER_HOP keys each, letting other work in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from channels.db import database_sync_to_async

from streaming.conf import streaming_settings
from streaming.serve import access
from streaming.serve.loops import per_loop

logger = logging.getLogger("streaming.serve.rechecks")

SESSIONS_PER_HOP = 200
KEYS_PER_HOP = 2000
# `revoked` frames sent before the event loop runs other work.
REVOKED_PER_TURN = 100

# (who the user is, stream name): what permissions are asked and answered for.
Ident = tuple[Any, str]


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
        held = [(c, list(c.subscriptions)) for c in consumers if c.subscriptions]
        if not held:
            return
        started = time.monotonic()
        sessions: dict[str, Any] = {}
        users: list[Any] = []
        for start in range(0, len(held), SESSIONS_PER_HOP):
            scopes = [c.scope for c, _ in held[start : start + SESSIONS_PER_HOP]]
            users += await database_sync_to_async(access.current_users)(scopes, sessions)
        # Permissions depend on who the user is, not on which socket asks.
        wanted: dict[Ident, tuple[Any, set[str]]] = {}
        for (_, subscriptions), user in zip(held, users, strict=True):
            for stream, key in subscriptions:
                wanted.setdefault((access.who(user), stream), (user, set()))[1].add(key)
        allowed: dict[Ident, set[str]] = {}
        for hop in _hops(wanted):
            work = [(user, ident[1], keys) for ident, user, keys in hop]
            results = await database_sync_to_async(access.allowed_keys)(work)
            for (ident, _, _), keys in zip(hop, results, strict=True):
                allowed.setdefault(ident, set()).update(keys)
        asked = time.monotonic()
        revoking: list[Any] = []
        count = in_turn = 0
        for (consumer, subscriptions), user in zip(held, users, strict=True):
            ident = access.who(user)
            lost = [(s, k) for s, k in subscriptions if k not in allowed.get((ident, s), ())]
            if not lost:
                # Who the socket is now, as revoke() records it; a task for each of 5,000
                # sockets that lost nothing held the event loop for ~0.1 s every pass.
                consumer.scope["user"] = user
                continue
            count += len(lost)
            in_turn += len(lost)
            revoking.append(consumer.revoke(user, lost))
            if in_turn >= REVOKED_PER_TURN:
                await _revoke_together(revoking)
                revoking, in_turn = [], 0
        await _revoke_together(revoking)
        if count:
            logger.info(
                "streaming: re-check revoked %d of %d key(s); asked in %.3f s, revoked in %.3f s",
                count,
                sum(len(subscriptions) for _, subscriptions in held),
                asked - started,
                time.monotonic() - asked,
            )


async def _revoke_together(revoking: list[Any]) -> None:
    # A turn's connections together, so one does not wait for every other's sends; then the
    # event loop's other work (views, subscribes, the hub) before the next turn, as sends
    # that never suspend would otherwise hold it for a whole mass revocation.
    await asyncio.gather(*revoking)
    await asyncio.sleep(0)


def _hops(wanted: dict[Ident, tuple[Any, set[str]]]) -> list[list[tuple[Ident, Any, list[str]]]]:
    """Returns the permission questions in hops of at most KEYS_PER_HOP keys each."""
    hops: list[list[tuple[Ident, Any, list[str]]]] = [[]]
    room = KEYS_PER_HOP
    for ident, (user, keys) in wanted.items():
        ordered = sorted(keys)
        while ordered:
            if room == 0:
                hops.append([])
                room = KEYS_PER_HOP
            part, ordered = ordered[:room], ordered[room:]
            hops[-1].append((ident, user, part))
            room -= len(part)
    return hops


# Returns the running event loop's re-checker, creating it on first use.
get_rechecker = per_loop(lambda loop: Rechecker())
