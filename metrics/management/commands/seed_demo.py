"""`manage.py seed_demo`: (re)creates the demo series with weeks of data up to today."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from metrics.demo import DEMO_SERIES, seed_demo


class Command(BaseCommand):
    """Deletes and recreates the demo series, so the current week is never empty."""

    help = "(Re)create the demo series with a few weeks of metrics up to now."

    def add_arguments(self, parser: CommandParser) -> None:
        """Adds --weeks."""
        parser.add_argument("--weeks", type=int, default=4, help="Weeks of history (default 4).")

    def handle(self, *args: Any, weeks: int, **options: Any) -> None:
        """Seeds and reports what it made."""
        count = seed_demo(weeks=weeks)
        slugs = ", ".join(s["slug"] for s in DEMO_SERIES)
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {count} metrics over {weeks} weeks for {slugs}.")
        )
