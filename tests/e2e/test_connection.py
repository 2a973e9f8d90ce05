"""The connection indicator, and catching up after the server comes back."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, open_chart, same_document, wait_for_status, week_values
from tests.support.processes import DaphneServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_indicator_and_catch_up_after_server_restart(page: Page, daphne: DaphneServer):
    """
    Tests that the indicator reads connected, then reconnecting while the server is down,
    then connected again after a restart on the same port, with a write made meanwhile shown.
    """
    series = await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="sum")
    await sync_to_async(Metric.objects.create)(series=series, timestamp=noon(WEEK, 0), value=1.0)
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    assert await chart.values() == week_values(mon=1.0)

    async with same_document(page):
        await asyncio.to_thread(daphne.stop)
        await wait_for_status(page, "reconnecting")
        # Broadcast while nobody listens: only the resubscribe snapshot can bring it.
        await sync_to_async(Metric.objects.create)(
            series=series, timestamp=noon(WEEK, 4), value=9.0
        )
        await asyncio.sleep(1)
        assert await chart.values() == week_values(mon=1.0)
        assert await page.locator("#connection-status").text_content() == "reconnecting"

        await asyncio.to_thread(daphne.start)
        await wait_for_status(page, "connected", timeout=30)
        await chart.wait_for_values(week_values(mon=1.0, fri=9.0))


async def test_series_deleted_while_disconnected_shows_notice(page: Page, daphne: DaphneServer):
    """Tests that a page whose series was deleted while the server was down says so after."""
    series = await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="sum")
    await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    notice = page.locator("[data-gone]")
    async with same_document(page):
        await asyncio.to_thread(daphne.stop)
        await wait_for_status(page, "reconnecting")
        await sync_to_async(series.delete)()
        await asyncio.to_thread(daphne.start)
        await wait_for_status(page, "connected", timeout=30)
        await notice.wait_for(state="visible")
    assert (await notice.text_content() or "").strip() == "This series was deleted."
    assert await page.locator("[data-error]").is_hidden()
