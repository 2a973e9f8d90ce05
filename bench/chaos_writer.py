"""
A writer process of the chaos soak (bench/chaos.py): random writes to the chaos series until
it is killed or its time is up, in one of four modes: `orm` (saves and deletes of instances),
`bulk` (bulk_create, bulk_update, queryset update and delete), `raw` (SQL through the
database driver's own connection, bypassing Django) or `mixed` (all three).

Series named "grow-*" only ever get inserts of positive values (their sums never decrease);
"mix-*" series get every kind of write. `python -m bench.chaos_writer MODE SEED RATE DEADLINE
WEEK...` writes until the Unix time DEADLINE, one "." on stdout per committed write and "!"
per failed one.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

MODES = ("orm", "bulk", "raw", "mixed")


class ChaosWriter:
    """One process's random writes over the grow-* and mix-* series of the given weeks."""

    def __init__(self, mode: str, seed: int, weeks: list[str]) -> None:
        from metrics.models import Series
        from metrics.weeks import IsoWeek

        self.mode, self.rng = mode, random.Random(seed)
        series = list(Series.objects.filter(slug__regex=r"^(grow|mix)-"))
        self.grow = [s for s in series if s.slug.startswith("grow-")]
        self.mix = [s for s in series if s.slug.startswith("mix-")]
        self.days = [day for week in weeks for day in IsoWeek.parse(week).days]
        self._raw: Any = None

    def instant(self) -> datetime:
        """Returns a random daytime instant (UTC) in one of the weeks."""
        day = self.rng.choice(self.days)
        hour = timedelta(hours=self.rng.randrange(8, 16), seconds=self.rng.randrange(3600))
        return datetime.combine(day, datetime.min.time(), UTC) + hour

    def value(self) -> float:
        """Returns a positive whole number: sums stay exact in any order of addition."""
        return float(self.rng.randint(1, 99))

    def write(self) -> None:
        """Makes one write in this process's mode."""
        mode = self.rng.choice(MODES[:3]) if self.mode == "mixed" else self.mode
        getattr(self, f"write_{mode}")()

    def write_orm(self) -> None:
        """Creates, updates or deletes one instance."""
        from metrics.models import Metric

        series = self.rng.choice(self.grow + self.mix)
        kind = self.rng.choice(["create", "create", "update", "delete"])
        old = Metric.objects.filter(series__in=self.mix).order_by("?").first()
        if series in self.grow or kind == "create" or old is None:
            Metric.objects.create(series=series, timestamp=self.instant(), value=self.value())
        elif kind == "update":
            old.value, old.timestamp = self.value(), self.instant()
            old.save()
        else:
            old.delete()

    def write_bulk(self) -> None:
        """Makes one bulk call: bulk_create (any series), or bulk_update/update/delete (mix-*)."""
        from metrics.models import Metric

        kind = self.rng.choice(["create", "create", "bulk_update", "update", "delete"])
        picked = list(Metric.objects.filter(series__in=self.mix).order_by("?")[:3])
        if kind == "create" or not picked:
            series = self.rng.choice(self.grow + self.mix)
            rows = [
                Metric(series=series, timestamp=self.instant(), value=self.value())
                for _ in range(self.rng.randint(1, 4))
            ]
            Metric.objects.bulk_create(rows)
        elif kind == "bulk_update":
            for metric in picked:
                metric.value = self.value()
                metric.series = self.rng.choice(self.mix)
            Metric.objects.bulk_update(picked, ["value", "series"])
        elif kind == "update":
            pks = [m.pk for m in picked]
            Metric.objects.filter(pk__in=pks).update(value=self.value(), timestamp=self.instant())
        else:
            Metric.objects.filter(pk__in=[m.pk for m in picked]).delete()

    def raw(self) -> tuple[Any, str]:
        """Returns the driver's own connection (autocommit off) and its placeholder."""
        from django.db import connection

        s = connection.settings_dict
        if self._raw is None:
            if connection.vendor == "sqlite":
                self._raw = sqlite3.connect(s["NAME"], timeout=30, isolation_level="IMMEDIATE")
            else:
                import psycopg

                self._raw = psycopg.connect(
                    host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
                    password=s["PASSWORD"] or None, dbname=s["NAME"],
                )  # fmt: skip
        return self._raw, "?" if connection.vendor == "sqlite" else "%s"

    def write_raw(self) -> None:
        """Inserts (any series), or updates or deletes (mix-*), in SQL through the driver."""
        from django.db import connection

        raw, p = self.raw()
        adapt = connection.ops.adapt_datetimefield_value
        kind = self.rng.choice(["insert", "insert", "update", "delete"])
        mix = ", ".join(str(s.pk) for s in self.mix)
        cursor = raw.cursor()
        try:
            if kind == "insert":
                series = self.rng.choice(self.grow + self.mix)
                cursor.execute(
                    "INSERT INTO metrics_metric (series_id, timestamp, value) "
                    f"VALUES ({p}, {p}, {p})",
                    [series.pk, adapt(self.instant()), self.value()],
                )
            elif kind == "update":
                cursor.execute(
                    f"UPDATE metrics_metric SET value = {p} WHERE id IN (SELECT id FROM "
                    f"metrics_metric WHERE series_id IN ({mix}) ORDER BY random() LIMIT 2)",
                    [self.value()],
                )
            else:
                cursor.execute(
                    "DELETE FROM metrics_metric WHERE id IN (SELECT id FROM metrics_metric "
                    f"WHERE series_id IN ({mix}) ORDER BY random() LIMIT 1)"
                )
            raw.commit()
        except Exception:
            raw.rollback()
            raise
        finally:
            cursor.close()

    def run(self, rate: float, deadline: float) -> None:
        """Writes `rate` times a second until `deadline`, reporting each outcome on stdout."""
        start = time.time()
        done = 0
        while (due := start + done / rate) < deadline:
            time.sleep(max(0.0, due - time.time()))
            try:
                self.write()
                sys.stdout.write(".")
            except Exception as exc:
                # Lock timeouts, deadlocks and races with the other writers: the write is
                # lost, nothing half-done stays (each write is one transaction).
                print(f"write failed: {exc!r}", file=sys.stderr, flush=True)
                sys.stdout.write("!")
            sys.stdout.flush()
            done += 1


def main() -> None:
    """Runs one writer: python -m bench.chaos_writer MODE SEED RATE DEADLINE WEEK [WEEK ...]."""
    import django

    django.setup()
    mode, seed, rate, deadline, *weeks = sys.argv[1:]
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    ChaosWriter(mode, int(seed), weeks).run(float(rate), float(deadline))


if __name__ == "__main__":
    main()
