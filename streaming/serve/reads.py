"""
Subscribes' snapshot reads, taken together: the subscribes waiting for the database thread
at the same time share one hop and one snapshot per stream, and those of one key one read.

A batch closes when its read begins in the database thread. Whoever joined it had joined
the key's group before, so every commit after the snapshot reaches them as an update
(docs/protocol.md); a subscribe arriving later opens the next batch.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from channels.db import database_sync_to_async

from streaming.publish import snapshot
from streaming.registry import Stream
from streaming.serve.loops import per_loop

Batch = dict[str, tuple[Stream, dict[str, "asyncio.Future[tuple[int, Any]]"]]]


class Reads:
    """An event loop's batches of snapshot reads (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Batch | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def read(self, stream: Stream, key: str) -> tuple[int, Any]:
        """Returns `key`'s version and payload, from a snapshot that begins after this call."""
        loop = asyncio.get_running_loop()
        with self._lock:
            batch, first = self._open, self._open is None
            if batch is None:
                batch = self._open = {}
            futures = batch.setdefault(stream.name, (stream, {}))[1]
            future = futures.get(key)
            if future is None:
                future = futures[key] = loop.create_future()
                # A key whose every subscriber left must not log an unretrieved error.
                future.add_done_callback(_retrieve)
        if first:
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        # Shielded: a subscriber that goes away must not cancel the others' read.
        return await asyncio.shield(future)

    async def _run(self, batch: Batch) -> None:
        waiting = [f for _, futures in batch.values() for f in futures.values()]
        try:
            results = await _read_batch(self, batch)
        except asyncio.CancelledError:
            for future in waiting:
                future.cancel()
            raise
        except Exception as exc:
            # The waiters get the failure (the database is down, say); this task, which
            # nobody awaits, ends cleanly rather than logging it once more.
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for name, (_, futures) in batch.items():
            version, payloads = results[name]
            for key, future in futures.items():
                outcome = payloads[key]
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result((version, outcome))

    def close(self, batch: Batch) -> list[tuple[Stream, list[str]]]:
        """Closes `batch` to newcomers (in the database thread) and returns what it reads."""
        with self._lock:
            if self._open is batch:
                self._open = None
            return [(stream, list(futures)) for stream, futures in batch.values()]


def read_batch(reads: Reads, batch: Batch) -> dict[str, tuple[int, dict[str, Any]]]:
    """Closes the batch, then reads each stream's keys in a snapshot (a failing key fails alone)."""
    return {
        stream.name: snapshot.read_each(stream.payload, keys, None)
        for stream, keys in reads.close(batch)
    }


_read_batch = database_sync_to_async(read_batch)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


# Returns the running event loop's Reads, creating it on first use.
get_reads = per_loop(lambda loop: Reads())
