"""
Reads keys' payloads and their version in one database snapshot.

The version is the clock the capture triggers advance at every commit (streaming/capture/
triggers.py); on PostgreSQL the snapshot first stamps the commits that have none yet. Read
in the same snapshot as the payloads, it covers every commit they reflect, except ones made
between the stamp and the snapshot, which get higher versions later: a higher version never
carries an older state (docs/protocol.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import connections, router

from streaming.models import Clock

T = TypeVar("T")
logger = logging.getLogger("streaming.publish.snapshot")

# The clock a snapshot sees, by database vendor (read_clock()).
CLOCK_SQL = {
    # Row 1, which every writing transaction's triggers bump (SQLite; elsewhere, no capture:
    # signals alone broadcast, and the clock stays where it is).
    "default": "SELECT n FROM streaming_clock WHERE id = 1",
    # The newest version stamped by a commit this snapshot sees: the version index's last
    # entry. (max() plans slower: 28 µs over the row's read, against 10; docs/benchmarks.md.)
    "postgresql": (
        "SELECT version FROM streaming_change WHERE version IS NOT NULL "
        "ORDER BY version DESC LIMIT 1"
    ),
}
# PostgreSQL's writers leave their change rows without a version; a reader stamps what has
# committed first (streaming/capture/triggers.py), at READ COMMITTED whatever the database's
# default, so that the stamper sees every commit made before its lock.
STAMP_SQL = "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT streaming_stamp_pending(); COMMIT"
# PostgreSQL's clock when the log holds no stamped row: the newest version pruned (row 2),
# or the clock of a database stamped before the sequence (row 1).
EMPTY_LOG_SQL = "SELECT max(n) FROM streaming_clock"


def read_clock(cursor: Any, vendor: str) -> int:
    """Returns the clock that `cursor`'s snapshot sees, on a database of `vendor`."""
    cursor.execute(CLOCK_SQL.get(vendor, CLOCK_SQL["default"]))
    row = cursor.fetchone()
    if row is None and vendor == "postgresql":
        cursor.execute(EMPTY_LOG_SQL)
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def stamp_pending(cursor: Any, then: str = "") -> None:
    """Gives a version to every change committed without one (PostgreSQL), then runs `then`."""
    sql = f"{STAMP_SQL}; {then}" if then else STAMP_SQL
    # Several statements cannot be a prepared statement (psycopg prepares a query run often,
    # or every one with prepare_threshold=0): on the driver's cursor, never prepared.
    driver = getattr(cursor, "cursor", cursor)
    try:
        driver.execute(sql, prepare=False)
    except Exception:
        # A failed statement leaves its transaction open: end it, so the connection serves on.
        with contextlib.suppress(Exception):
            driver.execute("ROLLBACK")
        raise


def alias_for(using: str | None) -> str:
    """Returns the database alias holding the change log (and the clock) for `using`."""
    return using or router.db_for_read(Clock) or "default"


@contextmanager
def snapshot(using: str | None) -> Iterator[int]:
    """Runs the block in one read-only snapshot of `using`; yields the clock it saw."""
    connection = connections[alias_for(using)]
    if connection.in_atomic_block:
        # Already inside a transaction (a caller's own): read in it as it is.
        yield _clock(connection)
        return
    connection.ensure_connection()
    # The driver's own cursor, inside Django's error translation: three statements without
    # parameters, where Django's cursor wrapper cost most of the snapshot (docs/benchmarks.md).
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
    try:
        with connection.wrap_database_errors:
            if connection.vendor == "postgresql":
                # What committed before this snapshot gets its version first, in one trip.
                stamp_pending(cursor, then="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            else:
                # DEFERRED, not Django's atomic(): a reader must not take SQLite's write lock.
                cursor.execute("BEGIN DEFERRED")
        try:
            with connection.wrap_database_errors:
                clock = read_clock(cursor, connection.vendor)
            yield clock
        finally:
            with connection.wrap_database_errors:
                cursor.execute("COMMIT")
    finally:
        cursor.close()


def _clock(connection: Any) -> int:
    with connection.cursor() as cursor:
        return read_clock(cursor, connection.vendor)


def read(
    payload: Callable[[str, str | None], T], keys: Sequence[str], using: str | None
) -> tuple[int, list[T]]:
    """Returns the version and each key's payload, read in one snapshot."""
    with snapshot(using) as version:
        return version, [payload(key, using) for key in keys]


def read_each(
    payload: Callable[[str, str | None], T], keys: Sequence[str], using: str | None
) -> tuple[int, dict[str, T | Exception]]:
    """
    Returns what read() does, keyed by key; a key whose payload raises holds the exception
    instead, so one bad key cannot fail the others (it is logged here).
    """
    failed: dict[str, Exception] = {}
    while True:
        out: dict[str, T | Exception] = {}
        with snapshot(using) as version:
            connection = connections[alias_for(using)]
            for key in keys:
                if key in failed:
                    continue
                try:
                    out[key] = payload(key, using)
                except Exception as exc:
                    logger.exception("streaming: payload of key %r failed", key)
                    failed[key] = exc
                    if _aborted(connection):
                        # PostgreSQL refuses every later query of this snapshot: the
                        # others are read again in a fresh one, without the bad keys.
                        break
            else:
                return version, {key: out[key] if key in out else failed[key] for key in keys}


def _aborted(connection: Any) -> bool:
    """Returns whether the connection's transaction failed and now refuses queries."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        # A caller's own transaction cannot be started again: read on as before.
        return False
    from psycopg import pq

    return bool(connection.connection.info.transaction_status == pq.TransactionStatus.INERROR)
