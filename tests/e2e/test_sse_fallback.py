"""
The dashboard without WebSockets, in chromium against a real daphne: the client falls back
to Server-Sent Events by itself and the chart still goes live.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, open_chart, same_document, week_values
from tests.support.processes import DaphneServer, run_script

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]

NO_WEBSOCKETS = {
    # A browser (or an embedding) without the API at all.
    "absent": "window.WebSocket = undefined;",
    # A policy that refuses to open any (the constructor throws).
    "throws": "window.WebSocket = function () { throw new Error('WebSockets are blocked'); };",
}


def write_from_another_process(redis_url: str) -> None:
    """Adds 6.5 on Thursday of WEEK to `cpu` from an ORM script in a process of its own."""
    run_script(
        f"""
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime.fromisoformat("{noon(WEEK, 3).isoformat()}"),
                              value=6.5)
        """,
        redis_url,
    )


@pytest.mark.parametrize("how", sorted(NO_WEBSOCKETS))
async def test_the_dashboard_goes_live_over_sse_without_websockets(
    page: Page, daphne: DaphneServer, use_redis: str, how: str
):
    """
    Tests that with WebSockets unavailable the page connects over SSE (the indicator says
    so), and a write by another process shows on the chart without a reload.
    """

    def create() -> None:
        series = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
        Metric.objects.create(series=series, timestamp=noon(WEEK, 0), value=1.0)

    await sync_to_async(create)()
    await page.add_init_script(NO_WEBSOCKETS[how])
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    assert await page.evaluate("() => window.streamClient.transport") == "sse"
    indicator = page.locator("#connection-status")
    assert await indicator.get_attribute("data-transport") == "sse"
    assert await chart.values() == week_values(mon=1.0)

    async with same_document(page):
        await asyncio.to_thread(write_from_another_process, use_redis)
        await chart.wait_for_values(week_values(mon=1.0, thu=6.5))
