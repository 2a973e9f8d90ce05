"""Reading live charts in the browser, and proving a page changed without a reload."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from metrics.weeks import IsoWeek

WEEK = IsoWeek(2026, 48)

_DATA = (
    "sel => { const c = Chart.getChart(document.querySelector(sel)); return c ? c.data : null; }"
)
_DATA_IS = """([sel, expected]) => {
  const c = Chart.getChart(document.querySelector(sel));
  return !!c && JSON.stringify(c.data.datasets[0].data) === JSON.stringify(expected);
}"""


def noon(week: IsoWeek, weekday: int) -> datetime:
    """Returns 12:00 UTC on the week's day `weekday` (0 = Monday): that day in any zone."""
    return datetime.combine(
        week.monday + timedelta(days=weekday), datetime.min.time(), UTC
    ).replace(hour=12)


def week_values(**by_day: float) -> list[float | None]:
    """Returns a week's seven values, e.g. week_values(tue=5.0), None on the other days."""
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return [by_day.get(d) for d in days]


class LiveChart:
    """One series' chart on an open page, read through Chart.getChart(canvas)."""

    def __init__(self, page: Page, slug: str) -> None:
        self.page = page
        self.selector = f"canvas#chart-{slug}"

    async def subscribed(self) -> LiveChart:
        """Waits until the subscribe snapshot reached the chart; returns the chart."""
        await self.page.wait_for_function(
            "sel => { const c = document.querySelector(sel); return !!c && !!c.dataset.version; }",
            arg=self.selector,
        )
        return self

    async def chart_data(self) -> dict[str, Any]:
        """Returns the chart's {labels, datasets} as Chart.js holds them."""
        data = await self.page.evaluate(_DATA, self.selector)
        assert data is not None, f"No Chart.js chart on {self.selector}"
        return data

    async def values(self) -> list[float | None]:
        """Returns the chart's first dataset."""
        return (await self.chart_data())["datasets"][0]["data"]

    async def labels(self) -> list[str]:
        """Returns the chart's labels (the week's days)."""
        return (await self.chart_data())["labels"]

    async def wait_for_values(self, expected: list[float | None], timeout: float = 15) -> None:
        """Waits until the chart shows `expected`; fails with what it shows otherwise."""
        try:
            await self.page.wait_for_function(
                _DATA_IS, arg=[self.selector, expected], timeout=timeout * 1000
            )
        except PlaywrightError as exc:
            shown = await self.values()
            raise AssertionError(
                f"{self.selector} shows {json.dumps(shown)}, expected {json.dumps(expected)}"
            ) from exc


async def open_chart(page: Page, path: str, slug: str) -> LiveChart:
    """Opens `path`, waits until it is connected and `slug`'s chart subscribed."""
    response = await page.goto(path)
    assert response is not None, f"GET {path}: no response"
    assert response.status == 200, f"GET {path}: {response.status}"
    chart = await LiveChart(page, slug).subscribed()
    await wait_for_status(page, "connected")
    return chart


async def wait_for_status(page: Page, status: str, timeout: float = 15) -> None:
    """Waits until the connection indicator reads `status`; fails with what it reads."""
    indicator = "document.getElementById('connection-status').textContent.trim()"
    try:
        await page.wait_for_function(f"s => {indicator} === s", arg=status, timeout=timeout * 1000)
    except PlaywrightError as exc:
        shown = await page.evaluate(f"() => {indicator}")
        raise AssertionError(f"The indicator reads {shown!r}, expected {status!r}") from exc


@asynccontextmanager
async def same_document(page: Page) -> AsyncIterator[None]:
    """Asserts that the page was neither reloaded nor navigated within the block."""
    token = uuid.uuid4().hex
    await page.evaluate("t => { window.__e2eMarker = t; }", token)
    yield
    marker = await page.evaluate("() => window.__e2eMarker")
    assert marker == token, "The page was reloaded: its window marker is gone"
