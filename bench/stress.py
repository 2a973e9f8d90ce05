"""
Convergence stress run: writer processes make random creates, updates, moves and deletes
(single, bulk, in transactions and rolled-back savepoints) over three keys while
subscribers of a daphne server watch; after the writers stop and a quiet period, every
subscriber must hold, for every key, exactly what the selector reads from the database.

`python -m bench.stress` (make stress): 4 writers x 1,000 writes, 10 subscribers, on a
fresh SQLite database (or --database-url, a scratch database) and a private Redis; prints
its figures. tests/streaming/test_convergence.py runs the same with 100 writes per writer.
bench/stress_writer.py is one writer process.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stress_writer import AGGREGATIONS, KEYS, STREAM
from tests.support.processes import ROOT
from tests.support.wsclient import StreamSubscriber


class _Arrivals(list):
    """A subscriber's received list that also notes when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        """Records the message and its arrival time."""
        self.times.append(time.time())
        super().append(item)


@dataclass
class Figures:
    """What one run measured; `mismatches` and `regressions` must both be empty."""

    writes: int = 0
    write_seconds: float = 0.0
    messages: int = 0
    converge_seconds: float | None = None
    lags: list[float] = field(default_factory=list)
    unmatched: int = 0
    # The (commit time, key, version) of writes some subscriber got no message for.
    unmatched_writes: list[Any] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)

    def lines(self, subscribers: int) -> list[str]:
        """Returns the figures as report lines."""
        lags = sorted(self.lags) or [0.0]
        converge = "never" if self.converge_seconds is None else f"{self.converge_seconds:.3f} s"
        verdict = "CONVERGED" if not (self.mismatches or self.regressions) else "DIVERGED"
        return [
            f"writes            {self.writes} in {self.write_seconds:.1f} s"
            f" ({self.writes / max(self.write_seconds, 1e-9):.0f}/s, writers started to exited)",
            f"messages received {self.messages} ({self.messages / subscribers:.0f} per subscriber)",
            f"time to converge  {converge} after the last writer exited",
            f"max lag           {lags[-1]:.3f} s (p50 {lags[len(lags) // 2]:.3f} s,"
            f" p99 {lags[int(len(lags) * 0.99)]:.3f} s; {self.unmatched} unmatched)",
            f"result            {verdict}: {len(self.mismatches)} stale payloads,"
            f" {len(self.regressions)} version regressions",
        ]


def setup_series() -> None:
    """Creates (or resets) the two stress series; call with Django set up."""
    from metrics.models import Series

    Series.objects.filter(slug__in=AGGREGATIONS).delete()
    for slug, aggregation in AGGREGATIONS.items():
        Series.objects.create(slug=slug, name=slug, aggregation=aggregation)


def database_payloads() -> dict[tuple[str, str], Any]:
    """Returns each key's payload as the selector reads it from the database now."""
    from metrics.models import Series
    from metrics.selectors import series_week
    from metrics.weeks import IsoWeek

    series = {s.slug: s for s in Series.objects.filter(slug__in=AGGREGATIONS)}
    return {
        (slug, week): series_week(series=series[slug], week=IsoWeek.parse(week))
        for slug, week in KEYS
    }


async def run(
    ws_url: str,
    env: dict[str, str],
    writers: int,
    writes: int,
    subscribers: int,
    quiet: float = 2.0,
    killed: int = 1,
) -> Figures:
    """Runs writers against subscribers of `ws_url`; series must exist (setup_series)."""
    from asgiref.sync import sync_to_async

    clients = [await StreamSubscriber(ws_url).connect() for _ in range(subscribers)]
    keys: dict[tuple[str, str], str] = {}
    for client in clients:
        client.received = _Arrivals()
        for slug, week in KEYS:
            reply = await client.subscribe(STREAM, series=slug, week=week)
            assert reply["response_status"] == 200, reply
            keys[(slug, week)] = reply["data"]["key"]
    started = time.time()
    processes = [
        await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.stress_writer", str(seed), str(writes)],
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for seed in range(writers)
    ]
    # Writers SIGKILLed mid-run, right after some commit: what they committed must arrive.
    doomed = [
        await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.stress_writer", str(100 + i), str(writes)],
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for i in range(killed)
    ]
    for process in doomed:
        asyncio.get_running_loop().call_later(random.uniform(1.0, 3.0), process.kill)
    outputs = [
        (out.decode(), err.decode())
        for out, err in await asyncio.gather(*(p.communicate() for p in processes))
    ]
    await asyncio.gather(*(p.wait() for p in doomed))
    done = time.time()
    for process, (_, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a writer failed ({process.returncode}):\n{err}")
    figures = Figures(write_seconds=done - started)
    while time.time() < done + quiet:
        expected = await sync_to_async(database_payloads)()
        if figures.converge_seconds is None and not _stale(clients, keys, expected):
            figures.converge_seconds = time.time() - done
        await asyncio.sleep(0.05)
    figures.mismatches = _stale(clients, keys, await sync_to_async(database_payloads)())
    figures.regressions = _regressions(clients)
    records = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    figures.writes = sum(1 for r in records if r[0] == "write")
    figures.messages = sum(len(c.received) for c in clients) - len(clients) * len(KEYS)
    seen = [r[1:] for r in records if r[0] == "seen"]
    figures.lags, figures.unmatched, figures.unmatched_writes = _lags(clients, seen)
    for client in clients:
        await client.close()
    return figures


def _stale(clients: list[StreamSubscriber], keys: dict, expected: dict) -> list[str]:
    """Returns "subscriber i key" for every payload that differs from the database."""
    return [
        f"subscriber {i} {keys[pair]}"
        for i, client in enumerate(clients)
        for pair in KEYS
        if client.payload(keys[pair]) != expected[pair]
    ]


def _regressions(clients: list[StreamSubscriber]) -> list[str]:
    """Returns every pushed version not above the one before it for the same key."""
    out = []
    for i, client in enumerate(clients):
        last: dict[str, int] = {}
        for message in client.received:
            data = message.get("data") if "request_id" in message else message
            if not isinstance(data, dict) or "version" not in data:
                continue
            if data["version"] <= last.get(data["key"], -1):
                out.append(f"subscriber {i} {data['key']} v{data['version']}")
            last[data["key"]] = data["version"]
    return out


def _lags(clients: list[StreamSubscriber], seen: list[list]) -> tuple[list[float], int, list]:
    """
    Returns, for each committed write and subscriber, the seconds until a message for its
    key arrived with at least the version the key had right after the commit (so read after
    it, to within the microseconds between commit and that version read); and how many never
    did.
    """
    arrivals: list[dict[str, tuple[list[int], list[float]]]] = []
    for client in clients:
        by_key: dict[str, tuple[list[int], list[float]]] = {}
        for message, at in zip(client.received, client.received.times, strict=True):
            if message.get("action") in ("update", "gone") and "request_id" not in message:
                versions, times = by_key.setdefault(message["key"], ([], []))
                versions.append(message["version"])
                times.append(at)
        arrivals.append(by_key)
    lags, unmatched, missed = [], 0, []
    for committed, key, version, *kind in seen:
        for by_key in arrivals:
            versions, times = by_key.get(key, ([], []))
            index = bisect.bisect_left(versions, version)
            if index < len(versions):
                lags.append(max(times[index] - committed, 0.0))
            else:
                unmatched += 1
                if not missed or missed[-1][:3] != [committed, key, version]:
                    missed.append([committed, key, version, *kind])
    return lags, unmatched, missed


def _prepare_database(database_url: str | None, scratch: str) -> tuple[str, Any]:
    """Points Django at a fresh database and a private Redis; returns the Redis URL."""
    from tests.support.redis_server import RedisServer

    redis = RedisServer().start()
    url = database_url or f"sqlite:///{scratch}/stress.sqlite3"
    os.environ.update(DJANGO_SETTINGS_MODULE="settings.test", DATABASE_URL=url)
    os.environ["REDIS_URL"] = redis.url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    setup_series()
    return redis.url, redis


def _quiet_daphne_class() -> Any:
    from tests.support.processes import DaphneServer
    from tests.support.redis_server import wait_for_port

    class QuietDaphne(DaphneServer):
        """A DaphneServer without its access log (one line per socket and request)."""

        def start(self) -> QuietDaphne:
            """Starts daphne with verbosity 0 and waits until it accepts connections."""
            args = [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1"]
            args += ["-p", str(self.port), "settings.asgi:application"]
            self.process = subprocess.Popen(args, cwd=ROOT, env=self.env)
            wait_for_port(self.port, timeout=30)
            return self

    return QuietDaphne


def main() -> None:
    """Runs the stress test (or, with --writer, one writer process) and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--database-url", help="a scratch database (default: a new SQLite)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="stress-")
    redis_url, redis = _prepare_database(args.database_url, scratch)
    from tests.support.processes import process_env

    daphne = _quiet_daphne_class()(redis_url).start()
    try:
        started = time.time()
        figures = asyncio.run(
            run(daphne.ws_url, process_env(redis_url), args.writers, args.writes, args.subscribers)
        )
        elapsed = time.time() - started
    finally:
        daphne.stop()
        redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"stress: {args.writers} writers x {args.writes} writes, {args.subscribers} "
        f"subscribers, {len(KEYS)} keys, {elapsed:.1f} s in all"
    )
    for line in figures.lines(args.subscribers):
        print(line)
    for problem in (figures.mismatches + figures.regressions)[:20]:
        print("  ", problem)
    sys.exit(1 if figures.mismatches or figures.regressions else 0)


if __name__ == "__main__":
    main()
