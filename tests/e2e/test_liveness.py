"""
Dead connections a socket does not report: a frozen server (SIGSTOP) is noticed by its
missing heartbeats, and a page back from the back/forward cache catches up, in chromium.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from playwright.async_api import Browser, Page

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, open_chart, same_document, wait_for_status, week_values
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.processes import DaphneServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]

KEEPALIVE_SECONDS = 1
# docs/protocol.md: a client hearing nothing for 2.5 intervals drops the connection. The
# waits below allow that bound plus room for a loaded machine.
STALE_BOUND = 2.5 * KEEPALIVE_SECONDS


@pytest.fixture
def daphne(transactional_db, use_redis: str) -> Iterator[DaphneServer]:
    """Returns a daphne process that sends heartbeats every KEEPALIVE_SECONDS."""
    server = DaphneServer(use_redis, STREAMING_KEEPALIVE_SECONDS=str(KEEPALIVE_SECONDS)).start()
    yield server
    server.stop()


@pytest.fixture
def cpu(daphne: DaphneServer) -> Series:
    """Returns the series `cpu`, with 1.0 on Monday of WEEK."""
    series = Series.objects.create(slug="cpu", name="CPU", aggregation="sum")
    Metric.objects.create(series=series, timestamp=noon(WEEK, 0), value=1.0)
    return series


async def add_metric(series: Series, weekday: int, value: float) -> None:
    """Creates a metric at noon of WEEK's day `weekday`, from the test process."""
    await sync_to_async(Metric.objects.create)(
        series=series, timestamp=noon(WEEK, weekday), value=value
    )


# Notes when (by the page's clock) the indicator first reads reconnecting.
WATCH_STALE = """() => {
  const indicator = document.getElementById('connection-status');
  new MutationObserver(() => {
    if (indicator.dataset.status === 'reconnecting' && !window.staleAt) window.staleAt = Date.now();
  }).observe(indicator, {attributes: true, attributeFilter: ['data-status']});
}"""


async def test_frozen_server_is_noticed_and_the_page_catches_up(
    page: Page, daphne: DaphneServer, cpu: Series
):
    """
    Tests that a server frozen by SIGSTOP (its sockets stay open, silent) turns the
    indicator from connected to reconnecting for missed heartbeats within the documented
    bound, and that after SIGCONT the page shows writes made during and after the freeze.
    """
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    await page.wait_for_function("() => window.streamClient.keepalive === 1000")
    assert daphne.process is not None
    pid = daphne.process.pid
    await page.evaluate(WATCH_STALE)
    async with same_document(page):
        os.kill(pid, signal.SIGSTOP)
        try:
            await wait_for_status(page, "reconnecting", timeout=STALE_BOUND + 5)
            indicator = page.locator("#connection-status")
            assert await indicator.get_attribute("data-reason") == "stale"
            # Dropped by the rule, not before: the last frame came at least the bound ago.
            silent = await page.evaluate("() => window.staleAt - window.streamClient.lastFrameAt")
            assert silent >= STALE_BOUND * 1000, silent
            await add_metric(cpu, 4, 9.0)
            await asyncio.sleep(1)
            assert await chart.values() == week_values(mon=1.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        await wait_for_status(page, "connected", timeout=30)
        await chart.wait_for_values(week_values(mon=1.0, fri=9.0))
        await add_metric(cpu, 2, 4.0)
        await chart.wait_for_values(week_values(mon=1.0, wed=4.0, fri=9.0))


# Notes a restore from the cache, and every reason the indicator gives.
WATCH_RESTORE = """() => {
  addEventListener('pageshow', (e) => { window.restoredFromCache = e.persisted; });
  window.reasons = [];
  const indicator = document.getElementById('connection-status');
  new MutationObserver(() => reasons.push(indicator.dataset.reason))
    .observe(indicator, {attributes: true, attributeFilter: ['data-reason']});
}"""


@pytest_asyncio.fixture(loop_scope="session")
async def cached_page(browser: Browser, daphne: DaphneServer) -> AsyncIterator[Page]:
    """
    Returns a page of a second chromium with the back/forward cache on: Playwright turns it
    off by default (--disable-back-forward-cache), and the session's browser keeps that.
    """
    with_cache = await browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-back-forward-cache"],
    )
    context = await with_cache.new_context(base_url=daphne.http_url)
    context.set_default_timeout(15_000)
    yield await context.new_page()
    await with_cache.close()


async def test_page_restored_from_bfcache_shows_writes_made_away(cached_page: Page, cpu: Series):
    """
    Tests that a page left for another one and restored from the back/forward cache (same
    document, no reload) reconnects and shows a write made while it was away.
    """
    page = cached_page
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    await page.evaluate(WATCH_RESTORE)
    async with same_document(page):
        await page.goto("/healthz")
        await add_metric(cpu, 3, 7.0)
        # A page restored from the cache fires pageshow, not load.
        await page.go_back(wait_until="commit")
        await page.wait_for_function("() => window.restoredFromCache === true")
        await wait_for_status(page, "connected")
        await chart.wait_for_values(week_values(mon=1.0, thu=7.0))
    # The client closed its socket on leaving (pagehide) and reopened it on return.
    assert "suspended" in await page.evaluate("() => window.reasons")
