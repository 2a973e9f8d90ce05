"""
Revocation at scale: 20,000 distinct keys (series x weeks, 50 per socket) on one daphne, held
by a logged-in viewer's sockets (private series) and one anonymous socket (a public series).
First the anonymous socket's series is made private: one re-check pass over every key must
revoke its 50 keys. Then the viewer loses metrics.view_series: a pass revokes every other
key. The run times both, from the change to the last `revoked`, while an HTTP client
measures the server's latency (the re-check shares its database thread with the views).

`python -m bench.rechecks [--keys N] [--weeks W]`: SQLite in a scratch directory and a private
Redis; prints the figures (docs/benchmarks.md, "Permission re-check at many keys").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench.chaos_faults import Server
from tests.support.processes import ROOT
from tests.support.redis_server import RedisServer
from tests.support.wsclient import origin_for

PER_SOCKET = 50
# Subscribes in flight per socket: a page opening a few charts at once. A client that sends
# far more than the server answers is paused (docs/security.md), and misses its pongs.
WINDOW = 4
STREAM = "metrics.week"


def prepare(scratch: Path, redis_url: str, series: int) -> tuple[dict[str, str], str]:
    """
    Migrates a fresh database, creates the private series and a viewer; returns the env
    and the viewer's session key.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="bench.settings")
    env.update(DATABASE_URL=f"sqlite:///{scratch / 'db.sqlite3'}", REDIS_URL=redis_url)
    # INFO: the server logs each pass that revoked something, with its timings.
    env.update(LOG_LEVEL="INFO")
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    from metrics.models import Series

    Series.objects.bulk_create(
        Series(slug=f"p-{i}", name=f"P {i}", is_public=False) for i in range(series)
    )
    Series.objects.create(slug="open-0", name="Open 0")
    Series.objects.create(slug="open-1", name="Open 1")
    user = User.objects.create_user("viewer", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_series"))
    client = Client()
    client.force_login(user)
    return env, client.cookies["sessionid"].value


def revoke() -> None:
    """Removes the viewer's metrics.view_series."""
    from django.contrib.auth.models import Permission, User

    User.objects.get(username="viewer").user_permissions.remove(
        Permission.objects.get(codename="view_series")
    )


class Socket:
    """One socket subscribing to its keys at the rate limit, then counting `revoked`."""

    def __init__(self, url: str, session: str, pairs: list[tuple[str, str]]) -> None:
        self.url, self.session, self.pairs = url, session, pairs
        self.revoked = 0
        self.first_revoked = self.last_revoked = 0.0
        self.failures: list[str] = []
        self.done = asyncio.Event()

    async def run(self, subscribed: asyncio.Event) -> None:
        """
        Subscribes every pair, a few at a time as a page opening its charts does, asking
        again after a 429; then reads until its keys are revoked.
        """
        try:
            await self._run(subscribed)
        except Exception as exc:
            # A socket the server closed (or that failed to open): counted, not waited for.
            self.failures.append(f"socket ended: {exc!r}"[:200])
            subscribed.set()
            self.done.set()

    async def _run(self, subscribed: asyncio.Event) -> None:
        headers = {"Cookie": f"sessionid={self.session}"} if self.session else {}
        async with connect(
            self.url,
            origin=origin_for(self.url),
            additional_headers=headers,
            open_timeout=60,
            max_queue=None,
        ) as socket:
            self.ok: set[int] = set()
            self.replies: dict[int, asyncio.Future[int]] = {}
            reader = asyncio.get_running_loop().create_task(self._read(socket))
            window = asyncio.Semaphore(WINDOW)
            pairs = enumerate(self.pairs, start=1)
            await asyncio.gather(*(self._subscribe(socket, window, n, p) for n, p in pairs))
            subscribed.set()
            await reader

    async def _subscribe(
        self, socket: Any, window: asyncio.Semaphore, n: int, pair: tuple[str, str]
    ) -> None:
        async with window:
            while n not in self.ok:
                reply = self.replies[n] = asyncio.get_running_loop().create_future()
                params = {"series": pair[0], "week": pair[1]}
                message = {"action": "subscribe", "request_id": n, "stream": STREAM}
                await socket.send(json.dumps({**message, "params": params}))
                status = await reply
                if status == 429:
                    await asyncio.sleep(0.5)
                elif status != 200:
                    return

    async def _read(self, socket: Any) -> None:
        try:
            async for text in socket:
                message = json.loads(text)
                status = message.get("response_status")
                if status is not None:
                    if status == 200:
                        self.ok.add(message["request_id"])
                    elif status != 429:
                        self.failures.append(str(message)[:200])
                    reply = self.replies.pop(message["request_id"], None)
                    if reply is not None and not reply.done():
                        reply.set_result(status)
                elif message.get("action") == "revoked":
                    self.revoked += 1
                    self.last_revoked = time.monotonic()
                    self.first_revoked = self.first_revoked or self.last_revoked
                    if self.revoked == len(self.pairs):
                        self.done.set()
                        return
        finally:
            for reply in self.replies.values():
                if not reply.done():
                    reply.set_exception(ConnectionError("the socket ended"))


def http_load(url: str, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """GETs `url` about 20 times a second until `stop`; records (start, seconds) of each."""
    while not stop.is_set():
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        out.append((started, time.monotonic() - started))
        time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))


def percentiles(samples: list[float]) -> str:
    """Returns p50 / p99 / max of `samples` (seconds) in ms."""
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median, top = statistics.median(ordered), ordered[-1]
    return f"p50 {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {top * 1000:.0f} ms"


async def revocation(
    sockets: list[Socket], change: Any, samples: list[tuple[float, float]]
) -> tuple[float, float, str]:
    """
    Applies `change` (in the database) and waits for every socket's `revoked`; returns the
    seconds until the last one, from the first to the last, and the HTTP latency meanwhile.
    """
    from asgiref.sync import sync_to_async

    cut, started = len(samples), time.monotonic()
    await sync_to_async(change)()
    await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in sockets)), 180)
    last = max(s.last_revoked for s in sockets)
    spread = last - min(s.first_revoked for s in sockets)
    await asyncio.sleep(1)
    return last - started, spread, percentiles([d for _, d in samples[cut:]])


def make_private() -> None:
    """Makes the anonymous sockets' series private (its other keys' subscribers stay)."""
    from metrics.models import Series

    Series.objects.filter(slug="open-0").update(is_public=False)


async def measure(args: argparse.Namespace, env: dict[str, str], session: str, logs: Path) -> dict:
    """
    Subscribes the viewer's sockets and one anonymous socket; makes the anonymous one's
    series private (one pass over every key revokes 50 of them), then removes the viewer's
    permission (one pass revokes every other key); returns the figures.
    """
    server = Server("server", env, logs)
    await asyncio.to_thread(server.start)
    try:
        weeks = [f"2025-W{w:02d}" for w in range(1, args.weeks + 1)]
        count = (args.keys - PER_SOCKET) // args.weeks
        pairs = [(f"p-{i}", week) for i in range(count) for week in weeks]
        sockets = [Socket(server.ws_url, session, pairs[i : i + PER_SOCKET])
                   for i in range(0, len(pairs), PER_SOCKET)]  # fmt: skip
        anonymous = Socket(server.ws_url, "", [("open-0", w) for w in weeks[:PER_SOCKET]])
        events = [asyncio.Event() for _ in range(len(sockets) + 1)]
        started = time.monotonic()
        tasks = []
        for socket, event in zip([*sockets, anonymous], events, strict=True):
            tasks.append(asyncio.get_running_loop().create_task(socket.run(event)))
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 1800)
        subscribe_seconds = time.monotonic() - started
        failures = [f for s in [*sockets, anonymous] for f in s.failures]
        # Let passes run over every key before the baseline and the revocations.
        stop, samples = threading.Event(), []
        url = f"http://127.0.0.1:{server.port}/api/series/open-1/week/?week=2025-W01"
        loader = threading.Thread(target=http_load, args=(url, stop, samples))
        loader.start()
        await asyncio.sleep(12)
        rss = server.rss()
        before = percentiles([d for _, d in samples])
        one = await revocation([anonymous], make_private, samples)
        every = await revocation(sockets, revoke, samples)
        stop.set()
        await asyncio.to_thread(loader.join)
        for task in tasks:
            task.cancel()
    finally:
        server.stop(crash=True)
    log = (logs / "server.log").read_text(errors="replace").splitlines()
    return {
        "keys": len(pairs) + len(anonymous.pairs),
        "sockets": len(sockets) + 1,
        "subscribe_seconds": round(subscribe_seconds, 1),
        "subscribe_failures": len(failures),
        "failure_samples": failures[:3],
        "http_before": before,
        "one_series_private": {"seconds": round(one[0], 2), "http": one[2]},
        "permission_removed": {
            "seconds": round(every[0], 2),
            "first_to_last": round(every[1], 2),
            "http": every[2],
        },
        "revoked": sum(s.revoked for s in [*sockets, anonymous]),
        "rss_mib": round(rss),
        "server_warnings": len([line for line in log if "WARNING" in line or "ERROR" in line]),
        # The passes that revoked, and how often each kind of warning came (its first words).
        "passes": [line.split(" ", 2)[-1] for line in log if "re-check revoked" in line],
        "warnings": Counter(
            line.split(" ", 2)[-1][:70] for line in log if " WARNING " in line or " ERROR " in line
        ).most_common(8),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the measure; exits non-zero if a subscribe failed or a key was not revoked."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=50)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-rechecks-"))
    redis = RedisServer().start()
    try:
        env, session = prepare(scratch, redis.url, (args.keys - PER_SOCKET) // args.weeks)
        figures = asyncio.run(measure(args, env, session, scratch))
    finally:
        redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    return 0 if figures["revoked"] == figures["keys"] and not figures["subscribe_failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
