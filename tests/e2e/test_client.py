"""
The browser client (streaming/static/streaming/client.js) in chromium against a scripted
WebSocket and clock: backoff with jitter, resubscribing, the version rule and `gone`, missed
heartbeats, replies that never come and waking tabs, step by step and without waiting.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests.e2e.conftest import ARTIFACTS
from tests.support.processes import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

# Sockets the test opens, fails and feeds by hand; timers it fires by hand.
HARNESS = """
window.sockets = [];
window.timers = [];
window.log = [];
window.clock = 0;
Date.now = () => clock;
class ScriptedSocket {
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.drop(); }
  open() { this.readyState = 1; this.onopen({}); }
  drop() { if (this.readyState === 3) return; this.readyState = 3; this.onclose({}); }
  push(message) { this.onmessage({data: JSON.stringify(message)}); }
}
ScriptedSocket.OPEN = 1;
window.WebSocket = ScriptedSocket;
window.setTimeout = (fn, ms) => { timers.push({fn, ms, done: false}); return timers.length; };
window.clearTimeout = (id) => { if (id && timers[id - 1]) timers[id - 1].done = true; };
window.fire = (ms) => {
  const timer = timers.find(t => !t.done && (ms === undefined || t.ms === ms));
  if (!timer) return null;
  timer.done = true; timer.fn(); return timer.ms;
};
window.pendingDelays = () => timers.filter(t => !t.done).map(t => t.ms);
// WebSocket only: these tests drop sockets before they open, which "auto" would take for
// a network refusing WebSockets (the SSE fallback: test_client_sse.py).
window.client = new StreamClient("ws://test/ws/stream/", {
  onStatus: (s, why) => log.push(why ? ["status", s, why] : ["status", s]),
  transport: "websocket",
});
window.subscribeLogged = (params) => client.subscribe("metrics.week", params, {
  onUpdate: (payload, version) => log.push(["update", version, payload]),
  onGone: (key) => log.push(["gone", key]),
  onRevoked: (key) => log.push(["revoked", key]),
  onError: (status) => log.push(["error", status]),
});
"""


@pytest_asyncio.fixture(loop_scope="session")
async def harness(browser: Browser, request) -> AsyncIterator[Page]:
    """Returns a page running client.js over scripted sockets; screenshots its log at the end."""
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


def reply(request_id: int, version: int, values: list[float | None]) -> str:
    """Returns JS that pushes a 200 subscribe reply on the newest socket."""
    data = {"stream": "metrics.week", "key": "1:2026-W48", "version": version, "payload": values}
    message = {"action": "subscribe", "request_id": request_id, "response_status": 200}
    message.update(errors=[], data=data)
    return f"() => sockets.at(-1).push({json.dumps(message)})"


def push(action: str, version: int, values: list[float | None] | None = None) -> str:
    """Returns JS that pushes an update (or gone) of key 1:2026-W48 on the newest socket."""
    message: dict[str, Any] = {"action": action, "stream": "metrics.week", "key": "1:2026-W48"}
    message["version"] = version
    if values is not None:
        message["payload"] = values
    return f"() => sockets.at(-1).push({json.dumps(message)})"


async def test_backoff_grows_with_jitter_and_resets_once_healthy(harness: Page):
    """Tests that reconnect delays double up to maxDelay, jittered in their upper half."""
    assert await log(harness) == [["status", "connecting"]]
    delays = []
    for _ in range(8):
        await js(harness, "() => sockets.at(-1).drop()")
        [delay] = await js(harness, "() => pendingDelays()")
        delays.append(delay)
        await js(harness, "() => fire()")
    assert await log(harness) == [["status", "reconnecting", "closed"]]
    ceilings = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling, (delays, ceilings)
    assert len(set(delays)) > 1, "no jitter"

    # A connection dropped at once does not restart the backoff...
    await js(harness, "() => sockets.at(-1).open()")
    await js(harness, "() => sockets.at(-1).drop()")
    assert max(await js(harness, "() => pendingDelays()")) >= 7500
    await js(harness, "() => fire(Math.max(...pendingDelays()))")
    # ...one that held for a while does.
    await js(harness, "() => sockets.at(-1).open()")
    assert await js(harness, "() => fire(2000)") == 2000
    await js(harness, "() => sockets.at(-1).drop()")
    [delay] = await js(harness, "() => pendingDelays()")
    assert 250 <= delay <= 500
    assert await log(harness) == [["status", "connected"], ["status", "reconnecting", "closed"]] * 2


async def test_resubscribes_and_keeps_only_newer_versions(harness: Page):
    """Tests the version rule across a reconnect: stale pushes dropped, snapshots replace."""
    await js(harness, "() => subscribeLogged({series: 'cpu', week: '2026-W48'})")
    await js(harness, "() => sockets.at(-1).open()")
    [subscribe] = await js(harness, "() => sockets.at(-1).sent")
    assert subscribe == {
        "action": "subscribe",
        "stream": "metrics.week",
        "params": {"series": "cpu", "week": "2026-W48"},
        "request_id": 1,
    }
    await js(harness, reply(1, 10, [1.0]))
    await js(harness, push("update", 9, [0.0]))
    await js(harness, push("update", 10, [0.0]))
    await js(harness, push("update", 12, [3.0]))
    await js(harness, push("update", 11, [2.0]))
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["update", 10, [1.0]],
        ["update", 12, [3.0]],
    ]

    await js(harness, "() => sockets.at(-1).drop()")
    await js(harness, "() => fire()")
    await js(harness, "() => sockets.at(-1).open()")
    [again] = await js(harness, "() => sockets.at(-1).sent")
    assert again["action"] == "subscribe"
    assert again["params"] == {"series": "cpu", "week": "2026-W48"}
    # After a Redis restart the snapshot's version may be lower: it still replaces the state.
    await js(harness, reply(again["request_id"], 3, [4.0]))
    await js(harness, push("update", 4, [5.0]))
    await js(harness, push("gone", 5))
    await js(harness, push("update", 6, [6.0]))
    assert await log(harness) == [
        ["status", "reconnecting", "closed"],
        ["status", "connected"],
        ["update", 3, [4.0]],
        ["update", 4, [5.0]],
        ["gone", "1:2026-W48"],
    ]

    # A gone key is not resubscribed.
    await js(harness, "() => sockets.at(-1).drop()")
    await js(harness, "() => fire()")
    await js(harness, "() => sockets.at(-1).open()")
    assert await js(harness, "() => sockets.at(-1).sent") == []


async def test_not_found_on_resubscribe_means_gone(harness: Page):
    """Tests that a 404 to a resubscribe reports gone, and to a first subscribe an error."""
    await js(harness, "() => subscribeLogged({series: 'cpu'})")
    await js(harness, "() => subscribeLogged({series: 'nope'})")
    await js(harness, "() => sockets.at(-1).open()")
    await js(harness, reply(1, 1, [1.0]))
    not_found = {"action": "subscribe", "response_status": 404, "errors": ["No series."]}
    await js(harness, "m => sockets.at(-1).push(m)", {**not_found, "request_id": 2})
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["update", 1, [1.0]],
        ["error", 404],
    ]

    await js(harness, "() => sockets.at(-1).drop()")
    await js(harness, "() => fire()")
    await js(harness, "() => sockets.at(-1).open()")
    sent = await js(harness, "() => sockets.at(-1).sent")
    ids = {m["params"]["series"]: m["request_id"] for m in sent}
    await js(harness, "m => sockets.at(-1).push(m)", {**not_found, "request_id": ids["cpu"]})
    await js(harness, "m => sockets.at(-1).push(m)", {**not_found, "request_id": ids["nope"]})
    assert await log(harness) == [
        ["status", "reconnecting", "closed"],
        ["status", "connected"],
        ["gone", "1:2026-W48"],
        ["error", 404],
    ]


async def test_revoked_stops_the_key_for_good(harness: Page):
    """Tests that `revoked` is reported once, and the key gets no updates nor resubscribes."""
    await js(harness, "() => subscribeLogged({series: 'cpu'})")
    await js(harness, "() => sockets.at(-1).open()")
    await js(harness, reply(1, 1, [1.0]))
    revoked = {"action": "revoked", "stream": "metrics.week", "key": "1:2026-W48"}
    await js(harness, "m => sockets.at(-1).push(m)", revoked)
    await js(harness, push("update", 2, [2.0]))
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["update", 1, [1.0]],
        ["revoked", "1:2026-W48"],
    ]
    await js(harness, "() => sockets.at(-1).drop()")
    await js(harness, "() => fire()")
    await js(harness, "() => sockets.at(-1).open()")
    assert await js(harness, "() => sockets.at(-1).sent") == []


def heartbeat(interval: float) -> str:
    """Returns JS that pushes a heartbeat announcing `interval` seconds on the newest socket."""
    return f"() => sockets.at(-1).push({json.dumps({'action': 'heartbeat', 'interval': interval})})"


async def reconnect_and_resync(page: Page, version: int, values: list[float | None]) -> None:
    """Fires the pending reconnect, opens the socket, answers its resubscribe."""
    await js(page, "() => fire()")
    await js(page, "() => sockets.at(-1).open()")
    [again] = await js(page, "() => sockets.at(-1).sent")
    assert again["action"] == "subscribe"
    await js(page, reply(again["request_id"], version, values))


async def test_missed_heartbeats_make_the_connection_stale(harness: Page):
    """
    Tests that a connection silent for 2.5 heartbeat intervals is dropped and reported
    stale, that any frame (an unknown action too) keeps it alive, and that it resyncs.
    """
    await js(harness, "() => subscribeLogged({series: 'cpu'})")
    await js(harness, "() => sockets.at(-1).open()")
    await js(harness, reply(1, 1, [1.0]))
    assert await js(harness, "() => fire(2000)") == 2000, "the held connection's backoff reset"
    await js(harness, heartbeat(1))
    assert 2500 in await js(harness, "() => pendingDelays()")

    await js(harness, "() => { clock = 2000; }")
    await js(harness, "() => sockets.at(-1).push({action: 'from-the-future', stream: 'x'})")
    await js(harness, "() => { clock = 2500; }")
    assert await js(harness, "() => fire(2500)") == 2500
    # Heard from 500 ms ago: it waits for the rest of the bound.
    assert 2000 in await js(harness, "() => pendingDelays()")
    assert await js(harness, "() => sockets.at(-1).readyState") == 1

    await js(harness, "() => { clock = 4500; }")
    assert await js(harness, "() => fire(2000)") == 2000
    assert await js(harness, "() => sockets.at(-1).readyState") == 3
    await reconnect_and_resync(harness, 2, [2.0])
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["update", 1, [1.0]],
        ["status", "reconnecting", "stale"],
        ["status", "connected"],
        ["update", 2, [2.0]],
    ]


async def test_a_reply_that_never_comes_is_a_failure(harness: Page):
    """Tests that a subscribe unanswered for 10 s, or a handshake, makes the client retry."""
    await js(harness, "() => subscribeLogged({series: 'cpu'})")
    await js(harness, "() => sockets.at(-1).open()")
    assert len(await js(harness, "() => sockets.at(-1).sent")) == 1
    assert await js(harness, "() => fire(10000)") == 10000
    assert await js(harness, "() => sockets.at(-1).readyState") == 3
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["status", "reconnecting", "timeout"],
    ]

    # A handshake that never completes is given up too, and retried.
    await js(harness, "() => fire()")
    assert await js(harness, "() => fire(10000)") == 10000
    assert await js(harness, "() => sockets.length") == 2
    assert await js(harness, "() => sockets.at(-1).readyState") == 3
    await reconnect_and_resync(harness, 5, [5.0])
    assert await log(harness) == [["status", "connected"], ["update", 5, [5.0]]]
    # The answered subscribe leaves no timeout behind.
    assert 10000 not in await js(harness, "() => pendingDelays()")


async def test_waking_tab_checks_its_connection(harness: Page):
    """
    Tests that a tab coming back (visibilitychange) drops a connection that went silent
    meanwhile, that pagehide closes the socket and pageshow from the bfcache reconnects at
    once, and that without heartbeats a wake-up takes fresh snapshots.
    """
    await js(harness, "() => subscribeLogged({series: 'cpu'})")
    await js(harness, "() => sockets.at(-1).open()")
    await js(harness, reply(1, 1, [1.0]))
    await js(harness, heartbeat(10))
    visible = "() => document.dispatchEvent(new Event('visibilitychange'))"
    await js(harness, "() => { clock = 1000; }")
    await js(harness, visible)
    assert await js(harness, "() => sockets.at(-1).readyState") == 1
    # Asleep for a minute: throttled timers never fired, the clock says it is stale.
    await js(harness, "() => { clock = 60000; }")
    await js(harness, visible)
    assert await js(harness, "() => sockets.at(-1).readyState") == 3
    await reconnect_and_resync(harness, 2, [2.0])

    await js(
        harness,
        "() => window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))",
    )
    assert await js(harness, "() => sockets.at(-1).readyState") == 3
    assert await js(harness, "() => pendingDelays()") == []
    await js(
        harness,
        "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))",
    )
    assert await js(harness, "() => sockets.length") == 3
    await js(harness, "() => sockets.at(-1).open()")
    [again] = await js(harness, "() => sockets.at(-1).sent")
    await js(harness, reply(again["request_id"], 3, [3.0]))

    # No heartbeat on this connection: a wake-up cannot tell, so it resubscribes.
    await js(harness, visible)
    [_, fresh] = await js(harness, "() => sockets.at(-1).sent")
    assert fresh["action"] == "subscribe"
    await js(harness, reply(fresh["request_id"], 4, [4.0]))
    assert await log(harness) == [
        ["status", "connecting"],
        ["status", "connected"],
        ["update", 1, [1.0]],
        ["status", "reconnecting", "stale"],
        ["status", "connected"],
        ["update", 2, [2.0]],
        ["status", "reconnecting", "suspended"],
        ["status", "connected"],
        ["update", 3, [3.0]],
        ["update", 4, [4.0]],
    ]
