"""
The cost of the database capture: the same build with its triggers and without them.

`python -m bench.capture [--databases sqlite,postgresql] [--saves 400] [--bulks 15]`
migrates two scratch databases of each kind, drops the capture triggers from one
(bench.scratch.drop_capture) and, in one process, alternates the same writes between them:
one create() per transaction (autocommit), one save() of an existing row, 100 create()
in one transaction, and bulk_create() of 1,000 rows. Alternating puts both sides under the
same load from elsewhere. No channel layer is configured and no server runs, so the
broadcaster sends nothing on either side: what differs is the triggers' work inside the
writer's transaction. Prints each side's median and the ratio against the targets
(save <= 1.15x, bulk <= 1.25x).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.scratch import drop_capture, measure_on_two, postgres_available

BULK = 1_000
ATOMIC = 100
TARGETS = {"create": 1.15, "save": 1.15, "atomic_creates": 1.15, "bulk_create": 1.25}


def measure(saves: int, bulks: int) -> dict[str, dict[str, list[float]]]:
    """Runs the writes alternately on "default" (capture on) and "off"; returns durations."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from metrics.models import Metric, Series

    for alias in ("default", "off"):
        call_command("migrate", database=alias, verbosity=0)
    dropped = drop_capture("off")
    assert dropped, "no capture trigger was installed"
    sides = {"on": "default", "off": "off"}
    series = {
        side: Series.objects.using(alias).create(slug="capture", name="c", aggregation="max")
        for side, alias in sides.items()
    }
    start = timezone.now()
    times: dict[str, dict[str, list[float]]] = {s: {k: [] for k in TARGETS} for s in sides}
    existing = {side: Metric(series=series[side], timestamp=start, value=0) for side in sides}
    for side, alias in sides.items():
        existing[side].save(using=alias)

    def timed(side: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # As timeit does: a collection the writes' garbage triggers would land on whichever
        # side crossed the threshold (a 1,000-row bulk_create allocates well past it). With
        # the collector off, it runs at the next allocation, outside the timing.
        gc.disable()
        try:
            began = time.perf_counter()
            fn(*args, **kwargs)
            times[side][what].append(time.perf_counter() - began)
        finally:
            gc.enable()

    counter = 0
    # One untimed round first: connections, statement caches.
    for round_ in range(saves + 1):
        counter += 1
        for side, alias in sides.items() if round_ % 2 else reversed(sides.items()):
            at = start + timedelta(seconds=counter)
            manager = Metric.objects.db_manager(alias)
            timed(side, "create", manager.create, series=series[side], timestamp=at, value=1)
            metric = existing[side]
            metric.value = counter
            timed(side, "save", metric.save, using=alias)

    def creates(alias: str, side: str, base: int) -> None:
        with transaction.atomic(using=alias):
            for i in range(ATOMIC):
                at = start + timedelta(minutes=base, microseconds=i)
                Metric.objects.db_manager(alias).create(series=series[side], timestamp=at, value=i)

    for round_ in range(bulks + 1):
        for side, alias in sides.items() if round_ % 2 else reversed(sides.items()):
            counter += 1
            rows = [
                Metric(
                    series=series[side],
                    timestamp=start + timedelta(hours=counter, seconds=i),
                    value=i,
                )
                for i in range(BULK)
            ]
            timed(side, "bulk_create", Metric.objects.db_manager(alias).bulk_create, rows)
            timed(side, "atomic_creates", creates, alias, side, counter)
    return {side: {what: v[1:] for what, v in kinds.items()} for side, kinds in times.items()}


def run(vendor: str, saves: int, bulks: int) -> dict[str, Any]:
    """Measures on two fresh databases of `vendor` in a child process; returns its figures."""
    times = measure_on_two(
        vendor, "capture", ["bench.capture", "measure", str(saves), str(bulks)], timeout=600
    )
    figures: dict[str, Any] = {"vendor": vendor}
    for what, limit in TARGETS.items():
        on_ms = statistics.median(times["on"][what]) * 1e3
        off_ms = statistics.median(times["off"][what]) * 1e3
        figures[what] = {"on_ms": on_ms, "off_ms": off_ms, "ratio": on_ms / off_ms, "limit": limit}
    return figures


def lines(figures: dict[str, Any]) -> list[str]:
    """Returns the printed lines of one database's figures."""
    out = []
    for what, limit in TARGETS.items():
        f = figures[what]
        label = {
            "bulk_create": f"bulk_create of {BULK:,} rows",
            "atomic_creates": f"{ATOMIC} create() in one transaction",
        }.get(what, f"one {what}()")
        mark = "met" if f["ratio"] <= limit else "NOT MET"
        out.append(
            f"capture cost, {figures['vendor']}, {label}: {f['on_ms']:.3f} ms vs "
            f"{f['off_ms']:.3f} ms off = {f['ratio']:.2f}x [{mark}: <= {limit:.2f}x]"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments and runs each database, or is the measuring child (`measure`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["measure"]:
        print(json.dumps(measure(int(argv[1]), int(argv[2]))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--saves", type=int, default=400)
    parser.add_argument("--bulks", type=int, default=15)
    args = parser.parse_args(argv)
    for vendor in args.databases.split(","):
        if vendor == "postgresql" and not postgres_available():
            print("capture cost, postgresql: no server at BENCH_POSTGRES_URL; skipped")
            continue
        print("\n".join(lines(run(vendor, args.saves, args.bulks))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
