"""
Database triggers that record every committed write to an observed table in the change log
(streaming.models.Change), whoever the writer: the ORM, bulk calls, raw SQL, other programs.

They are generated from each Source's `fields` and installed after every `migrate`
(streaming.apps), named by a hash of their SQL so that a changed definition replaces the old.
A rolled-back transaction or savepoint records nothing; a committed one always has.

Versions follow commit order. On SQLite one transaction writes at a time, so each row's
trigger bumps the clock (streaming_clock, row 1). On PostgreSQL the writer only records its
rows and sends NOTIFY: its commit takes no lock and waits on nobody. Readers stamp what has
committed since (streaming_stamp_pending(), run by the relays and by the sender before its
snapshot) with the next values of a sequence, one stamper at a time, so a version is only
ever given to a committed change and a reader sees a stamper's versions all at once or none.
Either way a snapshot that reads the clock (streaming.publish.snapshot.read_clock) at n holds
every commit stamped up to n (docs/protocol.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from streaming import registry

PREFIX = "streaming_"
# Clock floor: microseconds since the epoch, so a clock that starts again (a flushed or new
# table) starts above every version handed out before.
_SQLITE_NOW = "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
_PG_NOW = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"

# pg_advisory_xact_lock's key ("stre", "am" in ASCII): held by a stamper to its commit.
PG_LOCK = (0x73747265, 0x616D)

_PG_STAMP = f"""
CREATE SEQUENCE IF NOT EXISTS streaming_version;
-- Earlier releases stamped each change row at its writer's commit.
DROP TRIGGER IF EXISTS streaming_stamp ON streaming_change;
DROP FUNCTION IF EXISTS streaming_stamp();
-- Starts above every version handed out before: the change log's, and the clock row's
-- (a database stamped by the clock row's UPDATE, before the sequence).
DO $$ BEGIN
  PERFORM pg_advisory_xact_lock{PG_LOCK};
  PERFORM setval('streaming_version', GREATEST(
    (SELECT last_value FROM streaming_version),
    (SELECT max(n) FROM streaming_clock),
    (SELECT max(version) FROM streaming_change)));
END $$;
CREATE OR REPLACE FUNCTION streaming_stamp_pending() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  base bigint;
  stamped integer;
BEGIN
  -- Nothing committed waits: no lock to queue on (a subscribe's read, most relay reads).
  IF NOT EXISTS (SELECT 1 FROM streaming_change WHERE version IS NULL) THEN
    RETURN 0;
  END IF;
  -- One stamper at a time, to its commit: the next one's versions are above these. The
  -- UPDATE below is a statement of its own, so (at READ COMMITTED) it sees every change
  -- committed before the lock was granted, the previous stamper's versions included.
  PERFORM pg_advisory_xact_lock{PG_LOCK};
  -- Nothing waits on this commit's flush: a stamp lost in a crash is given again, higher.
  PERFORM set_config('synchronous_commit', 'off', true);
  base := GREATEST((SELECT last_value FROM streaming_version) + 1, {_PG_NOW});
  UPDATE streaming_change AS c SET version = base + o.n - 1
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
          FROM streaming_change WHERE version IS NULL) AS o
    WHERE c.id = o.id;
  GET DIAGNOSTICS stamped = ROW_COUNT;
  IF stamped > 0 THEN
    PERFORM setval('streaming_version', base + stamped - 1);
  END IF;
  RETURN stamped;
END $$;
"""


def observed_models() -> list[type[models.Model]]:
    """Returns every model a registered stream observes, in a stable order."""
    seen = {source.model for stream in registry.all_streams() for source in stream.sources}
    return sorted(seen, key=lambda model: model._meta.label_lower)


def columns(model: type[models.Model]) -> list[tuple[str, str]]:
    """Returns (attname, column) of the fields the model's keys read, the primary key first."""
    meta = model._meta
    names = dict.fromkeys([meta.pk.attname, *registry.key_fields(model)])
    return [(name, str(meta.get_field(name).column)) for name in names]  # type: ignore[union-attr]


def _json_object(
    connection: BaseDatabaseWrapper, model: type[models.Model], row: str, function: str
) -> str:
    qn = connection.ops.quote_name
    pairs = ", ".join(f"'{attname}', {row}.{qn(column)}" for attname, column in columns(model))
    return f"{function}({pairs})"


def _sqlite(connection: BaseDatabaseWrapper, model: type[models.Model]) -> dict[str, str]:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    label = model._meta.label_lower
    bump = (
        f"INSERT INTO streaming_clock (id, n) VALUES (1, {_SQLITE_NOW}) "
        "ON CONFLICT (id) DO UPDATE SET n = max(n + 1, excluded.n);"
    )
    old = _json_object(connection, model, "OLD", "json_object")
    new = _json_object(connection, model, "NEW", "json_object")
    rows = {"insert": f"json_array({new})", "delete": f"json_array({old})"}
    rows["update"] = f"json_array({old}, {new})"
    out = {}
    for event, value in rows.items():
        record = (
            "INSERT INTO streaming_change (version, txid, model, rows) VALUES "
            f"((SELECT n FROM streaming_clock WHERE id = 1), 0, '{label}', {value});"
        )
        out[f"{event}"] = f"AFTER {event.upper()} ON {table} FOR EACH ROW BEGIN {bump} {record} END"
    return out


def _postgresql(connection: BaseDatabaseWrapper, model: type[models.Model]) -> dict[str, str]:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    label = model._meta.label_lower
    # Inserted or deleted rows are distinct (each has its primary key): json, built and
    # aggregated without comparing. An update's old and new rows often have the same keys:
    # jsonb, which UNION can compare, keeps one of each.
    kind = {"insert": "json", "delete": "json", "update": "jsonb"}
    referencing = {
        "insert": "NEW TABLE AS streaming_new",
        "delete": "OLD TABLE AS streaming_old",
        "update": "OLD TABLE AS streaming_old NEW TABLE AS streaming_new",
    }
    out = {}
    for event in ("insert", "delete", "update"):
        function = f"{kind[event]}_build_object"
        old = f"SELECT {_json_object(connection, model, 'o', function)} AS r FROM streaming_old o"
        new = f"SELECT {_json_object(connection, model, 'n', function)} AS r FROM streaming_new n"
        rows = {"insert": new, "delete": old, "update": f"{old} UNION {new}"}[event]
        # One record per statement: a bulk call of 1,000 rows is one insert, not 1,000.
        # One statement; HAVING leaves out a statement that touched no row.
        # NOTIFY wakes the relays at the commit (a transaction's duplicates fold into one).
        body = (
            "BEGIN INSERT INTO streaming_change (txid, model, rows) "
            f"SELECT 0, '{label}', {kind[event]}_agg(x.r)::text "
            f"FROM ({rows}) x HAVING count(*) > 0; "
            "IF FOUND THEN PERFORM pg_notify('streaming', ''); END IF; RETURN NULL; END"
        )
        out[event] = (
            f"AFTER {event.upper()} ON {table} REFERENCING {referencing[event]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {{function}}()\n{body}"
        )
    return out


def definitions(connection: BaseDatabaseWrapper, model: type[models.Model]) -> dict[str, str]:
    """Returns {trigger name: definition} for `model` on `connection`, names hashed from SQL."""
    build = _sqlite if connection.vendor == "sqlite" else _postgresql
    out = {}
    for event, sql in build(connection, model).items():
        digest = hashlib.blake2b(sql.encode(), digest_size=4).hexdigest()
        out[f"{PREFIX}{model._meta.db_table}_{event}_{digest}"[:63]] = sql
    return out


def supported(connection: BaseDatabaseWrapper) -> bool:
    """Returns whether streaming can capture writes on this database."""
    return connection.vendor in ("sqlite", "postgresql")


def installed(connection: BaseDatabaseWrapper, model: type[models.Model]) -> set[str]:
    """Returns the names of streaming's triggers on `model`'s table."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [table],
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid = to_regclass(%s)",
                [connection.ops.quote_name(table)],
            )
        return {name for (name,) in cursor.fetchall() if name.startswith(PREFIX)}


def missing(connection: BaseDatabaseWrapper, model: type[models.Model]) -> set[str]:
    """Returns the trigger names `model` needs that are not installed (or out of date)."""
    return set(definitions(connection, model)) - installed(connection, model)


def install(connection: BaseDatabaseWrapper, models_: Iterable[type[models.Model]]) -> list[str]:
    """Installs what is missing and drops streaming's stale triggers; returns what changed."""
    if not supported(connection):
        return []
    changed = []
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_STAMP)
        for model in models_:
            wanted = definitions(connection, model)
            present = installed(connection, model)
            table = qn(model._meta.db_table)
            for name in present - set(wanted):
                on = "" if connection.vendor == "sqlite" else f" ON {table}"
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)}{on}")
                if connection.vendor == "postgresql":
                    cursor.execute(f"DROP FUNCTION IF EXISTS {qn(name)}()")
                changed.append(f"-{name}")
            for name in set(wanted) - present:
                cursor.execute(_create(connection, name, wanted[name]))
                changed.append(f"+{name}")
    return changed


def _create(connection: BaseDatabaseWrapper, name: str, definition: str) -> str:
    qn = connection.ops.quote_name
    if connection.vendor == "sqlite":
        return f"CREATE TRIGGER {qn(name)} {definition}"
    trigger, body = definition.split("\n", 1)
    return (
        f"CREATE OR REPLACE FUNCTION {qn(name)}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ {body} $$; CREATE TRIGGER {qn(name)} {trigger.format(function=qn(name))}"
    )
