"""The dashboard's freshness cues and its accessible connection indicator, in chromium."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, open_chart, same_document, week_values
from tests.support.processes import DaphneServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]

# Whether the chart's point `i` has radius `r` (Chart.js animates it towards its target).
RADIUS_IS = """([sel, i, r]) =>
  Chart.getChart(document.querySelector(sel)).getDatasetMeta(0).data[i].options.radius === r"""


@pytest.fixture
def cpu(daphne: DaphneServer) -> Series:
    """Returns the series `cpu` (a line chart: avg), with 5.0 on Tuesday of WEEK."""
    series = Series.objects.create(slug="cpu", name="CPU", aggregation="avg")
    Metric.objects.create(series=series, timestamp=noon(WEEK, 1), value=5.0)
    return series


async def test_chart_says_when_it_changed_and_highlights_the_point(page: Page, cpu: Series):
    """
    Tests that after an update the card reads "updated … ago", that the text moves on as
    time passes, and that the changed point is highlighted for a while, then no longer.
    """
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    label = page.locator("[data-updated]")
    assert (await label.text_content() or "").strip() == "no change since the page loaded"
    async with same_document(page):
        await sync_to_async(Metric.objects.create)(series=cpu, timestamp=noon(WEEK, 3), value=8.0)
        await chart.wait_for_values(week_values(tue=5.0, thu=8.0))
        first = (await label.text_content() or "").strip()
        assert re.fullmatch(r"updated (just now|\d+ s ago)", first), first
        assert await page.get_attribute(chart.selector, "data-fresh") == "3"
        await page.wait_for_function(RADIUS_IS, arg=[chart.selector, 3, 7])
        assert await page.evaluate(RADIUS_IS, [chart.selector, 1, 3])

        await page.wait_for_function(
            "t => document.querySelector('[data-updated]').textContent.trim() !== t", arg=first
        )
        later = (await label.text_content() or "").strip()
        assert re.fullmatch(r"updated \d+ s ago", later), later
        await page.wait_for_function(
            "sel => !document.querySelector(sel).dataset.fresh", arg=chart.selector
        )
        await page.wait_for_function(RADIUS_IS, arg=[chart.selector, 3, 3])


async def test_connection_indicator_is_reachable_and_announced(page: Page, cpu: Series):
    """Tests that the indicator is a polite live status region reached with the Tab key."""
    await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    indicator = page.locator("#connection-status")
    assert await indicator.get_attribute("role") == "status"
    assert await indicator.get_attribute("aria-live") == "polite"
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.id") == "connection-status":
            break
    else:
        raise AssertionError("Tab never reached #connection-status")
    assert await indicator.get_attribute("title") == "Live updates: connected"
