"""Week navigation, the dashboard, private series and deleted series, in chromium."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone
from playwright.async_api import Page

from metrics.demo import DEMO_SERIES
from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek
from tests.e2e.charts import WEEK, LiveChart, noon, open_chart, same_document, week_values
from tests.support.processes import DaphneServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]


@pytest.fixture
def cpu(daphne: DaphneServer) -> Series:
    """Returns the public series `cpu`, with 5.0 on Tuesday of WEEK."""
    series = Series.objects.create(slug="cpu", name="CPU load", unit="%", aggregation="sum")
    Metric.objects.create(series=series, timestamp=noon(WEEK, 1), value=5.0)
    return series


async def add_metric(series: Series, week: IsoWeek, weekday: int, value: float) -> None:
    """Creates a metric at noon of the week's day, from this (the test) process."""
    await sync_to_async(Metric.objects.create)(
        series=series, timestamp=noon(week, weekday), value=value
    )


async def week_label(page: Page) -> str:
    """Returns the week shown by the week navigation."""
    return (await page.locator("#week-label").text_content() or "").strip()


async def follow(page: Page, link: str, week: IsoWeek) -> LiveChart:
    """Clicks a week link; returns the chart of the page it leads to, once subscribed."""
    await page.click(link)
    await page.wait_for_url(f"**/series/cpu/?week={week}")
    return await LiveChart(page, "cpu").subscribed()


async def test_week_navigation(page: Page, cpu: Series):
    """Tests that previous, next and this-week links change the week label and chart labels."""
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    assert await chart.labels() == [d.isoformat() for d in WEEK.days]
    assert await chart.values() == week_values(tue=5.0)

    chart = await follow(page, "#week-previous", WEEK.shift(-1))
    assert await week_label(page) == str(WEEK.shift(-1))
    assert await chart.labels() == [d.isoformat() for d in WEEK.shift(-1).days]
    assert await chart.values() == week_values()

    await follow(page, "#week-next", WEEK)
    chart = await follow(page, "#week-next", WEEK.shift(1))
    assert await week_label(page) == str(WEEK.shift(1))
    assert await chart.labels() == [d.isoformat() for d in WEEK.shift(1).days]

    current = IsoWeek.current()
    if current != WEEK.shift(1):
        chart = await follow(page, "#week-current", current)
    assert await week_label(page) == str(current)
    assert await page.locator("#week-current").count() == 0
    assert await chart.labels() == [d.isoformat() for d in current.days]

    # The page navigated to subscribes to its own week: a write there shows live.
    async with same_document(page):
        await add_metric(cpu, current, 6, 3.0)
        expected = await sync_to_async(series_week)(series=cpu, week=current)
        await chart.wait_for_values(expected["values"])


async def test_private_series_hidden_from_anonymous(page: Page, cpu: Series):
    """Tests that an anonymous visitor sees no trace of a private series, live or not."""
    secret = await sync_to_async(Series.objects.create)(
        slug="revenue", name="Secret revenue", unit="EUR", is_public=False
    )
    week = IsoWeek.current()
    await add_metric(secret, week, 0, 987654.0)

    chart = await open_chart(page, "/", "cpu")
    assert await page.locator("canvas[data-stream]").count() == 1
    async with same_document(page):
        await add_metric(secret, week, 1, 123456.0)
        await add_metric(cpu, week, 1, 11.0)
        expected = await sync_to_async(series_week)(series=cpu, week=week)
        await chart.wait_for_values(expected["values"])
        refused = await page.evaluate(
            """() => new Promise(resolve => window.streamClient.subscribe(
                "metrics.week", {series: "revenue"},
                {onUpdate: () => resolve("update"), onError: status => resolve(status)}))"""
        )
        assert refused == 404
    html = await page.content()
    for leak in ("revenue", "Secret", "EUR", "987654", "123456"):
        assert leak not in html
    assert await page.locator("canvas[data-stream]").count() == 1

    response = await page.goto("/series/revenue/")
    assert response is not None
    assert response.status == 404
    html = await page.content()
    for leak in ("Secret", "EUR", "987654", "123456"):
        assert leak not in html


async def test_dashboard_shows_every_series_live(page: Page, daphne: DaphneServer):
    """Tests that the dashboard draws a chart per visible demo series and keeps them live."""
    await sync_to_async(call_command)("seed_demo", verbosity=0)
    public = [s["slug"] for s in DEMO_SERIES if s["is_public"]]
    await page.goto("/")
    charts = {slug: await LiveChart(page, slug).subscribed() for slug in public}
    assert await page.locator("canvas[data-stream]").count() == len(public)
    week = IsoWeek.current()
    for slug, chart in charts.items():
        series = await sync_to_async(Series.objects.get)(slug=slug)
        expected = await sync_to_async(series_week)(series=series, week=week)
        assert await chart.values() == expected["values"], slug

    requests = await sync_to_async(Series.objects.get)(slug="requests")
    before = {slug: await chart.values() for slug, chart in charts.items()}
    async with same_document(page):
        await sync_to_async(Metric.objects.create)(
            series=requests, timestamp=timezone.now(), value=1000.0
        )
        expected = await sync_to_async(series_week)(series=requests, week=week)
        assert expected["values"] != before["requests"]
        await charts["requests"].wait_for_values(expected["values"])
    for slug, chart in charts.items():
        if slug != "requests":
            assert await chart.values() == before[slug], slug


async def test_deleted_series_shows_notice(page: Page, cpu: Series):
    """Tests that an open page of a series says so once the series is deleted."""
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    notice = page.locator("[data-gone]")
    assert await notice.is_hidden()
    async with same_document(page):
        await add_metric(cpu, WEEK, 3, 8.0)
        await chart.wait_for_values(week_values(tue=5.0, thu=8.0))
        await sync_to_async(cpu.delete)()
        await notice.wait_for(state="visible")
        assert (await notice.text_content() or "").strip() == "This series was deleted."
        assert "gone" in (await page.locator("[data-card]").get_attribute("class") or "")


async def test_series_change_redraws_chart(page: Page, cpu: Series):
    """Tests that changing a series' aggregation and unit redraws its open chart."""
    chart = await open_chart(page, f"/series/cpu/?week={WEEK}", "cpu")
    assert (
        await page.evaluate(
            "s => Chart.getChart(document.querySelector(s)).config.type", chart.selector
        )
        == "bar"
    )
    async with same_document(page):
        await add_metric(cpu, WEEK, 1, 7.0)
        await chart.wait_for_values(week_values(tue=12.0))
        cpu.aggregation, cpu.unit = "max", "load"
        await sync_to_async(cpu.save)()
        await chart.wait_for_values(week_values(tue=7.0))
    meta = page.locator("[data-aggregation]")
    assert (await meta.text_content() or "").strip() == "max · load"
    kind = await page.evaluate(
        "s => Chart.getChart(document.querySelector(s)).config.type", chart.selector
    )
    assert kind == "line"
