"""
Bulk ingest under subscription: 100,000 rows in batches of 1,000 into 10 subscribed keys.

`python -m bench.ingest [--rows 100000] [--batch 1000] [--modes redis,relay]` starts this
project's server (daphne, a fresh SQLite file), subscribes one client to each of 10 series
(this week's key), then one writer process bulk_creates the rows, every batch spread over
the 10 series (one transaction per batch). Each client counts the update frames it
received; the target is at most one per key per batch (so at most rows / batch per key),
and every client must end up holding the last batch's value. Modes as in bench/oneshot.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from bench.clients import Swarm
from bench.oneshot import RelayOnlyTarget
from bench.targets import ROOT, ProjectTarget

KEYS = 10


def write(prefix: str, rows: int, batch: int) -> None:
    """The writer: bulk_create `rows` in batches spread over the series; prints its times."""
    import django

    django.setup()
    from datetime import timedelta

    from django.utils import timezone

    from metrics.models import Metric, Series
    from streaming.publish.publisher import publisher

    series = list(Series.objects.filter(slug__startswith=prefix).order_by("slug"))
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    for start in range(0, rows, batch):
        Metric.objects.bulk_create(
            Metric(
                series=series[i % len(series)],
                timestamp=midnight + timedelta(milliseconds=i),
                value=i,
            )
            for i in range(start + 1, start + batch + 1)
        )
    committed = time.perf_counter() - began
    publisher.flush(30)
    print(json.dumps({"seconds": committed, "flushed": time.perf_counter() - began}), flush=True)


def setup(prefix: str) -> None:
    """Creates the KEYS series `prefix`-0.. aggregated by max."""
    import django

    django.setup()
    from metrics.models import Series

    Series.objects.bulk_create(
        Series(slug=f"{prefix}-{k}", name=f"{prefix} {k}", aggregation="max") for k in range(KEYS)
    )


async def _ingest(target: ProjectTarget, prefix: str, rows: int, batch: int) -> dict[str, Any]:
    swarms = [Swarm("project", target.ws_url, f"{prefix}-{k}") for k in range(KEYS)]
    await asyncio.gather(*(s.open(1) for s in swarms))
    if sum(len(s.clients) for s in swarms) != KEYS:
        raise RuntimeError("a subscriber could not connect")
    await asyncio.sleep(0.5)
    before = [len(s.received) for s in swarms]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.ingest",
        "write",
        prefix,
        str(rows),
        str(batch),
        cwd=ROOT,
        env=target.env(),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await proc.communicate()
    times = json.loads(stdout.decode().strip().splitlines()[-1])
    # Series k's largest value is the last one written to it.
    last = [max(v for v in range(rows - KEYS + 1, rows + 1) if v % KEYS == k) for k in range(KEYS)]
    reached = await asyncio.gather(*(s.wait(v, 30.0) for s, v in zip(swarms, last, strict=True)))
    await asyncio.sleep(1.0)
    frames = [len(s.received) - b for s, b in zip(swarms, before, strict=True)]
    return {**times, "frames": frames, "reached": sum(reached), "batches": rows // batch}


def measure(mode: str, rows: int, batch: int) -> dict[str, Any]:
    """Runs the ingest against a fresh server in `mode`; returns the figures."""
    target = ProjectTarget() if mode == "redis" else RelayOnlyTarget()
    target.start()
    try:
        prefix = f"ingest-{mode}"
        subprocess.run(
            [sys.executable, "-m", "bench.ingest", "setup", prefix],
            cwd=ROOT,
            env=target.env(),
            check=True,
        )
        return asyncio.run(_ingest(target, prefix, rows, batch))
    finally:
        target.stop()


def lines(mode: str, rows: int, r: dict[str, Any]) -> list[str]:
    """Returns the printed lines of one mode."""
    ok = max(r["frames"]) <= r["batches"] and r["reached"] == KEYS
    return [
        f"ingest {rows:,} rows in {r['batches']} batches into {KEYS} subscribed keys, {mode}: "
        f"frames per key max {max(r['frames'])}, min {min(r['frames'])} "
        f"[{'met' if ok else 'NOT MET'}: <= {r['batches']} per key, all {KEYS} hold the last]",
        f"  {rows / r['seconds']:,.0f} rows/s committed ({r['seconds']:.1f} s; flushed at "
        f"{r['flushed']:.1f} s); {r['reached']} of {KEYS} keys hold the last batch",
    ]


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments and runs the modes, or is the writer (`write`) or `setup`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["write"]:
        write(argv[1], int(argv[2]), int(argv[3]))
        return 0
    if argv[:1] == ["setup"]:
        setup(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--modes", default="redis,relay")
    args = parser.parse_args(argv)
    for mode in args.modes.split(","):
        print("\n".join(lines(mode, args.rows, measure(mode, args.rows, args.batch))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
