"""Fixtures shared by the fault tests: a daphne server on a Redis the test may kill."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
