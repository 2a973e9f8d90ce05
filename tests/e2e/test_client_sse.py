"""
The browser client's SSE fallback (streaming/static/streaming/client.js) in chromium against
scripted WebSockets, EventSources and clock: when it falls back, what its requests ask for,
and the version rule over re-sent snapshots, step by step and without waiting.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests.e2e.conftest import ARTIFACTS
from tests.support.processes import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

HARNESS = """
window.sockets = [];
window.sources = [];
window.timers = [];
window.log = [];
window.clock = 0;
Date.now = () => clock;
class ScriptedSocket {
  constructor(url) {
    if (window.refuseWebSockets) throw new Error("blocked by policy");
    this.url = url; this.readyState = 0; this.sent = []; sockets.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.drop(); }
  open() { this.readyState = 1; this.onopen({}); }
  drop() { if (this.readyState === 3) return; this.readyState = 3; this.onclose({}); }
}
class ScriptedSource {
  constructor(url) {
    this.url = url; this.readyState = 0; this.listeners = {}; this.closed = false;
    sources.push(this);
  }
  addEventListener(name, fn) { (this.listeners[name] = this.listeners[name] || []).push(fn); }
  close() { this.closed = true; this.readyState = 2; }
  open() { this.readyState = 1; this.onopen({}); }
  fail() { this.readyState = 2; this.onerror({}); }
  emit(name, data) { (this.listeners[name] || []).forEach(fn => fn({data: JSON.stringify(data)})); }
}
window.WebSocket = ScriptedSocket;
window.EventSource = ScriptedSource;
window.setTimeout = (fn, ms) => { timers.push({fn, ms, done: false}); return timers.length; };
window.clearTimeout = (id) => { if (id && timers[id - 1]) timers[id - 1].done = true; };
window.fire = (ms) => {
  const timer = timers.find(t => !t.done && (ms === undefined || t.ms === ms));
  if (!timer) return null;
  timer.done = true; timer.fn(); return timer.ms;
};
window.start = () => {
  window.client = new StreamClient("ws://test/ws/stream/", {
    onStatus: (s, why, transport) => log.push(["status", s, why || null, transport]),
  });
};
window.subscribeLogged = (series) => client.subscribe("metrics.week", {series: series}, {
  onUpdate: (payload, version) => log.push(["update", series, version, payload]),
  onGone: (key) => log.push(["gone", key]),
  onRevoked: (key) => log.push(["revoked", key]),
  onError: (status) => log.push(["error", series, status]),
});
"""


@pytest_asyncio.fixture(loop_scope="session")
async def harness(browser: Browser, request) -> AsyncIterator[Page]:
    """Returns a page running client.js over scripted transports; screenshots its log."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.set_content("<!doctype html><pre id='log'></pre>")
    await page.add_script_tag(path=ROOT / "streaming" / "static" / "streaming" / "client.js")
    await page.add_script_tag(content=HARNESS)
    yield page
    await page.evaluate(
        "() => { document.getElementById('log').textContent = "
        "log.map(e => JSON.stringify(e)).join('\\n'); }"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{request.node.name}.png")
    await context.close()


async def js(page: Page, expression: str, arg: Any = None) -> Any:
    """Evaluates `expression` (a function of `arg`) in the harness page."""
    return await page.evaluate(expression, arg)


async def log(page: Page) -> list[list[Any]]:
    """Returns what the client reported so far, and forgets it."""
    return await js(page, "() => log.splice(0)")


async def subscriptions_of(page: Page) -> list[dict[str, Any]]:
    """Returns the `subscribe=` objects the newest EventSource's URL asks for."""
    url = await js(page, "() => sources.at(-1).url")
    assert urlsplit(url).path == "/sse/stream/"
    return [json.loads(v) for k, v in parse_qsl(urlsplit(url).query) if k == "subscribe"]


def emit(name: str, data: dict[str, Any]) -> str:
    """Returns JS that emits an event on the newest EventSource."""
    return f"() => sources.at(-1).emit({json.dumps(name)}, {json.dumps(data)})"


def snapshot(request_id: int, version: int, value: float) -> str:
    """Returns JS emitting a 200 subscribe reply of key 1:w on the newest EventSource."""
    data = {"stream": "metrics.week", "key": "1:w", "version": version, "payload": [value]}
    reply = {"action": "subscribe", "errors": [], "data": data, "response_status": 200}
    return emit("subscribe", {**reply, "request_id": request_id})


def update(version: int, value: float) -> str:
    """Returns JS emitting an update of key 1:w on the newest EventSource."""
    data = {"action": "update", "stream": "metrics.week", "key": "1:w", "version": version}
    return emit("update", {**data, "payload": [value]})


async def test_a_websocket_constructor_that_throws_falls_back_to_sse_at_once(harness: Page):
    """
    Tests that a browser refusing WebSockets gets SSE without waiting: one request to learn
    the server answers, then one request carrying every subscription made meanwhile.
    """
    await js(harness, "() => { window.refuseWebSockets = true; start(); }")
    await js(harness, "() => { subscribeLogged('cpu'); subscribeLogged('mem'); }")
    assert await js(harness, "() => [sockets.length, sources.length]") == [0, 1]
    assert await subscriptions_of(harness) == []
    await js(harness, "() => sources.at(-1).open()")
    assert await js(harness, "() => client.transport") == "sse"
    assert await js(harness, "() => [sources.length, sources[0].closed]") == [2, True]
    assert await subscriptions_of(harness) == [
        {"stream": "metrics.week", "params": {"series": "cpu"}, "request_id": 1},
        {"stream": "metrics.week", "params": {"series": "mem"}, "request_id": 2},
    ]
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, snapshot(1, 10, 1.0))
    await js(harness, update(9, 0.0))
    await js(harness, update(11, 2.0))
    await js(harness, emit("heartbeat", {"action": "heartbeat", "interval": 10}))
    assert await js(harness, "() => client.keepalive") == 10000
    assert await log(harness) == [
        ["status", "connecting", None, "websocket"],
        ["status", "connected", None, "sse"],
        ["update", "cpu", 10, [1.0]],
        ["update", "cpu", 11, [2.0]],
    ]


async def test_websockets_failing_before_opening_fall_back_after_three(harness: Page):
    """Tests that three WebSocket connects in a row that never open switch "auto" to SSE."""
    await js(harness, "() => start()")
    for _ in range(3):
        await js(harness, "() => sockets.at(-1).drop()")
        await js(harness, "() => fire()")
    assert await js(harness, "() => [sockets.length, sources.length]") == [3, 1]
    await js(harness, "() => sources.at(-1).open()")
    assert await log(harness) == [
        ["status", "connecting", None, "websocket"],
        ["status", "reconnecting", "closed", "websocket"],
        ["status", "connected", None, "sse"],
    ]


async def test_a_websocket_that_opened_once_never_falls_back(harness: Page):
    """Tests that once a WebSocket opened, later failures (a server down) keep WebSockets."""
    await js(harness, "() => start()")
    await js(harness, "() => sockets.at(-1).open()")
    for _ in range(5):
        await js(harness, "() => sockets.at(-1).drop()")
        await js(harness, "() => fire()")
    assert await js(harness, "() => [sockets.length, sources.length]") == [6, 0]


async def test_a_new_subscription_reopens_and_resent_snapshots_keep_the_version_rule(
    harness: Page,
):
    """
    Tests that subscribing later reopens the request with both subscriptions, that the
    snapshot sent again for the first applies only if newer, and that an SSE error is a
    lost connection: backoff, then a fresh request resubscribing both.
    """
    await js(harness, "() => { window.refuseWebSockets = true; start(); subscribeLogged('cpu'); }")
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, snapshot(1, 10, 1.0))
    await js(harness, "() => subscribeLogged('mem')")
    assert [s["request_id"] for s in await subscriptions_of(harness)] == [1, 2]
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, snapshot(1, 10, 1.0))
    await js(harness, snapshot(1, 12, 3.0))
    assert (await log(harness))[-2:] == [["update", "cpu", 10, [1.0]], ["update", "cpu", 12, [3.0]]]

    await js(harness, "() => sources.at(-1).fail()")
    assert await log(harness) == [["status", "reconnecting", "closed", "sse"]]
    assert await js(harness, "() => fire()") is not None
    await js(harness, "() => sources.at(-1).open()")
    assert [s["request_id"] for s in await subscriptions_of(harness)] == [3, 4]
    # A snapshot of a new request replaces the state, as after a WebSocket reconnect.
    await js(harness, snapshot(3, 12, 3.0))
    assert await log(harness) == [
        ["status", "connected", None, "sse"],
        ["update", "cpu", 12, [3.0]],
    ]


async def test_unsubscribe_drops_the_key_from_the_next_request(harness: Page):
    """Tests that an unsubscribe over SSE reopens the request without that subscription."""
    await js(harness, "() => { window.refuseWebSockets = true; start(); }")
    await js(harness, "() => { window.cpu = subscribeLogged('cpu'); subscribeLogged('mem'); }")
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, "() => sources.at(-1).open()")
    await js(harness, "async () => { cpu.unsubscribe(); await Promise.resolve(); }")
    assert [s["params"]["series"] for s in await subscriptions_of(harness)] == ["mem"]
