"""
The three servers under benchmark, each with its own fresh redis-server (and database):
this project on daphne (and on uvicorn), the DCRF peer on daphne, and the raw `websockets`
limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from tests.support.redis_server import RedisServer, free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
WRITER = [sys.executable, "-m", "bench.writer"]


class Target:
    """A server plus the Redis it uses; subclasses say how to start it and write to it."""

    name = ""
    client_kind = ""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.redis = RedisServer()
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        # A scratch PostgreSQL database instead of the SQLite file (bench/oneshot.py).
        self.database_url: str | None = None

    @property
    def ws_url(self) -> str:
        """Returns the URL clients connect to."""
        raise NotImplementedError

    @property
    def process(self) -> psutil.Process:
        """Returns the server process, for its CPU times and RSS."""
        assert self.server is not None
        return psutil.Process(self.server.pid)

    def env(self) -> dict[str, str]:
        """Returns the environment of the server and of the writer."""
        env = dict(os.environ, PYTHONPATH=str(ROOT), REDIS_URL=self.redis.url)
        env["DATABASE_URL"] = self.database_url or f"sqlite:///{self.dir / 'db.sqlite3'}"
        return env

    def start(self) -> None:
        """Starts Redis and the server; returns once the server listens."""
        self.redis.start()
        self.server = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env(), stdout=self.log, stderr=self.log
        )
        wait_for_port(self.port, timeout=60)

    def command(self) -> list[str]:
        """Returns the server's command line."""
        raise NotImplementedError

    def prepare(self, series: str) -> None:
        """Creates what clients subscribe to."""

    def write(self, series: str, count: int, rate: float, base: int) -> list[list[float]]:
        """Runs the writer process; returns its records."""
        return self.write_args([*WRITER, *self.writer_args(series)], count, rate, base)

    def write_args(self, args: list[str], count: int, rate: float, base: int) -> list[list[float]]:
        """Runs a writer command line (before COUNT RATE BASE); returns its records."""
        result = subprocess.run(
            [*args, str(count), str(rate), str(base)],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} writer failed:\n{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def writer_args(self, series: str) -> list[str]:
        """Returns the writer's arguments before COUNT RATE BASE."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stops the server and Redis."""
        if self.server is not None:
            stop_process(self.server)
            self.server = None
        self.redis.stop()
        self.log.close()


class DjangoTarget(Target):
    """A Django site on daphne: migrated SQLite file, ORM writer."""

    settings = ""
    asgi = ""
    app = ""

    def env(self) -> dict[str, str]:
        """Adds the site's settings module."""
        return dict(super().env(), DJANGO_SETTINGS_MODULE=self.settings)

    def start(self) -> None:
        """Migrates the fresh database, then starts Redis and daphne."""
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"],
            cwd=ROOT,
            env=self.env(),
            check=True,
        )
        super().start()

    def command(self) -> list[str]:
        """Returns daphne's command line."""
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), self.asgi]

    def prepare(self, series: str) -> None:
        """Creates the series, aggregated by max."""
        subprocess.run(
            [sys.executable, "-m", "bench.writer", "setup", self.app, series],
            cwd=ROOT,
            env=self.env(),
            check=True,
        )

    def writer_args(self, series: str) -> list[str]:
        """Writes with the ORM."""
        return ["django", self.app, series]


class ProjectTarget(DjangoTarget):
    """This project: streaming's hub and publisher over the Redis pub/sub layer."""

    name = "project"
    client_kind = "project"
    settings = "bench.settings"
    asgi = "settings.asgi:application"
    app = "metrics"

    @property
    def ws_url(self) -> str:
        """Returns the stream endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws/stream/"


class UvicornTarget(ProjectTarget):
    """This project under uvicorn (websockets-sansio): the ASGI send, no daphne fast path."""

    name = "uvicorn"

    def command(self) -> list[str]:
        """Returns uvicorn's command line."""
        return [
            *[sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)],
            *["--ws", "websockets-sansio", "--log-level", "warning", self.asgi],
        ]


class DcrfTarget(DjangoTarget):
    """The DCRF peer (bench/peers/dcrf) with RedisChannelLayer's defaults."""

    name = "dcrf"
    client_kind = "dcrf"
    settings = "bench.peers.dcrf.settings"
    asgi = "bench.peers.dcrf.asgi:application"
    app = "observed"

    @property
    def ws_url(self) -> str:
        """Returns the peer's consumer endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws/"


class RawTarget(Target):
    """The raw limit: bench/raw_server.py re-sending one pub/sub channel."""

    name = "raw"
    client_kind = "raw"
    channel = "bench"

    @property
    def ws_url(self) -> str:
        """Returns the server's only endpoint."""
        return f"ws://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        """Returns the raw server's command line."""
        return [sys.executable, "-m", "bench.raw_server", str(self.port), self.redis.url, "bench"]

    def writer_args(self, series: str) -> list[str]:
        """PUBLISHes on the server's channel."""
        return ["raw", self.redis.url, self.channel]


TARGETS = {
    "project": ProjectTarget,
    "uvicorn": UvicornTarget,
    "dcrf": DcrfTarget,
    "raw": RawTarget,
}
