"""
`make chaos`: a chaos soak. 1,000 subscribers (two client processes) on two daphne servers
sharing one Redis and one database, four writer processes (ORM, bulk, raw SQL, mixed) for
3 minutes, while writers are SIGKILLed, Redis restarts (empty or from an older snapshot) or
pauses, and one server at a time restarts as its clients reconnect to the other.

After 10 quiet seconds every subscriber must hold the database's state for every key it
subscribed to (metrics.selectors.series_week), and no subscriber may have applied a state
going back (bench/chaos_clients.py checks each one). Prints a table with each server's RSS;
exits non-zero if an invariant fails. `python -m bench.chaos [--seconds S] [--subscribers N]`;
SQLite in a scratch directory by default, or --database-url (a scratch PostgreSQL database:
its grow-*/mix-* series are replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos_faults import ChaosRedis, Server, Writer
from bench.chaos_writer import MODES
from tests.support.processes import ROOT

WEEKS = ["2026-W48", "2026-W49"]
GROW = ["grow-0", "grow-1", "grow-2"]
MIX = {"mix-0": "avg", "mix-1": "max", "mix-2": "last"}
# Drawn at random, so writer kills and server restarts come twice as often as the others.
FAULTS = [
    "writer SIGKILL", "writer SIGKILL", "server restart", "server restart", "Redis pause",
    "Redis restart empty", "Redis restart from snapshot", "Redis snapshot",
]  # fmt: skip


def prepare(database_url: str, redis_url: str) -> dict[str, str]:
    """Points this process at the database, migrates it, seeds the series; returns the env."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="bench.settings")
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, LOG_LEVEL="WARNING")
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from metrics.models import Series

    Series.objects.filter(slug__regex=r"^(grow|mix)-").delete()
    for slug in GROW:
        Series.objects.create(slug=slug, name=slug, aggregation="sum")
    for slug, aggregation in MIX.items():
        Series.objects.create(slug=slug, name=slug, aggregation=aggregation)
    return env


def expected_payloads() -> dict[str, Any]:
    """Returns every key's payload as the selector reads it from the database now."""
    from metrics.models import Series
    from metrics.selectors import series_week
    from metrics.streams import week_key
    from metrics.weeks import IsoWeek

    return {
        week_key(series.pk, IsoWeek.parse(week)): series_week(
            series=series, week=IsoWeek.parse(week)
        )
        for series in Series.objects.filter(slug__in=[*GROW, *MIX])
        for week in WEEKS
    }


def plans(count: int, per: int, rng: random.Random) -> list[list[list[str]]]:
    """Returns each subscriber's (slug, week) pairs: one grow-* key, then others at random."""
    pairs = [[slug, week] for slug in [*GROW, *MIX] for week in WEEKS]
    out = []
    for _ in range(count):
        grow = [rng.choice(GROW), rng.choice(WEEKS)]
        out.append([grow, *rng.sample([p for p in pairs if p != grow], per - 1)])
    return out


class Clients:
    """One bench.chaos_clients process, driven over its stdin and stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, env: dict[str, str], config: dict[str, Any]) -> Clients:
        """Starts the process; returns once it said "ready"."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.chaos_clients", json.dumps(config), cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24,
        )  # fmt: skip
        self = cls(process)
        self.ready = (await self.line()).split()
        return self

    async def line(self) -> str:
        """Returns the next line the process printed."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("a client process died")
        return line.decode()

    async def check(self, expected: dict[str, Any]) -> dict[str, Any]:
        """Returns the process's report against `expected`."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"check {json.dumps(expected)}\n".encode())
        await self.process.stdin.drain()
        return json.loads(await self.line())

    async def stop(self) -> None:
        """Ends the process."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def inflict(
    rng: random.Random,
    until: float,
    every: float,
    redis: ChaosRedis,
    servers: list[Server],
    writers: list[Writer],
) -> Counter[str]:
    """Causes a random fault every `every` s or so until `until`; returns how many of each."""
    events: Counter[str] = Counter()
    started = time.monotonic()
    await asyncio.to_thread(redis.snapshot)
    while True:
        await asyncio.sleep(rng.uniform(0.6 * every, 1.6 * every))
        for server in servers:
            server.rss()
        if time.monotonic() >= until:
            break
        event = rng.choice(FAULTS)
        events[event] += 1
        print(f"  {time.monotonic() - started:5.1f}s {event}", flush=True)
        if event == "writer SIGKILL":
            writer = rng.choice(writers)
            await writer.kill()
            await asyncio.sleep(rng.uniform(0.2, 2))
            await writer.start(time.time() + until - time.monotonic())
        elif event == "Redis snapshot":
            await asyncio.to_thread(redis.snapshot)
        elif event == "Redis pause":
            await redis.pause(rng.uniform(2, 5))
        elif event.startswith("Redis restart"):
            await asyncio.to_thread(redis.restart_from, event.endswith("snapshot"))
        else:
            server = rng.choice(servers)
            server.restarts += 1
            await asyncio.to_thread(server.stop, rng.random() < 0.5)
            await asyncio.sleep(rng.uniform(1, 4))
            await asyncio.to_thread(server.start)
    return events


async def settle(groups: list[Clients], quiet: float) -> tuple[list[dict[str, Any]], float | None]:
    """
    Checks the subscribers every second for `quiet` s; returns the last reports and when
    they first all held the database's state.
    """
    started = time.monotonic()
    reports: list[dict[str, Any]] = []
    converged = None
    while time.monotonic() - started < quiet:
        await asyncio.sleep(1)
        expected = await asyncio.to_thread(expected_payloads)
        reports = [await group.check(expected) for group in groups]
        if converged is None and all(r["stale"] == 0 for r in reports):
            converged = time.monotonic() - started
    return reports, converged


async def chaos(
    args: argparse.Namespace, env: dict[str, str], redis: ChaosRedis, logs: Path
) -> int:
    """Runs the soak against a started Redis; prints the table; returns the exit status."""
    rng = random.Random(args.seed)
    servers = [Server(f"server-{i}", env, logs) for i in range(2)]
    writers = [Writer(mode, env, args.rate, WEEKS) for mode in MODES]
    groups: list[Clients] = []
    try:
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        urls = [s.ws_url for s in servers]
        everyone = plans(args.subscribers, args.keys, rng)
        size = -(-len(everyone) // args.client_processes)
        for n, i in enumerate(range(0, len(everyone), size)):
            # Each process starts half its clients on either server.
            config = {"urls": urls[n % 2 :] + urls[: n % 2], "plans": everyone[i : i + size]}
            groups.append(await Clients.start(env, config))
        ready = sum(int(g.ready[1]) for g in groups)
        await asyncio.sleep(2)
        rss_start = [s.rss() for s in servers]
        print(f"{ready} of {args.subscribers} subscribed; chaos for {args.seconds:g} s", flush=True)
        until = time.monotonic() + args.seconds
        for writer in writers:
            await writer.start(time.time() + args.seconds)
        events = await inflict(rng, until, args.fault_every, redis, servers, writers)
        for writer in writers:
            await writer.wait()
        reports, converged = await settle(groups, args.quiet)
        rss_end = [s.rss() for s in servers]
    finally:
        for group in groups:
            await group.stop()
        for writer in writers:
            await writer.kill()
        for server in servers:
            server.stop(crash=True)
    total = {k: sum(r[k] for r in reports) for k in reports[0] if isinstance(reports[0][k], int)}
    committed, failed = sum(w.committed for w in writers), sum(w.failed for w in writers)
    database = env["DATABASE_URL"].split(":")[0]
    rows = [
        ("subscribers", f"{args.subscribers} ({ready} subscribed at start), {args.keys} keys "
                        f"each, {args.client_processes} client processes"),
        ("servers", f"2 daphne, 1 Redis (pub/sub layer), {database}"),
        ("writers", f"{len(writers)} ({', '.join(MODES)}), {args.rate:g} writes/s each"),
        ("faults", f"in {args.seconds:g} s: "
                   + ", ".join(f"{k} x{v}" for k, v in sorted(events.items()))),
        ("writes", f"{committed} committed, {failed} failed"),
        ("sessions", f"{total['sessions']} subscribe sessions ({total['sessions'] - ready} "
                     f"resubscribes), {total['failures']} dropped or failed connections"),
        ("states", f"{total['applied']} applied, {total['ignored']} older pushes ignored"),
        ("live at the end", f"{total['live']} of {args.subscribers} subscribers subscribed"),
        ("converged", "never" if converged is None else f"{converged:.0f} s into the quiet"),
        ("stale at the end", f"{total['stale']} of {total['pairs']} (subscriber, key) pairs"),
        ("states going back", str(total["violations"])),
    ]  # fmt: skip
    for server, start, end in zip(servers, rss_start, rss_end, strict=True):
        rss = f"{start:.0f} MiB at start, {end:.0f} MiB at end (peak {server.peak:.0f})"
        rows.append((f"{server.name} RSS", f"{rss}, {server.restarts} restarts"))
    for name, value in rows:
        print(f"{name:<20} {value}")
    for report in reports:
        for sample in report["stale_samples"][:5] + report["violation_samples"][:5]:
            print("  ", sample)
        for error, count in report["errors"].items():
            print(f"   {count} x {error}")
    ok = total["stale"] == 0 and total["violations"] == 0 and ready == args.subscribers
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Runs the chaos soak; exits non-zero if an invariant fails."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--keys", type=int, default=3, help="keys per subscriber")
    parser.add_argument("--rate", type=float, default=3.0, help="writes per second per writer")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds without writes")
    parser.add_argument("--fault-every", type=float, default=5.0, help="mean seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    redis = ChaosRedis().start()
    status = 1
    try:
        env = prepare(args.database_url or f"sqlite:///{scratch / 'db.sqlite3'}", redis.url)
        status = asyncio.run(chaos(args, env, redis, scratch))
    finally:
        redis.stop()
        if status == 0:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"server logs and the database are in {scratch}")
    return status


if __name__ == "__main__":
    sys.exit(main())
