"""
The one-shot ORM script: a fresh process sets Django up, reads its series, creates one
Metric and exits. How long from its commit until a subscribed page holds the value?

`python -m bench.oneshot [--runs 5] [--modes redis,relay] [--database sqlite|postgresql]`
starts this project's server (daphne, a fresh SQLite file or scratch PostgreSQL database,
bench/scratch.py), subscribes one client, then runs the script RUNS times, one
fresh process after another. Modes: `redis`, the pub/sub channel layer (the script's own
broadcast races the server's relay); `relay`, no Redis at all (the script sends nothing, the
server's relay polls the database). Prints each run and the median and max against the
target (median <= 30 ms, max <= 100 ms). The script (`write SERIES VALUE`) prints its commit
time (when its INSERT returned: in autocommit that statement commits) and when its own
broadcast was done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import ExitStack
from typing import Any

from bench.clients import Swarm
from bench.scratch import postgres_database
from bench.targets import ROOT, ProjectTarget

TARGET_MEDIAN, TARGET_MAX = 0.030, 0.100
SCRIPT = [sys.executable, "-m", "bench.oneshot", "write"]


def write(slug: str, value: int) -> None:
    """The one-shot script: one create() in autocommit; prints its times as JSON."""
    started = time.time()
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from metrics.models import Metric, Series
    from streaming.publish.publisher import publisher

    marks: dict[str, float] = {}

    def stamp(execute: Any, sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if sql.lstrip().upper().startswith("INSERT"):
            marks.setdefault("commit", time.time())
        return result

    series = Series.objects.get(slug=slug)
    with connection.execute_wrapper(stamp):
        Metric.objects.create(series=series, timestamp=timezone.now(), value=value)
    marks["saved"] = time.time()
    publisher.flush()
    marks["sent"] = time.time()
    marks["started"] = started
    print(json.dumps(marks), flush=True)


class RelayOnlyTarget(ProjectTarget):
    """This project without Redis: the in-memory layer, the relay delivers every write."""

    def env(self) -> dict[str, str]:
        """Drops REDIS_URL."""
        return {**super().env(), "REDIS_URL": ""}

    def start(self) -> None:
        """Starts the server alone (no redis-server)."""
        redis, self.redis.start = self.redis.start, lambda: self.redis  # type: ignore[method-assign]
        try:
            super().start()
        finally:
            self.redis.start = redis  # type: ignore[method-assign]


async def _runs(target: ProjectTarget, series: str, runs: int) -> list[dict[str, float]]:
    swarm = Swarm("project", target.ws_url, series)
    await swarm.open(1)
    if not swarm.clients:
        raise RuntimeError("the subscriber could not connect")
    client = swarm.clients[0]
    out = []
    for value in range(1, runs + 1):
        proc = await asyncio.create_subprocess_exec(
            *SCRIPT,
            series,
            str(value),
            cwd=ROOT,
            env=target.env(),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await proc.communicate()
        marks = json.loads(stdout.decode().strip().splitlines()[-1])
        await swarm.wait(value, 10.0)
        seen = next((t for t, v in client.trace if v >= value), None)
        out.append({**marks, "seen": seen if seen is not None else float("nan")})
        # Let the server settle between scripts, as between real ones.
        await asyncio.sleep(0.5)
    return out


def measure(mode: str, runs: int, database: str = "sqlite") -> list[dict[str, float]]:
    """Runs `runs` one-shot scripts against a fresh server in `mode`; returns their marks."""
    target = ProjectTarget() if mode == "redis" else RelayOnlyTarget()
    with ExitStack() as stack:
        if database == "postgresql":
            target.database_url = stack.enter_context(postgres_database(f"bench_oneshot_{mode}"))
        target.start()
        stack.callback(target.stop)
        series = f"oneshot-{mode}"
        target.prepare(series)
        return asyncio.run(_runs(target, series, runs))


def summary(marks: list[dict[str, float]]) -> dict[str, Any]:
    """Returns commit-to-subscriber median and max (seconds), and each run's figures."""
    latencies = [m["seen"] - m["commit"] for m in marks]
    return {
        "latencies": latencies,
        "sent": [m["sent"] - m["commit"] for m in marks],
        "saved": [m["saved"] - m["commit"] for m in marks],
        "process": [m["sent"] - m["started"] for m in marks],
        "median": statistics.median(latencies),
        "max": max(latencies),
    }


def lines(mode: str, result: dict[str, Any]) -> list[str]:
    """Returns the printed lines of one mode."""
    ms = ", ".join(f"{x * 1e3:.1f}" for x in result["latencies"])
    sent = ", ".join(f"{x * 1e3:.1f}" for x in result["sent"])
    saved = ", ".join(f"{x * 1e3:.1f}" for x in result["saved"])
    ok = result["median"] <= TARGET_MEDIAN and result["max"] <= TARGET_MAX
    return [
        f"one-shot script, {mode}: commit -> subscriber median {result['median'] * 1e3:.1f} ms,"
        f" max {result['max'] * 1e3:.1f} ms [{'met' if ok else 'NOT MET'}: median <= 30, max"
        " <= 100]",
        f"  runs (ms): {ms}",
        f"  after the commit, create() returned (ms): {saved}; the script's own send was done"
        f" (ms): {sent}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments and runs the modes, or is the script itself (`write`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["write"]:
        write(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="redis,relay")
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    for mode in args.modes.split(","):
        result = summary(measure(mode, args.runs, args.database))
        print("\n".join(lines(f"{mode}, {args.database}", result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
