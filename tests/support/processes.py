"""Real processes for tests: a daphne server and ORM scripts sharing the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from django.db import connections

from tests.support.redis_server import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
# The ASGI server the tests' servers run: `make test` runs the protocol and write-path tests
# under uvicorn too (TEST_ASGI_SERVER=uvicorn).
ASGI_SERVER = os.environ.get("TEST_ASGI_SERVER", "daphne")


def database_url(alias: str = "default") -> str:
    """Returns a DATABASE_URL for the test database, as other processes must open it."""
    s = connections[alias].settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def process_env(redis_url: str | None, **extra: str) -> dict[str, str]:
    """Returns the environment of a child process: test settings, test DB, given Redis."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="settings.test", DATABASE_URL=database_url(), PYTHONPATH=str(ROOT)
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


class DaphneServer:
    """A daphne process serving settings.asgi on a free port of 127.0.0.1."""

    def __init__(
        self,
        redis_url: str | None,
        port: int | None = None,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.port = port or free_port()
        # Extra daphne options, e.g. ("--ping-interval", "1").
        self.args = args
        self.env = process_env(redis_url, **env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        """Returns the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Returns the stream endpoint's URL."""
        return f"ws://127.0.0.1:{self.port}/ws/stream/"

    def start(self) -> DaphneServer:
        """Starts the server (TEST_ASGI_SERVER: daphne, or uvicorn) and waits for its port."""
        if ASGI_SERVER == "uvicorn":
            args = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port"]
            # websockets-sansio: the legacy "websockets" implementation, with websockets 17,
            # never delivers a close the application sends while the client is still sending.
            args += [str(self.port), "--ws", "websockets-sansio", "--log-level", "warning"]
            args += self.args
        else:
            args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            args += self.args
        self.process = subprocess.Popen(
            [*args, "settings.asgi:application"], cwd=ROOT, env=self.env
        )
        wait_for_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        """Stops daphne."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def run_script(code: str, redis_url: str | None, timeout: float = 60, **env: str) -> str:
    """Runs Python `code` in a new process after django.setup(); returns its stdout."""
    prelude = "import django\ndjango.setup()\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        env=process_env(redis_url, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"script failed ({result.returncode}):\n{result.stderr}")
    return result.stdout
