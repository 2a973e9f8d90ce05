"""A series' week page in chromium follows admin, REST and ORM-script writes, unreloaded."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Browser, Page
from rest_framework.authtoken.models import Token

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, open_chart, same_document, week_values
from tests.support.processes import DaphneServer, run_script

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]

PATH = f"/series/cpu/?week={WEEK}"


@pytest.fixture
def series(daphne: DaphneServer) -> Series:
    """Returns the public series `cpu`, with 5.0 on Tuesday of WEEK."""
    cpu = Series.objects.create(slug="cpu", name="CPU load", unit="%", aggregation="sum")
    Metric.objects.create(series=cpu, timestamp=noon(WEEK, 1), value=5.0)
    return cpu


async def test_admin_change_updates_open_page(
    page: Page, browser: Browser, daphne: DaphneServer, series: Series, admin_user
):
    """Tests that a metric changed through the admin form shows on an open page."""
    chart = await open_chart(page, PATH, "cpu")
    assert await chart.values() == week_values(tue=5.0)
    metric = await sync_to_async(Metric.objects.get)(series=series)

    admin = await browser.new_context(base_url=daphne.http_url)
    try:
        form = await admin.new_page()
        await form.goto(f"/admin/login/?next=/admin/metrics/metric/{metric.pk}/change/")
        await form.fill("#id_username", "admin")
        await form.fill("#id_password", "password")
        await form.click("input[type=submit]")
        await form.wait_for_url(f"**/admin/metrics/metric/{metric.pk}/change/")
        async with same_document(page):
            await form.fill("#id_value", "42")
            await form.click("input[name=_save]")
            await form.wait_for_url("**/admin/metrics/metric/")
            await chart.wait_for_values(week_values(tue=42.0))
    finally:
        await admin.close()


def post_metric(daphne: DaphneServer, token: str, body: dict) -> int:
    """POSTs a metric to the REST API with token auth; returns the status."""
    request = urllib.request.Request(
        f"{daphne.http_url}/api/metrics/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


async def test_rest_post_updates_open_page(
    page: Page, daphne: DaphneServer, series: Series, admin_user
):
    """Tests that a metric POSTed to the REST API shows on an open page."""
    token = await sync_to_async(Token.objects.create)(user=admin_user)
    chart = await open_chart(page, PATH, "cpu")
    body = {"series": "cpu", "timestamp": noon(WEEK, 2).isoformat(), "value": 7.5}
    async with same_document(page):
        assert await asyncio.to_thread(post_metric, daphne, token.key, body) == 201
        await chart.wait_for_values(week_values(tue=5.0, wed=7.5))


async def test_orm_script_updates_open_page(page: Page, series: Series, use_redis: str):
    """Tests that a metric created by an ORM script in another process shows on an open page."""
    chart = await open_chart(page, PATH, "cpu")
    script = f"""
        from datetime import datetime
        from metrics.models import Metric, Series
        Metric.objects.create(series=Series.objects.get(slug="cpu"),
                              timestamp=datetime.fromisoformat("{noon(WEEK, 1).isoformat()}"),
                              value=2.5)
    """
    async with same_document(page):
        await asyncio.to_thread(run_script, script, use_redis)
        await chart.wait_for_values(week_values(tue=7.5))
