"""
The change log and its triggers: installed by migrate and checked; rows and versions as
writers and readers leave them (on PostgreSQL the first reader after a commit stamps it);
pruning that bounds the log; a relay that fell behind resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core import checks
from django.db import connection, transaction

from metrics.models import Metric, Series
from streaming.capture import install, triggers
from streaming.models import Change, Clock
from streaming.publish.snapshot import snapshot
from streaming.serve.relay import Relay, keys_of_changes, prune_log

pytestmark = pytest.mark.django_db(transaction=True)

STAMP = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_log():
    """
    Empties the change log first: the flush that ends each test deletes the observed tables'
    rows, which the triggers record, so the log may hold them, by the order of the deletes.
    """
    Change.objects.all().delete()


def test_migrate_installs_the_triggers_and_the_check_says_when_one_is_missing():
    """Tests that after migrate nothing is missing, and that W102 names a dropped trigger."""
    assert triggers.missing(connection, Metric) == set()
    assert install.check_triggers(databases=["default"]) == []
    name = sorted(triggers.installed(connection, Metric))[0]
    on = "" if connection.vendor == "sqlite" else f" ON {Metric._meta.db_table}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {connection.ops.quote_name(name)}{on}")
    found = install.check_triggers(databases=["default"])
    assert [m.id for m in found] == ["streaming.W102"]
    assert isinstance(found[0], checks.Warning)
    assert found[0].obj is Metric
    install.after_migrate(using="default")
    assert install.check_triggers(databases=["default"]) == []


def test_a_write_records_its_rows_key_fields_old_and_new_and_a_growing_version():
    """Tests that a move records both rows' key fields, with versions in commit order."""
    series = Series.objects.create(slug="cpu", name="CPU")
    metric = Metric.objects.create(series=series, timestamp=STAMP, value=1)
    with snapshot(None) as after_create:
        pass
    metric.timestamp = datetime(2026, 12, 1, 12, tzinfo=UTC)
    metric.save()
    with snapshot(None) as after_move:
        pass
    assert after_move > after_create > 0
    changes = list(Change.objects.filter(model="metrics.metric").order_by("version"))
    assert [c.version for c in changes] == sorted({c.version for c in changes})
    assert changes[-1].version == after_move
    rows = json.loads(changes[-1].rows)
    assert {row["series_id"] for row in rows} == {series.pk}
    keys = keys_of_changes([(c.version, c.model, c.rows) for c in changes])
    assert set(keys["metrics.week"]) >= {f"{series.pk}:2026-W48", f"{series.pk}:2026-W49"}


def test_a_bulk_call_is_one_commit_with_one_version():
    """Tests that a bulk_create of many rows commits under one version (one change row)."""
    series = Series.objects.create(slug="cpu", name="CPU")
    with transaction.atomic():
        Metric.objects.bulk_create(
            Metric(series=series, timestamp=STAMP, value=i) for i in range(50)
        )
    with snapshot(None) as clock:
        pass
    versions = set(Change.objects.filter(model="metrics.metric").values_list("version", flat=True))
    if connection.vendor == "postgresql":
        assert len(versions) == 1
    assert clock == max(versions)


def test_pruning_keeps_the_log_under_its_cap_and_marks_what_it_dropped(settings):
    """Tests that prune_log bounds the log's size and records the newest version it dropped."""
    settings.STREAMING = {"CHANGE_LOG_MAX_ROWS": 20}
    series = Series.objects.create(slug="cpu", name="CPU")
    for i in range(60):
        Metric.objects.create(series=series, timestamp=STAMP, value=i)
    with snapshot(None):
        pass
    assert Change.objects.count() > 20
    assert prune_log(connection) > 0
    assert Change.objects.count() <= 21
    watermark = Clock.objects.get(pk=2).n
    assert watermark < Change.objects.order_by("version")[0].version


async def test_a_relay_behind_the_pruned_log_resyncs_everything():
    """Tests that a relay whose last read is below the pruned watermark asks for a resync."""
    from asgiref.sync import sync_to_async

    await sync_to_async(Clock.objects.create)(pk=2, n=10**18)
    resyncs: list[bool] = []
    loop = asyncio.get_running_loop()
    relay = Relay(loop, deliver=lambda changes: None, resync=lambda: resyncs.append(True))
    relay.last = 5
    await sync_to_async(relay._catch_up)(connection)
    await asyncio.sleep(0)
    assert resyncs == [True]
    assert relay.last == 10**18


@pytest.mark.parametrize("isolation", ["READ_COMMITTED", "REPEATABLE_READ", "SERIALIZABLE"])
def test_versions_follow_commit_order_at_every_isolation_level(isolation):
    """
    Tests that versions follow commit order, not begin order. On PostgreSQL a transaction
    begun first but committed last, at `isolation` (its snapshot older than the other's
    commit), still commits; a reader between the two commits stamps the other's change
    alone, and the first's get versions above it. The readers' sessions default to
    `isolation` too: their stamp runs at READ COMMITTED anyway. On SQLite, where writers
    take turns and the level does not apply, a second writer waits for the first and gets a
    version above every one of its.
    """
    if connection.vendor == "postgresql":
        _interleaved_postgresql_writers(isolation)
    else:
        _sqlite_writer_waits()


def _interleaved_postgresql_writers(isolation: str) -> None:
    import psycopg

    series = Series.objects.create(slug="cpu", name="CPU")
    params = _psycopg_params()
    insert = "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES (%s, %s, 1)"
    level = isolation.replace("_", " ").lower()
    with (
        _session_default(f"default_transaction_isolation = '{level}'"),
        psycopg.connect(**params) as first,
        psycopg.connect(**params) as second,
    ):
        first.isolation_level = psycopg.IsolationLevel[isolation]
        first.execute(insert, (series.pk, STAMP))
        first.execute(insert, (series.pk, datetime(2026, 12, 1, tzinfo=UTC)))
        second.execute(insert, (series.pk, STAMP))
        second.commit()
        with snapshot(None) as between:
            pass
        first.commit()
        with snapshot(None) as clock:
            pass
    changes = list(Change.objects.filter(model="metrics.metric").order_by("id"))
    assert len(changes) == 3
    assert changes[2].version == between
    first = [changes[0].version, changes[1].version]
    assert min(first) > between
    assert clock == max(first)


@contextlib.contextmanager
def _session_default(setting: str) -> Iterator[None]:
    """Sets a default of the test's own session for the block (PostgreSQL)."""
    name = setting.split("=")[0].strip()
    with connection.cursor() as cursor:
        cursor.execute(f"SET {setting}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"RESET {name}")


def _sqlite_writer_waits() -> None:
    import sqlite3

    series = Series.objects.create(slug="cpu", name="CPU")
    path = connection.settings_dict["NAME"]
    insert = "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES (?, ?, 1)"
    first = sqlite3.connect(path, isolation_level=None)
    second = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        first.execute("BEGIN IMMEDIATE")
        first.execute(insert, (series.pk, "2026-11-24 12:00:00"))
        first.execute(insert, (series.pk, "2026-12-01 00:00:00"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.execute("BEGIN IMMEDIATE")
        first.execute("COMMIT")
        second.execute("BEGIN IMMEDIATE")
        second.execute(insert, (series.pk, "2026-11-24 12:00:00"))
        second.execute("COMMIT")
    finally:
        first.close()
        second.close()
    changes = list(Change.objects.filter(model="metrics.metric").order_by("id"))
    assert len(changes) == 3
    assert changes[0].version < changes[1].version < changes[2].version
    with snapshot(None) as clock:
        assert clock == changes[2].version


def test_racing_writers_at_the_strictest_isolation_all_commit_and_readers_see_whole_versions():
    """
    Tests that writers racing at their database's strictest isolation (PostgreSQL:
    SERIALIZABLE; SQLite: one writer at a time) all commit, as they would without streaming,
    and that a reader racing them sees the log whole: a snapshot that reads the clock at n
    holds every change whose version is n or less, never one without its version, and no
    version changes once read.
    """
    series = Series.objects.create(slug="cpu", name="CPU")
    connect = _postgresql_connect if connection.vendor == "postgresql" else _sqlite_connect
    insert = (
        "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES ({p}, {p}, 1) RETURNING id"
    )
    failures: list[Exception] = []
    committed: list[list[int]] = []
    seen: list[tuple[int, dict[int, int]]] = []
    done = threading.Event()

    def write(seed: int) -> None:
        chance = random.Random(seed)
        db, begin, p = connect()
        try:
            for _ in range(20):
                try:
                    db.execute(begin)
                    ids = [db.execute(insert.format(p=p), (series.pk, STAMP)).fetchone()[0]]
                    time.sleep(chance.random() / 500)
                    ids.append(db.execute(insert.format(p=p), (series.pk, STAMP)).fetchone()[0])
                    db.execute("COMMIT")
                    committed.append(ids)
                except Exception as exc:
                    failures.append(exc)
                    db.execute("ROLLBACK")
        finally:
            db.close()

    def read() -> None:
        from django.db import connections

        try:
            while not done.is_set():
                with snapshot(None) as clock:
                    rows = Change.objects.filter(model="metrics.metric").values_list(
                        "id", "version"
                    )
                    seen.append((clock, dict(rows)))
                time.sleep(0.001)
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert failures == []
    assert len(committed) == 4 * 20
    with snapshot(None):
        pass
    final = dict(Change.objects.filter(model="metrics.metric").values_list("id", "version"))
    assert len(final) == 2 * 4 * 20
    assert len(set(final.values())) == len(final)
    assert len(seen) > 5
    for clock, rows in seen:
        stamped = {i: v for i, v in rows.items() if v is not None}
        assert stamped == {i: v for i, v in final.items() if v <= clock}


def _postgresql_connect() -> tuple[Any, str, str]:
    import psycopg

    db = psycopg.connect(**_psycopg_params(), autocommit=True)
    return db, "BEGIN ISOLATION LEVEL SERIALIZABLE", "%s"


def _psycopg_params() -> dict[str, Any]:
    """Returns the test database's connection parameters for psycopg itself, not Django."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return params


def _sqlite_connect() -> tuple[Any, str, str]:
    import sqlite3

    db = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)
    return db, "BEGIN IMMEDIATE", "?"


def test_a_clock_ahead_of_the_time_keeps_every_later_version_above_it():
    """
    Tests that a write after the clock row was left ahead of the time (as a database stamped
    by the clock row, before PostgreSQL's sequence, may be) gets a version above it once
    migrate has run, and that a snapshot reads that version as the clock.
    """
    series = Series.objects.create(slug="cpu", name="CPU")
    ahead = int((datetime.now(UTC).timestamp() + 3600) * 1_000_000)
    Clock.objects.update_or_create(pk=1, defaults={"n": ahead})
    try:
        install.after_migrate(using="default")
        Metric.objects.create(series=series, timestamp=STAMP, value=1)
        with snapshot(None) as clock:
            pass
        version = Change.objects.get(model="metrics.metric").version
        assert version is not None
        assert version > ahead
        assert clock == version
    finally:
        if connection.vendor == "postgresql":
            # The sequence outlives the test's tables: later tests' versions are times again.
            with connection.cursor() as cursor:
                cursor.execute("SELECT setval('streaming_version', %s)", [ahead - 7200 * 10**6])


def test_a_snapshot_of_an_emptied_log_reads_the_newest_version_pruned():
    """Tests that once pruning has emptied the log, the clock a snapshot reads does not fall."""
    series = Series.objects.create(slug="cpu", name="CPU")
    Metric.objects.create(series=series, timestamp=STAMP, value=1)
    with snapshot(None) as before:
        pass
    Clock.objects.update_or_create(pk=2, defaults={"n": before})
    Change.objects.all().delete()
    with snapshot(None) as after:
        assert after == before


def test_the_relays_grace_counts_from_the_commit_and_never_exceeds_itself(settings, monkeypatch):
    """
    Tests that a relayed key is left to the fast path for what remains of the grace since
    its commit (its version's time): all of it for a commit just now, none for one long
    past, and never more than the grace for a clock that ran ahead of the wall clock.
    """
    from streaming.serve import repair

    settings.STREAMING = {**settings.STREAMING, "RELAY_GRACE_SECONDS": 0.1}
    now = 1_800_000_000.0
    monkeypatch.setattr(repair.time, "time", lambda: now)
    now_us = int(now * 1_000_000)
    assert repair.grace_left(now_us) == pytest.approx(0.1)
    assert repair.grace_left(now_us - 60_000) == pytest.approx(0.04)
    assert repair.grace_left(now_us - 5_000_000) == 0.0
    assert repair.grace_left(now_us + 3_600_000_000) == 0.1


def test_a_failing_snapshot_raises_djangos_error_and_marks_the_connection(monkeypatch):
    """
    Tests that the snapshot, read on the driver's cursor, still raises django.db's errors
    and flags the connection (the sender closes an unusable one), and leaves no transaction.
    """
    from django.db import DatabaseError

    from streaming.publish import snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "CLOCK_SQL", {"default": "SELECT n FROM no_such_table"})
    connection.ensure_connection()
    connection.errors_occurred = False
    with pytest.raises(DatabaseError), snapshot(None):
        pass
    assert connection.errors_occurred
    monkeypatch.undo()
    with connection.cursor() as cursor:
        # A transaction left open would refuse BEGIN (SQLite) or warn and stay (PostgreSQL).
        cursor.execute("SELECT 1")
    with snapshot(None) as clock:
        assert clock >= 0
    assert not connection.in_atomic_block
    if connection.vendor == "postgresql":
        # PostgreSQL's stamp runs first, in a transaction of its own: one that fails is
        # rolled back, and the connection serves the next snapshot.
        monkeypatch.setattr(
            snapshot_module,
            "STAMP_SQL",
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT no_such_function(); COMMIT",
        )
        with pytest.raises(DatabaseError), snapshot(None):
            pass
        monkeypatch.undo()
        assert connection.connection.info.transaction_status == 0
        with snapshot(None) as clock:
            assert clock >= 0


def test_a_writer_commits_at_once_and_the_first_reader_finds_its_version():
    """
    Tests that a writer's commit waits on no reader. On PostgreSQL another session holds the
    stamp's advisory lock (a reader stamping), a create() still commits at once, and the
    first reader after the lock is free stamps its change. On SQLite a reader holds a read
    transaction open, and the change carries its version from the commit on.
    """
    series = Series.objects.create(slug="cpu", name="CPU")
    with _reader_in_the_way():
        began = time.monotonic()
        Metric.objects.create(series=series, timestamp=STAMP, value=1)
        waited = time.monotonic() - began
        unstamped = Change.objects.get(model="metrics.metric").version is None
    assert waited < 1.0
    assert unstamped == (connection.vendor == "postgresql")
    with snapshot(None) as clock:
        pass
    assert Change.objects.get(model="metrics.metric").version == clock


@contextlib.contextmanager
def _reader_in_the_way() -> Iterator[None]:
    """Holds, in another session, what a reader holds: the stamp's lock, or a read."""
    if connection.vendor == "postgresql":
        db, _, _ = _postgresql_connect()
        db.execute("BEGIN")
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", triggers.PG_LOCK)
        # Were the commit to wait for the lock, it would fail after 2 s, not hang.
        held = _session_default("lock_timeout = '2s'")
    else:
        db, _, _ = _sqlite_connect()
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM streaming_change").fetchone()
        held = contextlib.nullcontext()
    try:
        with held:
            yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def test_changes_get_their_versions_whatever_the_drivers_cursor():
    """
    Tests that a change written over the driver itself gets its version: on PostgreSQL from
    the stamp, on either of psycopg's cursors even when it prepares every query
    (prepare_threshold=0, where several statements in one query would fail); on SQLite
    from the write's own trigger.
    """
    series = Series.objects.create(slug="cpu", name="CPU")
    if connection.vendor == "sqlite":
        db, _, _ = _sqlite_connect()
        db.execute(
            "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES (?, ?, 1)",
            (series.pk, "2026-11-24 12:00:00"),
        )
        db.close()
        assert Change.objects.get(model="metrics.metric").version is not None
        return
    import psycopg

    from streaming.publish.snapshot import stamp_pending

    params = {**_psycopg_params(), "autocommit": True, "prepare_threshold": 0}
    with psycopg.connect(**params) as db:
        for kind in (psycopg.Cursor, psycopg.ClientCursor):
            db.execute(
                "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES (%s, %s, 1)",
                (series.pk, STAMP),
            )
            for _ in range(3):
                stamp_pending(kind(db))
    versions = list(Change.objects.filter(model="metrics.metric").values_list("version", flat=True))
    assert len(versions) == 2
    assert None not in versions
