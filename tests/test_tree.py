"""
The suite leaves no database in the checkout: the SQLite test databases (and so their -wal
and -shm files) live outside BASE_DIR, at paths every process of a run derives alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
PRINT_TEST_NAMES = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({a: d['TEST']['NAME'] for a, d in s.DATABASES.items()}))"
)


def names_in_a_new_process(**env: str) -> dict[str, str]:
    """Returns the TEST NAME of each database as a process of the run on SQLite sees it."""
    child_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    child_env.update(DJANGO_SETTINGS_MODULE="settings.test", PYTHONPATH=str(ROOT), **env)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_TEST_NAMES],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_sqlite_test_databases_live_outside_the_checkout():
    """Tests that every SQLite test database configured for this run is a path outside the tree."""
    names = {
        alias: Path(db["TEST"]["NAME"])
        for alias, db in settings.DATABASES.items()
        if db["ENGINE"].endswith("sqlite3")
    }
    assert "other" in names
    for alias, name in names.items():
        assert name.is_absolute(), (alias, name)
        assert not name.resolve().is_relative_to(ROOT), (alias, name)
        assert name.parent == settings.TEST_DATABASE_DIR


def test_every_process_of_a_run_derives_the_same_paths():
    """Tests that a new process finds this run's databases, and another suffix gets its own."""
    suffix = os.environ.get("TEST_DB_SUFFIX", "")
    first = names_in_a_new_process(TEST_DB_SUFFIX=suffix)
    again = names_in_a_new_process(TEST_DB_SUFFIX=suffix)
    other_run = names_in_a_new_process(TEST_DB_SUFFIX=f"{suffix}_another_run")
    assert first == again
    assert first["other"] == settings.DATABASES["other"]["TEST"]["NAME"]
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert first["default"] == settings.DATABASES["default"]["TEST"]["NAME"]
    assert {first["default"], first["other"]}.isdisjoint(other_run.values())
    for name in [*first.values(), *other_run.values()]:
        assert not Path(name).resolve().is_relative_to(ROOT), name
