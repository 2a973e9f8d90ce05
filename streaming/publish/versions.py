"""
Per-key version counters shared by every process.

A sender takes the next version *after* its transaction committed and *before* it reads
the payload, so the highest version was read after every earlier commit (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from redis import asyncio as aioredis
from redis import sentinel as sync_sentinel
from redis.asyncio.sentinel import Sentinel

# A counter that is missing (first use, or Redis restarted empty) starts from Redis's
# clock in microseconds: always above any value handed out before, since no key is
# broadcast more than once per microsecond.
_NEXT = """
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then redis.call('SET', key, floor) end
  out[i] = redis.call('INCR', key)
  redis.call('PEXPIRE', key, ARGV[1])
end
return out
"""
_TTL_MS = 30 * 24 * 3600 * 1000
PREFIX = "streaming:version:"
# A sender thread blocks on its round trip: a hung Redis fails it (and it retries) instead.
_BLOCKING_TIMEOUT = 5.0


def _name(stream: str, key: str) -> str:
    return f"{PREFIX}{stream}:{key}"


class RedisVersionStore:
    """Versions kept in Redis, one INCR per broadcast; survives Redis restarts (see _NEXT)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._blocking: redis.Redis | None = None
        self._lock = threading.Lock()

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._connect()
        return client

    def _connect(self) -> aioredis.Redis:
        """Returns a new client for the running event loop."""
        # Blocking pool: a burst of subscribes waits for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(self.url, max_connections=50, timeout=10)
        return aioredis.Redis(connection_pool=pool)

    def _connect_blocking(self) -> redis.Redis:
        """Returns a new thread-safe blocking client."""
        return redis.Redis.from_url(
            self.url, socket_timeout=_BLOCKING_TIMEOUT, socket_connect_timeout=_BLOCKING_TIMEOUT
        )

    async def next(self, stream: str, keys: Sequence[str]) -> list[int]:
        """Returns the next version of each key, in one round trip."""
        if not keys:
            return []
        names = [_name(stream, key) for key in keys]
        return [int(v) for v in await self._client().eval(_NEXT, len(names), *names, _TTL_MS)]

    def next_blocking(self, stream: str, keys: Sequence[str]) -> list[int]:
        """
        Returns what next() does, blocking: for the publisher's thread, whose every update
        waits on this round trip (an event loop's turn around it cost ~0.1 ms more).
        """
        if not keys:
            return []
        with self._lock:
            if self._blocking is None:
                self._blocking = self._connect_blocking()
        names = [_name(stream, key) for key in keys]
        return [int(v) for v in self._blocking.eval(_NEXT, len(names), *names, _TTL_MS)]

    async def current(self, stream: str, key: str) -> int:
        """Returns the key's latest version handed out, or 0 if none is known."""
        value = await self._client().get(_name(stream, key))
        return int(value) if value is not None else 0


class SentinelVersionStore(RedisVersionStore):
    """Versions kept in the master that Redis Sentinel names; follows failovers."""

    def __init__(
        self,
        sentinels: Sequence[tuple[str, int]],
        master_name: str,
        db: int = 0,
        sentinel_kwargs: dict[str, Any] | None = None,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(url=f"sentinel://{master_name}/{db}")
        self.sentinels = [(host, int(port)) for host, port in sentinels]
        self.master_name = master_name
        self.db = db
        self.sentinel_kwargs = sentinel_kwargs or {}
        self.connection_kwargs = connection_kwargs

    def _connect(self) -> aioredis.Redis:
        """Returns a client of the current master, re-resolved by Sentinel on failover."""
        sentinel = Sentinel(
            self.sentinels, sentinel_kwargs=self.sentinel_kwargs, **self.connection_kwargs
        )
        return sentinel.master_for(self.master_name, db=self.db)

    def _connect_blocking(self) -> redis.Redis:
        """Returns a blocking client of the current master, re-resolved on failover."""
        options = {"socket_timeout": _BLOCKING_TIMEOUT, **self.connection_kwargs}
        sentinel = sync_sentinel.Sentinel(
            self.sentinels, sentinel_kwargs=self.sentinel_kwargs, **options
        )
        return sentinel.master_for(self.master_name, db=self.db)


class LocalVersionStore:
    """Versions kept in this process: right for the in-memory channel layer only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._floor = itertools.count(time.time_ns() // 1000)

    async def next(self, stream: str, keys: Sequence[str]) -> list[int]:
        """Returns the next version of each key."""
        return self.next_blocking(stream, keys)

    def next_blocking(self, stream: str, keys: Sequence[str]) -> list[int]:
        """Returns the next version of each key (never blocks for long: a lock, no I/O)."""
        with self._lock:
            out = []
            for key in keys:
                name = _name(stream, key)
                value = self._counters.get(name) or next(self._floor)
                self._counters[name] = value + 1
                out.append(value + 1)
            return out

    async def current(self, stream: str, key: str) -> int:
        """Returns the key's latest version handed out, or 0 if none is known."""
        with self._lock:
            return self._counters.get(_name(stream, key), 0)
