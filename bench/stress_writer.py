"""
A writer process of the convergence stress run (bench/stress.py): random creates, updates,
moves, deletes, bulk writes, rolled-back savepoints, series edits and writes by "another
program" (the database driver, no Django) over three keys.

`python -m bench.stress_writer SEED COUNT` makes COUNT writes and prints one JSON record per
write (["write"]) and per key it changed (["seen", commit time, key, clock before it + 1,
the write's kind]).
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

STREAM = "metrics.week"
WEEKS = ("2026-W48", "2026-W49")
# Three keys: series a in two weeks (sum), series b in one week (last value).
KEYS = (("stress-a", WEEKS[0]), ("stress-a", WEEKS[1]), ("stress-b", WEEKS[0]))
AGGREGATIONS = {"stress-a": "sum", "stress-b": "last"}


class Writer:
    """One writer process's random writes; each committed write reports its keys."""

    def __init__(self, seed: int) -> None:
        from metrics.models import Series

        self.rng = random.Random(seed)
        self.series = {s.slug: s for s in Series.objects.filter(slug__in=AGGREGATIONS)}
        self.held: list[Any] = []
        self.last_kind = ""

    def at(self, pair: tuple[str, str]) -> tuple[Any, datetime]:
        """Returns a series and a random instant in the key's week (daytime UTC)."""
        from metrics.weeks import IsoWeek

        day = self.rng.choice(IsoWeek.parse(pair[1]).days)
        hour = timedelta(hours=self.rng.randrange(8, 16), minutes=self.rng.randrange(60))
        return self.series[pair[0]], datetime.combine(day, datetime.min.time(), UTC) + hour

    def value(self) -> float:
        """Returns a whole number: sums stay exact whatever the order of addition."""
        return float(self.rng.randint(1, 99))

    def pick(self, count: int = 1) -> list[Any]:
        """Returns up to `count` random existing metrics of the stress series."""
        from metrics.models import Metric

        rows = Metric.objects.filter(series__slug__in=AGGREGATIONS).order_by("?")
        return list(rows[:count])

    def key_of(self, metric: Any) -> tuple[str, str]:
        """Returns the (slug, week) a metric is in."""
        from metrics.weeks import IsoWeek

        slug = next(s for s, obj in self.series.items() if obj.pk == metric.series_id)
        return slug, str(IsoWeek.of(metric.timestamp))

    def write(self) -> set[tuple[str, str]]:
        """Makes one random write; returns the keys it changed."""
        from django.db import transaction

        from metrics.models import Metric

        kind = self.last_kind = self.rng.choices(
            ["create", "update", "move", "delete", "bulk", "savepoint", "series", "foreign"],
            weights=[26, 18, 18, 12, 10, 6, 2, 8],
        )[0]
        target = self.rng.choice(KEYS)
        picked = self.pick(self.rng.randint(1, 4) if kind == "bulk" else 1)
        if kind == "foreign":
            return self.foreign(picked, target)
        if kind == "create" or not picked:
            series, ts = self.at(target)
            Metric.objects.create(series=series, timestamp=ts, value=self.value())
            return {target}
        metric, old = picked[0], {self.key_of(m) for m in picked}
        if kind in ("update", "move") and self.held and self.rng.random() < 0.5:
            # An instance loaded writes ago: others may have moved or deleted its row since.
            metric = self.held.pop(self.rng.randrange(len(self.held)))
            old = {self.key_of(metric)}
        self.held = (self.held + picked)[-8:]
        if kind == "update":
            metric.value = self.value()
            metric.save()
            return old
        if kind == "move":
            metric.series, metric.timestamp = self.at(target)
            with transaction.atomic():
                metric.save()
            return old | {target}
        if kind == "delete":
            # A row another writer deleted meanwhile: nothing is written.
            deleted, _ = metric.delete()
            return old if deleted else set()
        if kind == "series":
            series = self.series[self.rng.choice(list(AGGREGATIONS))]
            series.unit = self.rng.choice(["", "ms", "%"])
            series.save(update_fields=["unit"])
            return {pair for pair in KEYS if pair[0] == series.slug}
        if kind == "savepoint":
            with transaction.atomic():
                series, ts = self.at(target)
                Metric.objects.create(series=series, timestamp=ts, value=self.value())
                try:
                    with transaction.atomic():
                        metric.delete()
                        raise _Undo
                except _Undo:
                    pass
            return {target}
        changed = self.bulk(picked, target)
        return set() if _NOTHING in changed else changed | old

    def foreign(self, picked: list[Any], target: tuple[str, str]) -> set[tuple[str, str]]:
        """
        Writes as a program that is not Django would: its own driver and connection, no
        signals. Inserts a row, or moves one; returns the keys it changed.
        """
        from metrics.models import Metric
        from tests.support.foreign import run_sql

        series, ts = self.at(target)
        table = Metric._meta.db_table
        if picked and self.rng.random() < 0.5:
            # Series and timestamp both: rows stay within the three keys the run watches.
            sql = f"UPDATE {table} SET series_id = %s, timestamp = %s WHERE id = %s"
            params = [series.pk, ts, picked[0].pk]
            changed = {target, self.key_of(picked[0])}
        else:
            sql = f"INSERT INTO {table} (series_id, timestamp, value) VALUES (%s, %s, %s)"
            params, changed = [series.pk, ts, self.value()], {target}
        (count,) = run_sql([(sql, params)])
        # A row another writer deleted meanwhile: nothing was written.
        return changed if count else set()

    def bulk(self, picked: list[Any], target: tuple[str, str]) -> set[tuple[str, str]]:
        """Makes one random bulk write over the picked metrics; returns the new keys."""
        from metrics.models import Metric

        pks = [m.pk for m in picked]
        choice = self.rng.randrange(4)
        # Rows other writers deleted meanwhile are not written: report only real writes.
        if choice == 0:
            if not Metric.objects.filter(pk__in=pks).update(value=self.value()):
                return {_NOTHING}
        elif choice == 1:
            series, ts = self.at(target)
            if not Metric.objects.filter(pk__in=pks).update(series=series, timestamp=ts):
                return {_NOTHING}
            return {target}
        elif choice == 2:
            for metric in picked:
                metric.series, metric.timestamp = self.at(target)
            if not Metric.objects.bulk_update(picked, ["series", "timestamp"]):
                return {_NOTHING}
            return {target}
        else:
            Metric.objects.filter(pk__in=pks).delete()
        return set()

    def report(self, kind: str, *fields: Any) -> None:
        """Prints one JSON record for the run to collect."""
        print(json.dumps([kind, *fields]))

    def run(self, count: int) -> None:
        """Makes `count` writes, reporting after each the version its keys had just then."""
        from django.db import IntegrityError, OperationalError

        from metrics.streams import week_key
        from metrics.weeks import IsoWeek
        from streaming.publish.snapshot import snapshot

        for _ in range(count):
            # The clock before this write: its commit's version is above it, so a state
            # with a version above it was read after the write began.
            with snapshot(None) as before:
                version = before + 1
            try:
                changed = self.write()
            except (IntegrityError, OperationalError):
                # Races any concurrent client meets, and loses, with nothing committed: two
                # writers re-inserting the same deleted row from stale instances, or a
                # deadlock between bulk writes locking rows in another order (PostgreSQL).
                changed = set()
            committed = time.time()
            self.report("write")
            for slug, week in changed:
                key = week_key(self.series[slug].pk, IsoWeek.parse(week))
                self.report("seen", committed, key, version, self.last_kind)


# Returned by bulk() when its write matched no row.
_NOTHING = ("", "")


class _Undo(Exception):
    """Rolls a savepoint back."""


def main() -> None:
    """Runs one writer: python -m bench.stress_writer SEED COUNT."""
    import django

    django.setup()
    seed, count = (int(a) for a in sys.argv[1:3])
    Writer(seed).run(count)


if __name__ == "__main__":
    main()
