"""
The week's read (metrics.selectors.series_week_by_pk, every broadcast's payload) as a day
fills up: the covering index of Metric.Meta against the (series, timestamp) index it replaced.

`python -m bench.week_read [--databases sqlite,postgresql] [--rows 200,2000,10000]` migrates
two scratch databases of each kind, gives one the old index instead, and fills both alike:
three series written in turn, ROWS rows each into today and as many again into each of the
four weeks before (a week is then a fifth of a series' rows, as in a database with history).
It times the read of one series' week, alternating between the two databases, and prints
each side's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta

from bench.scratch import measure_on_two, postgres_available

READS = 300
HISTORY_WEEKS = 4
SIDES = {"covering": "default", "plain": "off"}


def measure(sizes: list[int]) -> dict[str, dict[str, float]]:
    """Fills both databases up to each size in turn; returns {size: {side: median ms}}."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from metrics.models import Metric, Series
    from metrics.selectors import series_week_by_pk
    from metrics.weeks import IsoWeek

    for alias in SIDES.values():
        call_command("migrate", database=alias, verbosity=0)
    with connections["off"].cursor() as cursor:
        cursor.execute("DROP INDEX metric_series_ts_cover")
        cursor.execute("CREATE INDEX metric_series_ts ON metrics_metric (series_id, timestamp)")
    now = timezone.now()
    week = IsoWeek.of(now)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    series = {
        alias: [
            Series.objects.using(alias).create(slug=f"s{i}", name="s", aggregation="max")
            for i in range(3)
        ]
        for alias in SIDES.values()
    }
    out: dict[str, dict[str, float]] = {}
    written = 0
    for size in sizes:
        for alias in SIDES.values():
            step = timedelta(days=1) / max(sizes)
            rows = [
                Metric(series=s, timestamp=day_start - timedelta(weeks=w) + step * i, value=i % 97)
                for i in range(written, size)
                for w in range(HISTORY_WEEKS + 1)
                for s in series[alias]
            ]
            Metric.objects.using(alias).bulk_create(rows, batch_size=1_000)
            connection = connections[alias]
            with connection.cursor() as cursor:
                # As autovacuum leaves a table: statistics, and on PostgreSQL the visibility
                # map that lets a scan answer from the index alone.
                vacuum = "VACUUM " if connection.vendor == "postgresql" else ""
                cursor.execute(f"{vacuum}ANALYZE")
        written = size
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for i in range(READS + 1):
            for side, alias in SIDES.items() if i % 2 else reversed(SIDES.items()):
                began = time.perf_counter()
                series_week_by_pk(pk=series[alias][1].pk, week=week, using=alias)
                if i:
                    times[side].append(time.perf_counter() - began)
        out[str(size)] = {side: statistics.median(v) * 1e3 for side, v in times.items()}
    return out


def run(vendor: str, sizes: list[int]) -> dict[str, dict[str, float]]:
    """Measures on two fresh databases of `vendor` in a child process; returns its figures."""
    argv = ["bench.week_read", "measure", *map(str, sizes)]
    figures: dict[str, dict[str, float]] = measure_on_two(vendor, "week", argv, timeout=900)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments and runs each database, or is the measuring child (`measure`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["measure"]:
        print(json.dumps(measure([int(n) for n in argv[1:]])), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--rows", default="200,2000,10000")
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.rows.split(","))
    for vendor in args.databases.split(","):
        if vendor == "postgresql" and not postgres_available():
            print("week read, postgresql: no server at BENCH_POSTGRES_URL; skipped")
            continue
        for size, sides in run(vendor, sizes).items():
            ratio = sides["plain"] / sides["covering"]
            print(
                f"week read, {vendor}, {int(size):,} rows a day: covering index "
                f"{sides['covering']:.3f} ms, (series, timestamp) index {sides['plain']:.3f} ms "
                f"({ratio:.1f}x)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
