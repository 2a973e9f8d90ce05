"""
Shared fixtures. Anything about crossing processes uses a real Redis: REDIS_URL if given,
else a private redis-server this suite starts. Without one, those tests fail, never skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from settings.test import KEEPALIVE_SECONDS
from streaming.conf import DEFAULTS, streaming_settings
from streaming.publish.publisher import publisher
from tests.support.processes import DaphneServer
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Returns the URL of a real Redis, starting a private one unless REDIS_URL is set."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    try:
        server = RedisServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server.url
    server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Returns a private redis-server of this test's own, which it may kill and restart."""
    try:
        server = RedisServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


def redis_settings(url: str) -> tuple[dict, dict]:
    """Returns CHANNEL_LAYERS and STREAMING that broadcast through the Redis at `url`."""
    from settings.base import channel_settings

    return channel_settings(url)


@pytest.fixture
def use_redis(settings, redis_url: str) -> str:
    """Makes this process broadcast through the real Redis; returns its URL."""
    settings.CHANNEL_LAYERS, settings.STREAMING = redis_settings(redis_url)
    return redis_url


@pytest.fixture(scope="session", autouse=True)
def _keepalive_off_by_default() -> Iterator[None]:
    """
    Makes the sockets' heartbeat default to settings.test's (off) also in tests that replace
    STREAMING whole, so a test reading a socket sees only the frames it expects.
    """
    saved = DEFAULTS["KEEPALIVE_SECONDS"]
    DEFAULTS["KEEPALIVE_SECONDS"] = KEEPALIVE_SECONDS
    streaming_settings.reload()
    yield
    DEFAULTS["KEEPALIVE_SECONDS"] = saved
    streaming_settings.reload()


@pytest.fixture(scope="session", autouse=True)
def _release_publisher_connections(django_db_setup) -> Iterator[None]:
    """Closes the sender thread's and async tests' connections before the database is dropped."""
    yield
    publisher.close_connections()
    # Async tests' ORM calls run in asgiref's shared sync thread: close its connections too.
    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def _drain_publisher() -> Iterator[None]:
    """Waits for this test's broadcasts, so none leaks into the next test."""
    yield
    publisher.flush(timeout=10)


@pytest.fixture
def daphne(transactional_db, use_redis: str) -> Iterator[DaphneServer]:
    """Returns a daphne process serving the test database through the real Redis."""
    server = DaphneServer(use_redis).start()
    yield server
    server.stop()
