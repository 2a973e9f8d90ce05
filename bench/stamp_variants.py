"""
PostgreSQL's capture cost split by design: the shipped triggers against variants of them,
below the ORM (docs/benchmarks.md, "PostgreSQL's writers stop stamping").

`python -m bench.stamp_variants [--variants off,shipped,...] [--rounds 2000]` migrates one
scratch database, clones it once per variant, rewrites each clone's triggers as the variant
says, and alternates one autocommit INSERT into the metrics table across the clones, in a
new random order each round. Prints each variant's median and its cost over "off" (no
capture). The variants are measurements, not alternatives: most of them lose writes or order.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.scratch import POSTGRES_URL, postgres_available, postgres_database
from bench.trigger_sql import SERIES, migrate
from streaming.capture.triggers import PG_LOCK

NOW = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
NEXT = (
    f"setval('streaming_version', GREATEST((SELECT last_value FROM streaming_version) + 1, {NOW}))"
)
ROW_JSON = "json_build_object('id', {r}.id, 'series_id', {r}.series_id, 'timestamp', {r}.timestamp)"
# {insert}: the shipped statement trigger on the metrics table's inserts; {plain}: that
# trigger's function without its NOTIFY (the commit-time stamps below send it themselves).
OLD_STAMP = f"""
DROP INDEX streaming_change_pending; {{plain}}
CREATE FUNCTION streaming_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE streaming_change SET version = {NEXT} FROM pg_notify('streaming', '') AS wake
  WHERE id = (SELECT NEW.id FROM pg_advisory_xact_lock{PG_LOCK} AS lock);
RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER streaming_stamp AFTER INSERT ON streaming_change
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION streaming_stamp();
"""
VARIANTS = {
    "off": "DROP TRIGGER {insert} ON metrics_metric;",
    # The writer records its rows and sends NOTIFY; readers stamp them after the commit.
    "shipped": "",
    # The statement trigger and its change row alone: no NOTIFY, no index of pending rows.
    "unstamped": "DROP INDEX streaming_change_pending; {plain}",
    # The previous release: a deferred trigger stamps each change row at the writer's commit.
    "commit-time stamp": OLD_STAMP,
    # That stamp's lock, sequence and NOTIFY, without the change row's UPDATE.
    "commit-time stamp without update": f"""{OLD_STAMP}
CREATE OR REPLACE FUNCTION streaming_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM {NEXT}, pg_notify('streaming', '') FROM pg_advisory_xact_lock{PG_LOCK};
RETURN NULL; END $$;""",
    # That stamp inserting (version, change id) into a narrow commit table instead.
    "commit-time stamp into a commit table": f"""{OLD_STAMP}
CREATE TABLE probe_commit (version bigint PRIMARY KEY, change_id bigint NOT NULL);
CREATE OR REPLACE FUNCTION streaming_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO probe_commit SELECT {NEXT}, NEW.id
  FROM pg_advisory_xact_lock{PG_LOCK} AS lock, pg_notify('streaming', '') AS wake;
RETURN NULL; END $$;""",
    # That stamp with no version index and room on the page: its UPDATE can be HOT.
    "commit-time stamp with a HOT update": f"""{OLD_STAMP}
DROP INDEX streaming_change_stamped; ALTER TABLE streaming_change SET (fillfactor = 50);""",
    # That stamp with the sequence's next value, without the time floor.
    "commit-time stamp with nextval": f"""{OLD_STAMP}
CREATE OR REPLACE FUNCTION streaming_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE streaming_change SET version = nextval('streaming_version')
  FROM pg_notify('streaming', '') AS wake
  WHERE id = (SELECT NEW.id FROM pg_advisory_xact_lock{PG_LOCK} AS lock);
RETURN NULL; END $$;""",
    # The floor of a commit-time stamp: one deferred row trigger writes the stamped change
    # row at commit, no statement trigger, no UPDATE (a bulk call would run it per row).
    "one deferred row trigger": f"""
DROP TRIGGER {{insert}} ON metrics_metric;
CREATE FUNCTION probe_commit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO streaming_change (version, txid, model, rows)
  SELECT {NEXT}, 0, 'metrics.metric', json_build_array({ROW_JSON.format(r="NEW")})::text
  FROM pg_advisory_xact_lock{PG_LOCK} AS lock, pg_notify('streaming', '') AS wake;
RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER probe_commit_row AFTER INSERT ON metrics_metric
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION probe_commit_row();""",
    # The statement's rows kept in a transaction-local setting; one deferred trigger, armed
    # by the transaction's first row, inserts them stamped at commit.
    "setting then one insert at commit": f"""
DROP TRIGGER {{insert}} ON metrics_metric;
CREATE FUNCTION probe_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('streaming.rows', concat_ws(',',
    nullif(current_setting('streaming.rows', true), ''),
    json_build_array('metrics.metric', json_agg({ROW_JSON.format(r="n")}))::text), true)
  FROM streaming_new n HAVING count(*) > 0;
RETURN NULL; END $$;
CREATE TRIGGER probe_keep AFTER INSERT ON metrics_metric REFERENCING NEW TABLE AS streaming_new
  FOR EACH STATEMENT EXECUTE FUNCTION probe_keep();
CREATE FUNCTION probe_flush() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO streaming_change (version, txid, model, rows)
  SELECT {NEXT}, 0, e->>0, e->>1
  FROM pg_advisory_xact_lock{PG_LOCK} AS lock, pg_notify('streaming', '') AS wake,
    json_array_elements(('[' || current_setting('streaming.rows') || ']')::json)
    WITH ORDINALITY AS x(e, i) ORDER BY i;
  PERFORM set_config('streaming.rows', '', true), set_config('streaming.armed', '', true);
RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER probe_flush AFTER INSERT ON metrics_metric
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (current_setting('streaming.armed', true) IS DISTINCT FROM '1'
        AND set_config('streaming.armed', '1', true) = '1')
  EXECUTE FUNCTION probe_flush();""",
}
NOTIFY = "IF FOUND THEN PERFORM pg_notify('streaming', ''); END IF; "
INSERT = "INSERT INTO metrics_metric (timestamp, value, series_id) VALUES (%s, 1, %s)"


def _prepare(url: str, variant: str) -> tuple[Any, int]:
    import psycopg

    db = psycopg.connect(url, autocommit=True)
    (insert,) = db.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
        "AND tgname LIKE 'streaming_%%insert%%' AND tgrelid = 'metrics_metric'::regclass"
    ).fetchone()
    sql = VARIANTS[variant].replace("{insert}", f'"{insert}"')
    if "{plain}" in sql:
        (body,) = db.execute("SELECT pg_get_functiondef(%s::regproc)", [f'"{insert}"']).fetchone()
        assert NOTIFY in body, "the shipped insert trigger no longer notifies as expected"
        sql = sql.replace("{plain}", body.replace(NOTIFY, "") + ";")
    if sql:
        db.execute(sql)
    (series,) = db.execute(SERIES.format(true="true") + " RETURNING id").fetchone()
    return db, series


def measure(dbs: dict[str, tuple[Any, int]], rounds: int) -> dict[str, float]:
    """Alternates one INSERT per variant per round; returns each variant's median (s)."""
    times: dict[str, list[float]] = {name: [] for name in dbs}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    names = list(dbs)
    warmup = 50
    for round_ in range(rounds + warmup):
        random.shuffle(names)
        at = start + timedelta(seconds=round_)
        for name in names:
            db, series = dbs[name]
            began = time.perf_counter()
            db.execute(INSERT, (at, series))
            if round_ >= warmup:
                times[name].append(time.perf_counter() - began)
        if round_ % 500 == 499:
            # Keep the log small, as the relays' pruning does.
            for db, _ in dbs.values():
                db.execute("DELETE FROM streaming_change WHERE version IS NOT NULL")
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments, measures the variants and prints their medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    variants = ["off", *[v for v in args.variants.split(",") if v != "off"]]
    if not postgres_available():
        print("stamp variants: no server at BENCH_POSTGRES_URL; skipped")
        return 0
    import psycopg

    with ExitStack() as stack:
        template = stack.enter_context(postgres_database("bench_stamp_template"))
        migrate(template)
        dbs = {}
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for i, variant in enumerate(variants):
                name = f"bench_stamp_{i}"
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "bench_stamp_template"')
                stack.callback(_drop, name)
                dbs[variant] = _prepare(template.rsplit("/", 1)[0] + f"/{name}", variant)
                stack.callback(dbs[variant][0].close)
        medians = measure(dbs, args.rounds)
    off = medians["off"]
    for variant in variants:
        extra = (medians[variant] - off) * 1e6
        print(f"stamp variants, {variant}: {medians[variant] * 1e6:.1f} us, +{extra:.1f} us")
    return 0


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
