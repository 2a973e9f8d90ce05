"""Smoke test: a subscriber of a real daphne server sees an ORM write from another process."""

from __future__ import annotations

import pytest

from metrics.models import Series
from tests.support.processes import run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


async def test_orm_script_in_another_process_reaches_subscriber(daphne, use_redis):
    """Tests that Metric.objects.create in a separate script reaches a socket on daphne."""
    from asgiref.sync import sync_to_async

    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="max")
    client = await StreamSubscriber(daphne.ws_url).connect()
    reply = await client.subscribe("metrics.week", series="cpu", week="2026-W48")
    assert reply["response_status"] == 200, reply
    key = reply["data"]["key"]
    assert reply["data"]["payload"]["values"] == [None] * 7

    run_script(
        """
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime(2026, 11, 24, 12, tzinfo=timezone.utc), value=7.5)
        """,
        use_redis,
    )
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 7.5)
    assert client.payload(key)["values"] == [None, 7.5, None, None, None, None, None]
    await client.close()
