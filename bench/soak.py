"""
`make soak`: 1,000 subscribers and 50 writes/s for 60 s against daphne, while 5 % of the
clients drop and reconnect at random. Reports errors, lost updates (a client whose final
state differs from the database's), the server's RSS over time, and the change log's size
(rows in streaming_change, every 5 s) with its trend once the retention has passed: the
relay prunes what is older than CHANGE_RETENTION_SECONDS (docs/benchmarks.md).

Run as `python -m bench.soak [--clients N] [--rate W] [--seconds S] [--series K]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import connect

from tests.support.redis_server import RedisServer, free_port, stop_process, wait_for_port
from tests.support.wsclient import origin_for

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class Site:
    """This project on daphne (with extra options, if any), its own SQLite and redis-server."""

    def __init__(self, daphne_options: tuple[str, ...] = ()) -> None:
        self.options = daphne_options
        self.dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
        self.redis = RedisServer()
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115

    @property
    def ws_url(self) -> str:
        """Returns the stream endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws/stream/"

    @property
    def http_url(self) -> str:
        """Returns the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Returns the environment of the server and of the scripts: no DEBUG, quiet logs."""
        return dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            DJANGO_SETTINGS_MODULE="settings.dev",
            DEBUG="false",
            LOG_LEVEL="WARNING",
            REDIS_URL=self.redis.url,
            DATABASE_URL=f"sqlite:///{self.dir / 'db.sqlite3'}",
        )

    def start(self) -> Site:
        """Migrates the database, starts Redis and daphne; returns once daphne listens."""
        self.run(
            "from django.core.management import call_command\ncall_command('migrate', verbosity=0)"
        )
        self.redis.start()
        args = [sys.executable, "-m", "daphne", *self.options]
        # Served as scripts/run and docs/deploy.md serve it: a listen backlog of 4,096, not 50.
        args += ["-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog=4096"]
        self.server = subprocess.Popen(
            [*args, "settings.asgi:application"], cwd=ROOT, env=self.env(), stdout=self.log,
            stderr=self.log,
        )  # fmt: skip
        wait_for_port(self.port, timeout=60)
        return self

    def spawn(self, code: str) -> subprocess.Popen[str]:
        """Starts Python `code` after django.setup() in a new process; stdout is piped."""
        return subprocess.Popen(
            [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
            cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, code: str) -> str:
        """Runs Python `code` after django.setup(); returns its stdout."""
        process = self.spawn(code)
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"script failed ({process.returncode})")
        return out

    def rss(self) -> float:
        """Returns daphne's resident memory in MiB."""
        assert self.server is not None
        return psutil.Process(self.server.pid).memory_info().rss / MIB

    def change_log_rows(self) -> int:
        """Returns how many rows the change log holds now (a read-only connection)."""
        uri = f"file:{self.dir / 'db.sqlite3'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            return int(db.execute("SELECT COUNT(*) FROM streaming_change").fetchone()[0])

    def get_json(self, path: str) -> Any:
        """Returns a GET's JSON body."""
        with urllib.request.urlopen(self.http_url + path, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        """Stops daphne and Redis."""
        if self.server is not None:
            stop_process(self.server)
            self.server = None
        self.redis.stop()
        self.log.close()


SEED = """
from metrics.models import Series
aggregations = ["sum", "avg", "max", "last"]
for i in range({count}):
    defaults = {{"name": f"Soak {{i}}", "aggregation": aggregations[i % 4]}}
    Series.objects.get_or_create(slug=f"soak-{{i}}", defaults=defaults)
"""

WRITER = """
import json, random, time
from django.utils import timezone
from metrics.models import Metric, Series
series = list(Series.objects.filter(slug__startswith="soak-"))
rate, seconds = {rate}, {seconds}
writes = errors = 0
behind = 0.0
start = time.monotonic()
while writes + errors < rate * seconds:
    due = start + (writes + errors) / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    behind = max(behind, time.monotonic() - due)
    try:
        Metric.objects.create(series=random.choice(series), timestamp=timezone.now(),
                              value=round(random.uniform(0, 100), 2))
        writes += 1
    except Exception as exc:
        errors += 1
        print("write failed:", repr(exc), file=__import__("sys").stderr)
print(json.dumps({{"writes": writes, "errors": errors, "max_behind_s": round(behind, 3)}}))
"""


class Subscriber:
    """One client: one key, the newest state by the version rule, reconnecting on demand."""

    def __init__(self, url: str, slug: str, errors: list[str]) -> None:
        self.url, self.slug, self.errors = url, slug, errors
        self.key = ""
        self.version = -1
        self.payload: Any = None
        self.socket: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def open(self) -> None:
        """Connects and subscribes; the reply replaces the state."""
        try:
            self.socket = await connect(
                self.url,
                origin=origin_for(self.url),
                compression=None,
                open_timeout=60,
                close_timeout=2,
            )
            message = {"action": "subscribe", "request_id": 1, "stream": "metrics.week"}
            await self.socket.send(json.dumps({**message, "params": {"series": self.slug}}))
            async with asyncio.timeout(60):
                reply = json.loads(await self.socket.recv())
                # A heartbeat may come first when the server is slow to reply (a storm).
                while "response_status" not in reply:
                    reply = json.loads(await self.socket.recv())
            if reply.get("response_status") != 200:
                raise RuntimeError(f"subscribe refused: {reply}")
            data = reply["data"]
            self.key, self.version, self.payload = data["key"], data["version"], data["payload"]
        except Exception as exc:
            self.errors.append(f"{self.slug}: connect/subscribe: {exc!r}")
            return
        self.reader = asyncio.get_running_loop().create_task(self._read(self.socket))

    async def reconnect(self) -> None:
        """Closes the connection as a client going away would, then opens a new one."""
        socket, reader = self.socket, self.reader
        self.socket = self.reader = None
        if reader is not None:
            reader.cancel()
        if socket is not None:
            await socket.close()
        self.reconnects += 1
        await self.open()

    async def _read(self, socket: Any) -> None:
        try:
            async for text in socket:
                message = json.loads(text)
                if message.get("action") == "update" and message["version"] > self.version:
                    self.version, self.payload = message["version"], message["payload"]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(f"{self.slug}: read: {exc!r}")
        if socket is self.socket:
            self.errors.append(f"{self.slug}: closed by the server ({socket.close_code})")

    async def close(self) -> None:
        """Closes for good."""
        if self.reader is not None:
            self.reader.cancel()
        if self.socket is not None:
            await self.socket.close()


async def flap(client: Subscriber, until: float) -> None:
    """Reconnects `client` at random intervals (2-10 s) until `until`."""
    while True:
        await asyncio.sleep(min(random.uniform(2, 10), max(0.0, until - time.monotonic())))
        if time.monotonic() >= until:
            return
        await client.reconnect()


async def lost_updates(site: Site, clients: list[Subscriber], settle: float) -> int:
    """Waits up to `settle` s for every client to hold the database's state; returns misses."""
    expected: dict[str, Any] = {}
    for client in clients:
        if client.payload is not None and client.key not in expected:
            week = client.payload["week"]
            path = f"/api/series/{client.slug}/week/?week={week}"
            expected[client.key] = await asyncio.to_thread(site.get_json, path)
    deadline = time.monotonic() + settle
    while True:
        misses = sum(1 for c in clients if c.payload is None or c.payload != expected[c.key])
        if misses == 0 or time.monotonic() > deadline:
            return misses
        await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Runs one soak and returns its figures."""
    site = Site().start()
    errors: list[str] = []
    try:
        site.run(SEED.format(count=args.series))
        clients = [
            Subscriber(site.ws_url, f"soak-{i % args.series}", errors) for i in range(args.clients)
        ]
        gate = asyncio.Semaphore(50)

        async def open_one(client: Subscriber) -> None:
            async with gate:
                await client.open()

        started = time.monotonic()
        await asyncio.gather(*(open_one(c) for c in clients))
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(2)
        rss = [(0.0, site.rss())]
        print(f"connected {args.clients} in {connect_seconds:.1f}s; RSS {rss[0][1]:.0f} MiB; "
              f"writing {args.rate}/s for {args.seconds}s", flush=True)  # fmt: skip

        start = time.monotonic()
        until = start + args.seconds
        flappers = random.sample(clients, round(args.clients * args.reconnect_share))
        tasks = [asyncio.get_running_loop().create_task(flap(c, until)) for c in flappers]
        writer = site.spawn(WRITER.format(rate=args.rate, seconds=args.seconds))
        log = [(0.0, site.change_log_rows())]
        while writer.poll() is None:
            await asyncio.sleep(0.2)
            if time.monotonic() - start - rss[-1][0] >= 10:
                rss.append((time.monotonic() - start, site.rss()))
            if time.monotonic() - start - log[-1][0] >= 5:
                rows = await asyncio.to_thread(site.change_log_rows)
                log.append((time.monotonic() - start, rows))
        written = json.loads(writer.stdout.read().strip().splitlines()[-1])
        await asyncio.gather(*tasks)
        rss.append((time.monotonic() - start, site.rss()))
        lost = await lost_updates(site, clients, settle=30)
        for client in clients:
            await client.close()
    finally:
        site.stop()
    return {
        "clients": args.clients,
        "series": args.series,
        "writes": written["writes"],
        "write_errors": written["errors"],
        "writer_max_behind_s": written["max_behind_s"],
        "seconds": args.seconds,
        "connect_seconds": round(connect_seconds, 1),
        "reconnects": sum(c.reconnects for c in clients),
        "errors": len(errors) + written["errors"],
        "error_samples": errors[:5],
        "lost_updates": lost,
        "rss_mib": [[round(t), round(m, 1)] for t, m in rss],
        "change_log": [[round(t), n] for t, n in log],
        "change_log_trend": trend(log, args.retention),
    }


def trend(samples: list[tuple[float, int]], retention: float) -> float | None:
    """
    Returns the least-squares slope (rows per second) of the change log's size over the
    samples taken after the first `retention` + 10 s (once pruning keeps pace), if >= 3.
    """
    steady = [(t, n) for t, n in samples if t >= retention + 10]
    if len(steady) < 3:
        return None
    mt = sum(t for t, _ in steady) / len(steady)
    mn = sum(n for _, n in steady) / len(steady)
    var = sum((t - mt) ** 2 for t, _ in steady)
    return sum((t - mt) * (n - mn) for t, n in steady) / var


def main(argv: list[str] | None = None) -> int:
    """Runs the soak; exits non-zero on any error or lost update."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--series", type=int, default=20, help="keys the clients spread over")
    parser.add_argument("--reconnect-share", type=float, default=0.05)
    parser.add_argument(
        "--retention", type=float, default=60.0, help="the server's CHANGE_RETENTION_SECONDS"
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(soak(args))
    print(json.dumps(figures))
    rss = figures["rss_mib"]
    print(
        f"errors: {figures['errors']}   lost updates: {figures['lost_updates']}   "
        f"reconnects: {figures['reconnects']}   writes: {figures['writes']}   "
        f"RSS: {rss[0][1]:.0f} MiB at start, {rss[-1][1]:.0f} MiB at end"
    )
    log, slope = figures["change_log"], figures["change_log_trend"]
    shown = "n/a (run longer than the retention + 25 s)" if slope is None else f"{slope:+.2f}"
    print(
        f"change log: {log[-1][1]} rows at end, max {max(n for _, n in log)} "
        f"(writes/s x retention = {args.rate * args.retention:.0f}); trend after "
        f"{args.retention + 10:.0f} s: {shown} rows/s"
    )
    return 0 if figures["errors"] == 0 and figures["lost_updates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
