"""
`make run` (scripts/run) as a real process: with DEBUG on it seeds the demo and creates the
admin/admin superuser; with DEBUG off (settings.prod) it does neither (docs/security.md).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from metrics.demo import DEMO_SERIES
from tests.support.processes import ROOT
from tests.support.redis_server import free_port, wait_for_port

SETTINGS = {
    "dev": {"DJANGO_SETTINGS_MODULE": "settings.dev"},
    "prod": {
        "DJANGO_SETTINGS_MODULE": "settings.prod",
        "SECRET_KEY": "test-only-prod-key",
        "SECURE_SSL_REDIRECT": "false",
    },
}


def serve(
    tmp_path: Path,
    redis_url: str,
    settings: dict[str, str],
    while_serving: Callable[[], None] = lambda: None,
    stop: Callable[[int], None] = lambda pid: os.killpg(pid, signal.SIGTERM),
    port: int | None = None,
) -> tuple[str, Path]:
    """
    Runs scripts/run on a fresh database until daphne listens, calls `while_serving`, then
    `stop` with the script's pid; returns its output and its database.
    """
    database = tmp_path / "run.sqlite3"
    port = port or free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        "RUN_DIR": str(tmp_path / "run"),
        "PORT": str(port),
        **settings,
    }
    log = tmp_path / "run.log"
    with log.open("w") as out:
        # Its own process group, as in a terminal; SIGINT as a terminal's Ctrl-C sends it.
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            wait_for_port(port, timeout=180)
            while_serving()
        except TimeoutError:
            pytest.fail(f"scripts/run never served:\n{log.read_text()}")
        finally:
            stop(process.pid)
            process.wait(30)
    return log.read_text(), database


def alive(pid: int) -> bool:
    """Returns whether process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rows(database: Path, sql: str) -> list[tuple]:
    """Returns the rows of a query on the script's database."""
    with closing(sqlite3.connect(database)) as db:
        return db.execute(sql).fetchall()


def test_run_with_debug_seeds_the_demo_and_creates_the_demo_admin(tmp_path, redis_url):
    """Tests that under settings.dev the script seeds the demo series and makes admin/admin."""
    output, db = serve(tmp_path, redis_url, SETTINGS["dev"])
    assert "Demo admin: username 'admin', password 'admin'" in output
    assert rows(db, "SELECT username, is_superuser FROM auth_user") == [("admin", 1)]
    slugs = {slug for (slug,) in rows(db, "SELECT slug FROM metrics_series")}
    assert slugs == {s["slug"] for s in DEMO_SERIES}


def test_run_without_debug_creates_no_demo_user_and_no_demo_data(tmp_path, redis_url):
    """Tests that under settings.prod the script migrates and serves, with no user and no seed."""
    output, db = serve(tmp_path, redis_url, SETTINGS["prod"])
    assert "DEBUG is off (settings.prod): no demo data and no demo admin." in output
    assert "Demo admin" not in output
    assert rows(db, "SELECT COUNT(*) FROM auth_user") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM metrics_series") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM django_migrations")[0][0] > 0


def test_the_server_listens_with_a_backlog_that_holds_a_reconnect_storm(tmp_path, redis_url):
    """
    Tests that daphne listens with a backlog of 4,096 (the kernel's default cap), not the 50
    of daphne's -b/-p: past it, a storm of reconnects waits out TCP's SYN retransmits.
    """
    port, backlog = free_port(), {}

    def while_serving() -> None:
        # For a listening socket, ss's Send-Q column is its backlog.
        line = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        backlog["value"] = int(line[2])

    serve(tmp_path, redis_url, SETTINGS["prod"], while_serving, port=port)
    assert backlog["value"] == min(4096, int(Path("/proc/sys/net/core/somaxconn").read_text()))


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(lambda pid: os.killpg(pid, signal.SIGINT), id="ctrl-c"),
        pytest.param(lambda pid: os.killpg(pid, signal.SIGTERM), id="sigterm-to-the-group"),
        pytest.param(lambda pid: os.kill(pid, signal.SIGTERM), id="sigterm-to-the-script"),
    ],
)
def test_stopping_the_script_stops_its_server_and_its_private_redis(tmp_path, stop):
    """
    Tests that with no REDIS_URL the script serves through a private redis-server, and that
    Ctrl-C or a SIGTERM leaves neither that Redis nor its socket behind.
    """
    run = tmp_path / "run"
    seen: dict[str, int] = {}

    def while_serving() -> None:
        seen["redis"] = int((run / "redis.pid").read_text())
        assert alive(seen["redis"])

    output, _ = serve(tmp_path, "", SETTINGS["dev"], while_serving, stop)
    assert "Started a private Redis for this session" in output
    deadline = time.monotonic() + 10
    while alive(seen["redis"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(seen["redis"]), output
    assert not (run / "redis.sock").exists()
