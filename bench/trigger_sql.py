"""
The capture triggers' own cost, below the ORM: plain SQL against the metrics table, with the
triggers and without, on SQLite and PostgreSQL (docs/benchmarks.md, the cost of capture).

`python -m bench.trigger_sql [--rounds 20]` migrates two scratch databases of each kind,
drops the triggers from one, and alternates: one INSERT in autocommit, 1,000 rows by
executemany in one transaction (on SQLite one statement per row fires the row triggers
1,000 times; on PostgreSQL 1,000 statements fire the statement trigger 1,000 times and the
commit-time stamp 1,000 times), and one 1,000-row INSERT ... SELECT (PostgreSQL's bulk
shape: one statement). Prints each side's median in ms and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from bench.scratch import postgres_available, postgres_database
from bench.targets import ROOT

INSERT = "INSERT INTO metrics_metric (series_id, timestamp, value) VALUES ({p}, {p}, 1)"
SERIES = (
    "INSERT INTO metrics_series (slug, name, unit, aggregation, is_public) "
    "VALUES ('s', 's', '', 'max', {true})"
)


def migrate(url: str) -> None:
    """Migrates the database at `url` (the capture triggers come with it)."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="bench.settings",
        REDIS_URL="",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=url,
    )
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=env, check=True)


def _connect_sqlite(path: str, off: bool) -> Any:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if off:
        names = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'streaming_%'"
        ).fetchall()
        for (name,) in names:
            db.execute(f'DROP TRIGGER "{name}"')
    db.execute(SERIES.format(true=1))
    return db


def _connect_postgres(url: str, off: bool) -> Any:
    import psycopg

    db = psycopg.connect(url, autocommit=True)
    if off:
        names = db.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'streaming_%%' "
            "AND tgrelid = 'metrics_metric'::regclass"
        ).fetchall()
        for (name,) in names:
            db.execute(f'DROP TRIGGER "{name}" ON metrics_metric')
    db.execute(SERIES.format(true="true"))
    return db


def measure(vendor: str, dbs: dict[str, Any], rounds: int) -> dict[str, dict[str, float]]:
    """Alternates the statements on both sides; returns {case: {side: median seconds}}."""
    p = "?" if vendor == "sqlite" else "%s"
    sid = {
        side: db.execute("SELECT id FROM metrics_series").fetchone()[0] for side, db in dbs.items()
    }
    times: dict[str, dict[str, list[float]]] = {}
    counter = [0]

    def stamp() -> str:
        counter[0] += 1
        return f"2026-01-01 00:00:00.{counter[0]:06d}"

    def timed(case: str, side: str, fn: Callable[..., Any], *args: Any) -> None:
        began = time.perf_counter()
        fn(*args)
        times.setdefault(case, {}).setdefault(side, []).append(time.perf_counter() - began)

    def one(db: Any, side: str) -> None:
        db.execute(INSERT.format(p=p), (sid[side], stamp()))

    def many(db: Any, side: str) -> None:
        rows = [(sid[side], stamp()) for _ in range(1000)]
        if vendor == "sqlite":
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT.format(p=p), rows)
            db.execute("COMMIT")
        else:
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany(INSERT.format(p=p), rows)

    def one_statement(db: Any, side: str) -> None:
        db.execute(
            "INSERT INTO metrics_metric (series_id, timestamp, value) SELECT "
            f"{p}, now() + g * interval '1 us', 1 FROM generate_series(1, 1000) g",
            (sid[side],),
        )

    for _ in range(rounds):
        for side, db in dbs.items():
            timed("one INSERT, autocommit", side, one, db, side)
            timed("1,000 INSERT in one transaction", side, many, db, side)
            if vendor == "postgresql":
                timed("INSERT ... SELECT of 1,000 rows", side, one_statement, db, side)
    return {
        case: {side: statistics.median(v) for side, v in by_side.items()}
        for case, by_side in times.items()
    }


def run(vendor: str, rounds: int) -> dict[str, dict[str, float]]:
    """Migrates fresh databases of `vendor`, measures, closes them; returns the medians."""
    with ExitStack() as stack:
        dbs = {}
        for side in ("on", "off"):
            if vendor == "sqlite":
                path = f"{tempfile.mkdtemp(prefix='bench-trigger-')}/db.sqlite3"
                migrate(f"sqlite:///{path}")
                dbs[side] = _connect_sqlite(path, side == "off")
            else:
                url = stack.enter_context(postgres_database(f"bench_trigger_{side}"))
                migrate(url)
                dbs[side] = _connect_postgres(url, side == "off")
            stack.callback(dbs[side].close)
        return measure(vendor, dbs, rounds)


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments, runs each database and prints the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    for vendor in args.databases.split(","):
        if vendor == "postgresql" and not postgres_available():
            print("triggers, postgresql: no server at BENCH_POSTGRES_URL; skipped")
            continue
        for case, sides in run(vendor, args.rounds).items():
            on, off = sides["on"] * 1e3, sides["off"] * 1e3
            print(f"triggers, {vendor}, {case}: {on:.2f} ms vs {off:.2f} ms off = {on / off:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
