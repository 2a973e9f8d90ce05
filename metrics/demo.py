"""Demo series and the random-walk values used by seed_demo and simulate."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from metrics.models import Metric, Series

DEMO_SERIES = [
    {"slug": "cpu", "name": "CPU load", "unit": "%", "aggregation": "avg", "is_public": True},
    {
        "slug": "requests",
        "name": "HTTP requests",
        "unit": "req",
        "aggregation": "sum",
        "is_public": True,
    },
    {
        "slug": "temperature",
        "name": "Server room temperature",
        "unit": "°C",
        "aggregation": "max",
        "is_public": True,
    },
    {
        "slug": "queue",
        "name": "Queue depth",
        "unit": "jobs",
        "aggregation": "last",
        "is_public": True,
    },
    {
        "slug": "revenue",
        "name": "Revenue (private)",
        "unit": "EUR",
        "aggregation": "sum",
        "is_public": False,
    },
]
_BASE = {"cpu": 35.0, "requests": 120.0, "temperature": 21.0, "queue": 8.0, "revenue": 400.0}
_SPREAD = {"cpu": 25.0, "requests": 80.0, "temperature": 3.0, "queue": 6.0, "revenue": 300.0}


def demo_value(slug: str, moment: datetime, rng: random.Random) -> float:
    """Returns a plausible value for a demo series: a daily cycle plus noise."""
    hour = moment.hour + moment.minute / 60
    cycle = math.sin((hour - 8) / 24 * 2 * math.pi)
    value = _BASE[slug] + _SPREAD[slug] * (0.6 * cycle + 0.4 * rng.uniform(-1, 1))
    return round(max(value, 0.0), 2)


@transaction.atomic
def seed_demo(*, weeks: int = 4, step_hours: int = 3, seed: int = 48) -> int:
    """(Re)creates the demo series with `weeks` weeks of metrics up to now; returns the count."""
    rng = random.Random(seed)
    # Whole hours of local time: rounding in UTC would put the newest point in last week
    # for up to 30 minutes after Monday midnight in a half-hour zone (India, Newfoundland).
    now = timezone.localtime().replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    start = now - timedelta(weeks=weeks)
    Series.objects.filter(slug__in=[s["slug"] for s in DEMO_SERIES]).delete()
    metrics = []
    for spec in DEMO_SERIES:
        series = Series.objects.create(**spec)
        moment = start
        while moment <= now:
            metrics.append(
                Metric(series=series, timestamp=moment, value=demo_value(series.slug, moment, rng))
            )
            moment += timedelta(hours=step_hours)
    Metric.objects.bulk_create(metrics, batch_size=500)
    return len(metrics)
