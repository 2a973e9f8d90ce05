"""
Sends committed changes from any process: admin, REST, shells, scripts and commands. This
is the fast path: the database's change log (read by every server's relay) is what makes
delivery certain, even for a writer killed right after its commit.

save() only drops its keys into a dict and returns (microseconds, whatever the number of
subscribers). One thread per process then reads the keys' payloads and their version in
one database snapshot, encodes each once and group_sends it over one long-lived connection.
A key written again before the thread reaches it is sent once, with the latest state.

The thread starts when a process first writes an observed model (pre_save, a bulk call):
it imports and connects what a broadcast needs (the channel layer, its Redis connection,
the database connection it reads from) while the write is still on its way to the commit.
A process that never writes starts nothing and imports no channel layer backend.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any

from django.db import connections

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.ops.stats import stats
from streaming.publish import snapshot
from streaming.publish.layer import connect, reaches_anyone, send_all
from streaming.publish.log import log_sent
from streaming.registry import AllKeys, StreamNotFound, get_stream

logger = logging.getLogger("streaming.publish.publisher")

Item = tuple[str, "str | AllKeys"]

# Seconds without work after which the sender closes its database connections.
_IDLE_SECONDS = 2.0


class Publisher:
    """A process's sender thread and the keys waiting for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # (stream, key) -> (database alias, first enqueued at)
        self._pending: dict[Item, tuple[str, float]] = {}
        self._failing_since: dict[Item, float] = {}
        self._busy = False
        self._sending: dict[Item, tuple[str, float]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._exit_registered = False
        self._close_requests: list[threading.Event] = []
        self._warm_alias: str | None = None

    def enqueue(self, items: list[tuple[str, str | AllKeys, str]]) -> None:
        """Queues (stream, key, using) items for sending; never raises."""
        try:
            if not reaches_anyone():
                return
            now = time.monotonic()
            with self._cond:
                for stream, key, using in items:
                    if (stream, key) in self._pending:
                        stats.add("conflated", stream)
                    else:
                        self._pending[(stream, key)] = (using, now)
                self._ensure_thread()
                self._cond.notify_all()
        except Exception:
            logger.exception("streaming: could not queue %d broadcast(s)", len(items))

    def holds(self, stream: str, key: str) -> bool:
        """Returns whether this process is about to send `key` (queued, or being sent)."""
        item = (stream, key)
        return item in self._pending or item in self._sending

    def prepare(self, using: str | None = None) -> None:
        """Starts the sender ahead of a write, so that its first broadcast waits on nothing."""
        try:
            if self._alive() or not reaches_anyone():
                return
            with self._cond:
                self._warm_alias = using
                self._ensure_thread()
        except Exception:
            logger.exception("streaming: could not prepare the broadcaster")

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything queued was sent (or given up); returns False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._alive():
                    return not (self._pending or self._busy)
                self._cond.wait(remaining)
        return True

    def close_connections(self, timeout: float = 5.0) -> None:
        """Makes the sender thread close its database connections now (e.g. before a drop)."""
        done = threading.Event()
        with self._cond:
            if not self._alive():
                return
            self._close_requests.append(done)
            self._cond.notify_all()
        done.wait(timeout)

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def _ensure_thread(self) -> None:
        if self._alive():
            return
        # A forked child inherits the dict but not the thread: start its own.
        self._pid = os.getpid()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="streaming-publisher", daemon=True)
        self._thread.start()
        if not self._exit_registered:
            # A script that exits right after save() still delivers its broadcasts.
            atexit.register(self.flush, streaming_settings.EXIT_FLUSH_SECONDS)
            self._exit_registered = True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._warm(loop)
        while True:
            with self._cond:
                if not self._pending and not self._close_requests:
                    self._cond.wait(_IDLE_SECONDS)
                closers, self._close_requests = self._close_requests, []
                batch, self._pending = self._pending, {}
                self._busy = bool(batch)
                self._sending = batch
            if not batch or closers:
                # Idle (or asked): give the connections back, so none sits open for nothing
                # and a test database can be dropped. Connections are per thread: only ours.
                connections.close_all()
                for done in closers:
                    done.set()
            if not batch:
                continue
            failed: dict[Item, tuple[str, float]] = {}
            try:
                failed = self._send(loop, batch)
            except Exception:
                logger.exception("streaming: broadcast batch failed")
                failed = batch
            finally:
                retry = self._retryable(failed)
                with self._cond:
                    for item, value in retry.items():
                        self._pending.setdefault(item, value)
                    self._busy = False
                    self._sending = {}
                    self._cond.notify_all()
            if retry:
                time.sleep(0.5)

    def _warm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Imports and connects what a broadcast needs; a failure here is retried by _send."""
        try:
            connect(loop)
            connections[snapshot.alias_for(self._warm_alias)].ensure_connection()
        except Exception:
            logger.debug("streaming: warming the broadcaster failed", exc_info=True)

    def _retryable(self, failed: dict[Item, tuple[str, float]]) -> dict[Item, tuple[str, float]]:
        """Returns the failed items still within their retry window; logs the rest."""
        now = time.monotonic()
        retry = {}
        for item, value in failed.items():
            since = self._failing_since.setdefault(item, now)
            if now - since < streaming_settings.RETRY_SECONDS:
                retry[item] = value
            else:
                del self._failing_since[item]
                logger.error("streaming: gave up broadcasting %s key %r", *item)
        for item in set(self._failing_since) - set(failed):
            del self._failing_since[item]
        return retry

    def _send(
        self, loop: asyncio.AbstractEventLoop, batch: dict[Item, tuple[str, float]]
    ) -> dict[Item, tuple[str, float]]:
        """Sends one batch; returns the items that failed."""
        for connection in connections.all(initialized_only=True):
            # Only a broken connection is closed here: a healthy one serves the next batch
            # too (a reconnect per batch cost ~5 % of a broadcast on SQLite, more on
            # PostgreSQL); the idle timeout in _run gives it back.
            if connection.connection is None:
                continue
            if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
                connection.close()
            elif connection.errors_occurred:
                if connection.is_usable():
                    connection.errors_occurred = False
                else:
                    connection.close()
        by_stream: dict[str, list[str | AllKeys]] = defaultdict(list)
        for stream_name, key in batch:
            by_stream[stream_name].append(key)
        failed: dict[Item, tuple[str, float]] = {}
        for stream_name, keys in by_stream.items():
            started = time.monotonic()
            try:
                outgoing, bad = self._build(stream_name, keys, batch)
                if bad:
                    stats.add("send_failures", stream_name, len(bad))
                    failed.update({(stream_name, k): batch[(stream_name, k)] for k in bad})
                send_all(loop, outgoing)
            except StreamNotFound:
                continue
            except Exception as exc:
                stats.add("send_failures", stream_name, len(keys))
                logger.warning(
                    "streaming: broadcast of %s keys %s failed: %r; retrying",
                    stream_name,
                    [str(k) for k in keys],
                    exc,
                )
                failed.update({(stream_name, k): batch[(stream_name, k)] for k in keys})
                continue
            now = time.monotonic()
            latency = now - min(batch[(stream_name, k)][1] for k in keys)
            stats.add("broadcasts", stream_name, len(outgoing))
            stats.latency(stream_name, latency)
            if logger.isEnabledFor(logging.INFO):
                log_sent(stream_name, outgoing, now - started, latency)
        return failed

    def _build(
        self,
        stream_name: str,
        keys: list[str | AllKeys],
        batch: dict[Item, tuple[str, float]],
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
        """Returns the messages to send and the keys whose payload or encoding failed."""
        stream = get_stream(stream_name)
        by_alias: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            if isinstance(key, str):
                by_alias[batch[(stream_name, key)][0]].append(key)
        outgoing, failed = [], []
        for using, plain in by_alias.items():
            version, results = snapshot.read_each(stream.payload, plain, using)
            for key in plain:
                payload = results[key]
                try:
                    if isinstance(payload, Exception):
                        raise payload
                    message = protocol.update_message(stream_name, key, version, payload)
                except Exception:
                    # One bad key (say a payload JSON refuses) must not hold back the others.
                    logger.exception("streaming: cannot build %s key %r", stream_name, key)
                    failed.append(key)
                    continue
                outgoing.append((message["group"], message))
        for every in keys:
            if isinstance(every, AllKeys):
                message = protocol.refresh_message(stream_name, every.prefix)
                outgoing.append((protocol.control_group(stream_name), message))
        return outgoing, failed


publisher = Publisher()
