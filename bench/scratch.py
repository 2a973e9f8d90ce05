"""
Scratch databases for benchmarks: fresh PostgreSQL databases, and the capture turned off.

PostgreSQL comes from BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres,
the server the test suite uses); each scratch database is created empty and dropped after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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


def measure_on_two(vendor: str, name: str, argv: list[str], timeout: float) -> Any:
    """
    Runs `python -m ARGV` in a child process given two fresh databases of `vendor`, as
    bench.capture_settings' "default" (DATABASE_URL) and "off" (CAPTURE_OFF_URL); returns
    the JSON its last line of output holds.
    """
    from bench.targets import ROOT

    with ExitStack() as stack:
        if vendor == "sqlite":
            folder = tempfile.mkdtemp(prefix=f"bench-{name}-")
            default, off = (f"sqlite:///{folder}/{side}.sqlite3" for side in ("default", "off"))
        else:
            default = stack.enter_context(postgres_database(f"bench_{name}_default"))
            off = stack.enter_context(postgres_database(f"bench_{name}_off"))
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="bench.capture_settings",
            DATABASE_URL=default,
            CAPTURE_OFF_URL=off,
            REDIS_URL="",
            PYTHONPATH=str(ROOT),
        )
        result = subprocess.run(
            [sys.executable, "-m", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed on {vendor}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])
