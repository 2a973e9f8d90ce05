"""`manage.py simulate`: writes random demo values at a steady rate until stopped."""

import random
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from metrics.demo import DEMO_SERIES, demo_value
from metrics.models import Metric, Series
from streaming.publish.publisher import publisher


class Command(BaseCommand):
    """Creates metrics for the demo series, `--rate` per second, printing progress."""

    help = "Write random values for the demo series at a chosen rate (Ctrl-C to stop)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Adds --rate, --series and --count."""
        parser.add_argument(
            "--rate", type=float, default=2.0, help="Writes per second (default 2)."
        )
        parser.add_argument(
            "--series",
            default=",".join(s["slug"] for s in DEMO_SERIES if s["is_public"]),
            help="Comma-separated series slugs (default: the public demo series).",
        )
        parser.add_argument(
            "--count", type=int, default=0, help="Stop after this many writes (0: never)."
        )

    def handle(self, *args: Any, rate: float, series: str, count: int, **options: Any) -> None:
        """Writes until --count is reached or Ctrl-C, then waits for the last broadcasts."""
        if rate <= 0:
            raise CommandError("--rate must be positive.")
        slugs = [s.strip() for s in series.split(",") if s.strip()]
        targets = list(Series.objects.filter(slug__in=slugs))
        missing = set(slugs) - {s.slug for s in targets}
        if missing:
            raise CommandError(
                f"Unknown series: {', '.join(sorted(missing))}. Run `manage.py seed_demo`."
            )
        rng = random.Random()
        written, started = 0, time.monotonic()
        self.stdout.write(f"Writing {rate:g}/s to {', '.join(slugs)}; Ctrl-C to stop.")
        try:
            while not count or written < count:
                target = targets[written % len(targets)]
                now = timezone.now()
                Metric.objects.create(
                    series=target, timestamp=now, value=demo_value(target.slug, now, rng)
                )
                written += 1
                if written % max(1, int(rate)) == 0:
                    self.stdout.write(f"\r{written} writes, last {target.slug}", ending="")
                    self.stdout.flush()
                time.sleep(max(0.0, started + written / rate - time.monotonic()))
        except KeyboardInterrupt:
            self.stdout.write("")
        publisher.flush(timeout=5)
        self.stdout.write(self.style.SUCCESS(f"\nStopped after {written} writes."))
