"""The client's ES module form (client.mjs) in chromium, against a live server."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page

from metrics.models import Metric, Series
from tests.e2e.charts import WEEK, noon, week_values
from tests.support.processes import DaphneServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="session"),
]

# A module script run on a page of the server without client.js (its JSON /healthz).
MODULE_SCRIPT = f"""
import StreamClientDefault, {{ StreamClient }} from "/static/streaming/client.mjs";
window.sameClass = StreamClientDefault === StreamClient;
window.statuses = [];
window.values = null;
const client = new StreamClient(null, {{onStatus: (s) => statuses.push(s)}});
client.subscribe("metrics.week", {{series: "cpu", week: "{WEEK}"}}, {{
  onUpdate: (payload) => {{ window.values = payload.values; }},
}});
"""


async def wait_for_values(page: Page, expected: list[float | None]) -> None:
    """Waits until the module page's subscription holds `expected`."""
    expression = "v => JSON.stringify(window.values) === JSON.stringify(v)"
    await page.wait_for_function(expression, arg=expected)


async def test_module_form_imports_and_streams(page: Page, daphne: DaphneServer):
    """Tests that `import { StreamClient } from client.mjs` connects, subscribes and updates."""
    series = await sync_to_async(Series.objects.create)(slug="cpu", name="CPU", aggregation="sum")
    await sync_to_async(Metric.objects.create)(series=series, timestamp=noon(WEEK, 0), value=1.0)
    await page.goto("/healthz")
    assert await page.evaluate("() => typeof window.StreamClient") == "undefined"
    await page.add_script_tag(content=MODULE_SCRIPT, type="module")
    await wait_for_values(page, week_values(mon=1.0))
    assert await page.evaluate("() => window.sameClass") is True
    assert await page.evaluate("() => statuses") == ["connecting", "connected"]

    await sync_to_async(Metric.objects.create)(series=series, timestamp=noon(WEEK, 2), value=4.0)
    await wait_for_values(page, week_values(mon=1.0, wed=4.0))
