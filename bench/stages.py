"""
Where a broadcast's time goes in the writer process: commit to PUBLISH, stage by stage.

`python -m bench.stages [WRITES] [--rate R] [--postgresql]` saves WRITES metrics (200) at R
per second (50), one transaction each, against a private redis-server and a fresh SQLite
file (or a scratch PostgreSQL database, bench/scratch.py). It prints each stage's p50 and
p99: the publisher thread's wake-up after the commit, the snapshot (BEGIN, the clock read
that is the version, COMMIT: the read minus the payload; on PostgreSQL the stamp too), the
payload read inside it, the message's encoding, and group_send until Redis acknowledged the
PUBLISH (total: commit to that acknowledgement).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.scratch import postgres_database
from tests.support.redis_server import RedisServer

STAGES = ("wake", "snapshot", "payload", "encode", "send", "total")


def timed(record: list[float], fn: Callable[..., Any]) -> Callable[..., Any]:
    """Returns `fn`, appending each call's duration in seconds to `record`."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - started)

    return wrapper


def measure(writes: int, rate: float) -> dict[str, list[float]]:
    """Runs the writes and returns each stage's durations in seconds."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from metrics.models import Metric, Series
    from streaming import protocol
    from streaming.publish import publisher as publish
    from streaming.publish import snapshot
    from streaming.registry import get_stream

    call_command("migrate", verbosity=0)
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    committed = [0.0]
    read_each = snapshot.read_each

    def read(*args: Any) -> Any:
        started = time.perf_counter()
        times["wake"].append(started - committed[0])
        paid = len(times["payload"])
        try:
            return read_each(*args)
        finally:
            payload = sum(times["payload"][paid:])
            times["snapshot"].append(time.perf_counter() - started - payload)

    snapshot.read_each = read  # type: ignore[assignment]
    protocol.update_message = timed(times["encode"], protocol.update_message)  # type: ignore[assignment]
    stream = get_stream("metrics.week")
    object.__setattr__(stream, "payload", timed(times["payload"], stream.payload))
    send_all = publish.send_all

    def send(loop: Any, outgoing: Any) -> None:
        started = time.perf_counter()
        send_all(loop, outgoing)
        now = time.perf_counter()
        times["send"].append(now - started)
        times["total"].append(now - committed[0])

    publish.send_all = send  # type: ignore[assignment]

    series = Series.objects.create(slug="stages", name="stages", aggregation="max")
    publish.publisher.flush()
    for values in times.values():
        values.clear()
    for i in range(writes + 1):
        with transaction.atomic():
            transaction.on_commit(lambda: committed.__setitem__(0, time.perf_counter()))
            Metric.objects.create(series=series, timestamp=timezone.now(), value=i)
        publish.publisher.flush()
        time.sleep(1 / rate)
    # The first write pays for imports and connections: it is not counted.
    return {stage: values[1:] for stage, values in times.items()}


def main() -> None:
    """Parses the arguments, runs the writes against a private Redis, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("writes", type=int, nargs="?", default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--postgresql", action="store_true", help="a scratch PostgreSQL database")
    args = parser.parse_args()
    redis = RedisServer()
    redis.start()
    try:
        with contextlib.ExitStack() as stack:
            if args.postgresql:
                url = stack.enter_context(postgres_database("bench_stages"))
            else:
                url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-stages-')}/db.sqlite3"
            os.environ.update(
                DJANGO_SETTINGS_MODULE="bench.settings", REDIS_URL=redis.url, DATABASE_URL=url
            )
            times = measure(args.writes, args.rate)
            from django.db import connections

            connections.close_all()
    finally:
        redis.stop()
    # Means add up to the total's mean; medians of skewed stages need not.
    print(f"{'stage':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for stage in STAGES:
        values = sorted(times[stage])
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        p50, mean = statistics.median(values) * 1e3, statistics.mean(values) * 1e3
        print(f"{stage:>8} {p50:8.3f} {p99 * 1e3:8.3f} {mean:8.3f}")


if __name__ == "__main__":
    main()
