"""
The relay: turns the database's change log into updates for this server's sockets.

Every server process runs one, beside its hub. It reads the changes committed since the
last it saw, in commit order, maps their rows to keys with each Source's `keys`, and hands
them to the hub, which re-reads the keys it serves. So every committed write reaches every
page, whoever wrote it and however the writer died, with no Redis at all. PostgreSQL wakes
it with NOTIFY (sent at commit), SQLite by a cheap poll of `PRAGMA data_version`; a safety
read runs anyway. On PostgreSQL it first stamps what committed without a version. It also
prunes the log, whose size stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from streaming import registry
from streaming.conf import streaming_settings
from streaming.ops.stats import stats
from streaming.publish.snapshot import alias_for, read_clock, stamp_pending

logger = logging.getLogger("streaming.serve.relay")

# {stream: {key or AllKeys: the version of the newest change to it}}
Changes = dict[str, dict[Any, int]]
# Rows read per query: a writer far ahead is caught up in pages.
_PAGE = 2000
_PRUNE_SECONDS = 5.0


class Relay:
    """A thread that feeds `deliver(changes)` (or `resync()` after any gap) on `loop`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Changes], None],
        resync: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.deliver = deliver
        self.resync = resync
        self.last = -1
        self._stop = threading.Event()
        self._listener: Any = None
        self._thread = threading.Thread(target=self._run, name="streaming-relay", daemon=True)

    def start(self) -> None:
        """Starts the relay's thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread and closes its connections."""
        self._stop.set()
        self._thread.join(timeout)

    def _running(self) -> bool:
        return not self._stop.is_set() and not self.loop.is_closed()

    def _run(self) -> None:
        alias = alias_for(None)
        failures = 0
        next_prune = 0.0
        while self._running():
            try:
                connection = connections[alias]
                if self.last < 0:
                    self.last = self._newest(connection)
                    if failures:
                        # Whatever was committed while we could not read: read it all again.
                        self._post(self.resync)
                self._catch_up(connection)
                if time.monotonic() >= next_prune:
                    prune_log(connection)
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                failures = 0
                self._wait(connection)
            except Exception:
                failures += 1
                logger.exception("streaming: relay failed (%d in a row); retrying", failures)
                stats.add("relay_failures", "*")
                self.last = -1
                self._close()
                self._stop.wait(min(0.25 * 2**failures, 10.0))
        self._close()

    def _close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:
                logger.debug("streaming: closing the relay's listener failed", exc_info=True)
            self._listener = None
        connections.close_all()

    def _newest(self, connection: Any) -> int:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                stamp_pending(cursor)
            cursor.execute(
                "SELECT COALESCE(MAX(version), 0) FROM streaming_change WHERE version IS NOT NULL"
            )
            return int(cursor.fetchone()[0])

    def _catch_up(self, connection: Any) -> None:
        """Reads every change after `last`, in commit order, and posts its keys."""
        while True:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # Writers leave their changes to be stamped by the first reader.
                    stamp_pending(cursor)
                cursor.execute("SELECT n FROM streaming_clock WHERE id = 2")
                pruned = cursor.fetchone()
                if pruned is not None and pruned[0] > self.last:
                    # Changes we never read were pruned: every served key is read again.
                    logger.warning("streaming: relay fell behind the change log; resyncing")
                    self._post(self.resync)
                    self.last = pruned[0]
                cursor.execute(
                    "SELECT version, model, rows FROM streaming_change WHERE version > %s "
                    "ORDER BY version LIMIT %s",
                    [self.last, _PAGE],
                )
                rows = cursor.fetchall()
            if not rows:
                return
            self.last = rows[-1][0]
            changes = keys_of_changes(rows)
            if changes:
                self._post(self.deliver, changes)
            stats.add("relay_changes", "*", len(rows))
            if len(rows) < _PAGE:
                return

    def _post(self, function: Callable[..., None], *args: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(function, *args)

    def _wait(self, connection: Any) -> None:
        """Returns when another connection may have committed, or after the safety period."""
        safety = streaming_settings.RELAY_SAFETY_SECONDS
        if connection.vendor == "postgresql":
            self._listen(connection, safety)
            return
        poll = streaming_settings.RELAY_POLL_SECONDS
        deadline = time.monotonic() + safety
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA data_version")
            seen = cursor.fetchone()[0]
            while self._running() and time.monotonic() < deadline:
                self._stop.wait(poll)
                cursor.execute("PRAGMA data_version")
                if cursor.fetchone()[0] != seen:
                    return

    def _listen(self, connection: Any, safety: float) -> None:
        if self._listener is None:
            import psycopg

            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            self._listener = psycopg.connect(**params, autocommit=True)
            self._listener.execute("LISTEN streaming")
            # Anything committed before LISTEN took effect is read by the next catch-up.
            return
        # Short waits: a stopping server (or a test database being dropped) is not held.
        deadline = time.monotonic() + safety
        while self._running() and time.monotonic() < deadline:
            for _ in self._listener.notifies(timeout=0.25, stop_after=1):
                return


def keys_of_changes(rows: list[tuple[int, str, str]]) -> Changes:
    """Returns the keys each stream's sources map the changed rows to, with their versions."""
    changes: Changes = {}
    for version, label, data in rows:
        model = registry.model_for_label(label)
        if model is None:
            continue
        values = [_typed(model, row) for row in json.loads(data)]
        for stream, source in registry.sources_for(model):
            keys = changes.setdefault(stream.name, {})
            for obj in values:
                try:
                    found = source.keys(obj)
                except Exception:
                    logger.exception("streaming: keys of a %s change failed", label)
                    continue
                for key in found:
                    keys[key] = max(keys.get(key, 0), version)
    return changes


def _typed(model: Any, row: dict[str, Any]) -> SimpleNamespace:
    """Returns the row's values as the model's fields hold them (datetimes, decimals...)."""
    out = {}
    for attname, value in row.items():
        field = model._meta.get_field(attname)
        try:
            value = field.to_python(value)
        except Exception:
            logger.debug("streaming: cannot convert %s=%r", attname, value, exc_info=True)
        if settings.USE_TZ and getattr(value, "tzinfo", 1) is None and hasattr(value, "hour"):
            # SQLite keeps datetimes as naive UTC text.
            value = timezone.make_aware(value, UTC)
        out[attname] = value
    return SimpleNamespace(**out)


def prune_log(connection: Any) -> int:
    """Deletes changes older than the retention (or past the size cap); returns how many."""
    keep_us = int(streaming_settings.CHANGE_RETENTION_SECONDS * 1_000_000)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version FROM streaming_change WHERE version IS NOT NULL "
            "ORDER BY version DESC LIMIT 1 OFFSET %s",
            [streaming_settings.CHANGE_LOG_MAX_ROWS],
        )
        capped = cursor.fetchone()
        clock = read_clock(cursor, connection.vendor)
        if not clock:
            return 0
        below = clock - keep_us
        if capped is not None:
            below = max(below, capped[0] + 1)
        cursor.execute("SELECT MIN(version) FROM streaming_change WHERE version IS NOT NULL")
        oldest = cursor.fetchone()[0]
        if oldest is None or oldest >= below:
            return 0
        # The watermark first: a relay that reads past it knows it may have missed rows.
        cursor.execute(
            "INSERT INTO streaming_clock (id, n) VALUES (2, %s) "
            "ON CONFLICT (id) DO UPDATE SET n = CASE WHEN streaming_clock.n > excluded.n "
            "THEN streaming_clock.n ELSE excluded.n END",
            [below - 1],
        )
        cursor.execute("DELETE FROM streaming_change WHERE version < %s", [below])
        return cursor.rowcount
