"""
The write path stays honest: a broadcast that cannot be made (Redis down) never makes the
caller's committed save() raise, and is logged with its key; a script that exits right
after save() still delivers its broadcast (the publisher flushes at exit).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from metrics.models import Metric, Series
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.conftest import redis_settings
from tests.support.processes import run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

MONDAY = datetime(2026, 11, 23, 12, tzinfo=UTC)
W48 = IsoWeek(2026, 48)


def wait_for_record(caplog: pytest.LogCaptureFixture, *texts: str, timeout: float = 15) -> str:
    """Returns the first captured WARNING-or-worse message containing all of `texts`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            message = record.getMessage()
            if record.levelno >= logging.WARNING and all(t in message for t in texts):
                return message
        time.sleep(0.05)
    raise AssertionError(f"no log record mentions {texts!r}: {caplog.messages}")


def test_with_redis_down_a_write_commits_and_the_failure_is_logged_with_its_key(
    settings, redis_server, caplog
):
    """Tests that create() with Redis stopped returns, keeps its row and logs the key."""
    layers, streaming = redis_settings(redis_server.url)
    settings.CHANNEL_LAYERS = layers
    # Give up within a second, so the test's end does not wait out the default 30 s.
    settings.STREAMING = {**streaming, "RETRY_SECONDS": 1.0}
    cpu = Series.objects.create(slug="cpu", name="CPU")
    publisher.flush()
    redis_server.stop()

    metric = Metric.objects.create(series=cpu, timestamp=MONDAY, value=1.0)
    assert Metric.objects.filter(pk=metric.pk, value=1.0).exists()
    key = week_key(cpu.pk, W48)
    wait_for_record(caplog, key, "failed")
    wait_for_record(caplog, key, "gave up")

    # The same inside a transaction: the broadcast is due after commit, and still quiet.
    with transaction.atomic():
        Metric.objects.create(series=cpu, timestamp=MONDAY, value=2.0)
    assert Metric.objects.filter(series=cpu).count() == 2
    assert publisher.flush(timeout=10)


async def test_a_script_exiting_right_after_save_still_delivers(daphne, use_redis):
    """Tests that a script calling sys.exit() right after create() is seen by a subscriber."""
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    client = await StreamSubscriber(daphne.ws_url).connect()
    reply = await client.subscribe("metrics.week", series="cpu", week=str(W48))
    assert reply["response_status"] == 200, reply
    key = reply["data"]["key"]

    run_script(
        """
        import sys
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime(2026, 11, 24, 12, tzinfo=timezone.utc), value=3)
        sys.exit(0)
        """,
        use_redis,
    )
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 3.0)
    assert client.payload(key)["values"] == [None, 3.0, None, None, None, None, None]
    await client.close()
