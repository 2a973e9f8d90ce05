"""
Scratch databases for benchmarks: fresh PostgreSQL databases, and the capture turned off.

PostgreSQL comes from BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres,
the server the test suite uses); each scratch database is created empty and dropped after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _admin() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True)


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """Creates the empty database `name` (dropping a leftover); yields its URL, then drops it."""
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available() -> bool:
    """Returns whether the scratch PostgreSQL server answers."""
    try:
        with _admin() as admin:
            admin.execute("SELECT 1")
    except Exception:
        return False
    return True


def drop_capture(using: str = "default") -> list[str]:
    """
    Drops streaming's capture triggers from every observed table of `using` (a scratch
    database only: the same build with the database capture off); returns their names.
    """
    from django.db import connections

    from streaming.capture import triggers

    connection = connections[using]
    qn = connection.ops.quote_name
    dropped = []
    with connection.cursor() as cursor:
        for model in triggers.observed_models():
            table = qn(model._meta.db_table)
            for name in sorted(triggers.installed(connection, model)):
                if connection.vendor == "sqlite":
                    cursor.execute(f"DROP TRIGGER {qn(name)}")
                else:
                    cursor.execute(f"DROP TRIGGER {qn(name)} ON {table}")
                    cursor.execute(f"DROP FUNCTION {qn(name)}()")
                dropped.append(name)
    return dropped
