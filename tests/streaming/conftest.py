"""
Fixtures shared by the streaming tests: a series to subscribe to, and for the fault tests a
daphne server on a Redis the test may kill.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from metrics.models import Metric, Series
from streaming.publish.publisher import publisher
from tests.support.processes import DaphneServer
from tests.support.redis_server import RedisServer


@pytest.fixture
def server(transactional_db, own_redis: RedisServer) -> Iterator[DaphneServer]:
    """
    Returns a daphne process using the private Redis of the module's `own_redis` fixture
    (each fault module says how its writers give up).
    """
    process = DaphneServer(own_redis.url).start()
    yield process
    process.stop()


@pytest.fixture
def cpu() -> Series:
    """Returns a public series with one metric on Monday of 2026-W48 (a module may override it)."""
    series = Series.objects.create(slug="cpu", name="CPU", unit="%", aggregation="sum")
    Metric.objects.create(series=series, timestamp=datetime(2026, 11, 23, 9, tzinfo=UTC), value=2.0)
    # Let these writes' own broadcasts (a refresh of the series' keys) pass before any
    # subscribe, so a test sees only the updates of its own writes.
    assert publisher.flush(timeout=10)
    return series
