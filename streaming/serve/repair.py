"""
The hub's repairs: keys to re-read from the database and send again, because the relay saw
them change, a refresh asked for them, or the channel layer may have lost messages. Repair
is level-triggered: a key stays marked until a re-read succeeds, retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.ops.stats import stats
from streaming.publish import snapshot
from streaming.publish.publisher import publisher
from streaming.registry import AllKeys, StreamNotFound, get_stream
from streaming.serve.relay import Changes

logger = logging.getLogger("streaming.serve.hub")

# A mark that always re-reads: no socket can hold a version this high.
ALWAYS = 2**63
# A key whose re-read failed is tried again after this, doubling up to the maximum.
REPAIR_BACKOFF_SECONDS = 0.5
REPAIR_BACKOFF_MAX_SECONDS = 30.0
# How soon a relayed key this process's publisher was about to send is looked at again.
_HELD_RECHECK_SECONDS = 0.02


def grace_left(version: int, grace: float | None = None) -> float:
    """
    Returns what is left of `grace` (RELAY_GRACE_SECONDS) since `version` was stamped: at
    its commit, or (PostgreSQL) by the first reader after it. A version is that time in
    microseconds unless the clock ran ahead (docs/protocol.md): never longer than all of it.
    """
    if grace is None:
        grace = streaming_settings.RELAY_GRACE_SECONDS
    return min(grace, max(0.0, version / 1_000_000 + grace - time.time()))


class Repairs:
    """The hub's marked keys and their re-reads (mixed into streaming.serve.hub.Hub)."""

    loop: asyncio.AbstractEventLoop
    layer: Any
    groups: dict[str, dict[object, Any]]
    keys: dict[str, tuple[str, str]]
    _dirty: dict[str, int]
    _failures: dict[str, int]
    _repairer: asyncio.Task[None] | None

    if TYPE_CHECKING:
        # Provided by streaming.serve.hub.Hub.
        async def fanout(self, message: dict[str, Any]) -> None: ...

        async def _guard(self, coro: Awaitable[None]) -> None: ...

    def relayed(self, changes: Changes) -> None:
        """
        Called by the relay with keys the change log names. Writers' own broadcasts usually
        bring them first (the fast path), so they are looked at after a grace period: over a
        shared layer, any process's, counted from the commit; in one process, a moment
        (PostgreSQL's NOTIFY can come before the writer's on_commit hands the key to its
        publisher), then as long as this process's publisher holds them.
        """
        newest = max((v for keys in changes.values() for v in keys.values()), default=0)
        if isinstance(self.layer, InMemoryChannelLayer):
            # Counted from the commit too: a write from another process (which this process's
            # publisher never holds) is re-read as soon as the poll has seen it.
            wait = grace_left(newest, _HELD_RECHECK_SECONDS)
            self.loop.call_later(wait, self._unless_held, changes)
            return
        self.loop.call_later(grace_left(newest), self.changed, changes)

    def _unless_held(self, changes: Changes) -> None:
        held: Changes = {}
        for stream, keys in changes.items():
            for key in keys:
                if isinstance(key, str) and publisher.holds(stream, key):
                    held.setdefault(stream, {})[key] = keys[key]
        if held:
            self.loop.call_later(_HELD_RECHECK_SECONDS, self._unless_held, held)
            changes = {
                s: {k: v for k, v in keys.items() if k not in held.get(s, ())}
                for s, keys in changes.items()
            }
        self.changed(changes)

    def changed(self, changes: Changes) -> None:
        """
        Called with keys that changed (by the relay, or a refresh): marks the ones served here
        for a re-read. Each carries the version of its change; a key whose every socket has
        been sent that version or a later one (by the channel layer) needs nothing.
        """
        for stream, keys in changes.items():
            for key, version in keys.items():
                if isinstance(key, AllKeys):
                    for group, (s, k) in self.keys.items():
                        if s == stream and k.startswith(key.prefix):
                            self._mark(group, version)
                else:
                    self._mark(protocol.group_name(stream, key), version)

    def _mark(self, group: str, version: int) -> None:
        if group not in self.keys:
            return
        self._dirty[group] = max(self._dirty.get(group, 0), version)
        if self._repairer is None or self._repairer.done():
            self._repairer = self.loop.create_task(self._guard(self._repair()))

    async def refresh(self, stream: str, prefix: str = "") -> None:
        """Re-reads and re-sends this hub's subscribed keys of `stream` under `prefix`."""
        self.changed({stream: {AllKeys(prefix): ALWAYS}})

    def resync(self) -> None:
        """Re-reads and re-sends every subscribed key: messages may have been lost."""
        for group in self.keys:
            self._mark(group, ALWAYS)

    async def _repair(self) -> None:
        """Re-reads marked keys, a stream at a time in one snapshot, until none is left."""
        while self._dirty:
            # Let a burst of marks gather into one read.
            await asyncio.sleep(0)
            batch, self._dirty = self._dirty, {}
            by_stream: dict[str, list[tuple[str, str, int]]] = {}
            for group, needed in batch.items():
                members = self.groups.get(group)
                if members and any(m.version < needed for m in members.values()):
                    stream, key = self.keys[group]
                    by_stream.setdefault(stream, []).append((group, key, needed))
            for stream, wanted in by_stream.items():
                await self._reread(stream, wanted)

    async def _reread(self, stream: str, wanted: list[tuple[str, str, int]]) -> None:
        try:
            source = get_stream(stream)
        except StreamNotFound:
            return
        keys = [key for _, key, _ in wanted]
        try:
            # Off the shared database thread: a resync of every key after a layer outage must
            # not hold back subscribes, the permission re-checks or the site's sync views.
            read = database_sync_to_async(snapshot.read_each, thread_sensitive=False)
            version, results = await read(source.payload, keys, None)
        except Exception:
            logger.exception("streaming: re-reading %d key(s) of %s failed", len(keys), stream)
            results = dict.fromkeys(keys)
            version, failed = 0, set(keys)
        else:
            failed = {key for key, value in results.items() if isinstance(value, Exception)}
        for group, key, needed in wanted:
            if key in failed:
                self._retry_later(group, needed)
                stats.add("repair_failures", stream)
                continue
            payload = results[key]
            assert not isinstance(payload, Exception)
            try:
                message = protocol.update_message(stream, key, version, payload)
            except Exception:
                # A payload JSON refuses (say inf) fails like a read: counted, backed off.
                logger.exception("streaming: cannot encode %s key %r", stream, key)
                self._retry_later(group, needed)
                stats.add("repair_failures", stream)
                continue
            self._failures.pop(group, None)
            await self.fanout(message)

    def _retry_later(self, group: str, needed: int) -> None:
        """Marks `group` again after a growing delay: repair is level-triggered."""
        count = self._failures[group] = self._failures.get(group, 0) + 1
        delay = min(REPAIR_BACKOFF_SECONDS * 2 ** (count - 1), REPAIR_BACKOFF_MAX_SECONDS)
        self.loop.call_later(delay, self._mark, group, needed)
