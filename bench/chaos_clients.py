"""
A process of chaos-soak subscribers (bench/chaos.py): asyncio `websockets` clients that
reconnect with backoff, to the next server each time, and resubscribe, applying states as
client.js does (a reply replaces the state, a push applies if its version is higher).

Every applied state is checked as it is applied: its version must not be below the last
applied one for the key (equal only for the very same state), and a "grow-*" series' week
sum must not decrease. Run as `python -m bench.chaos_clients CONFIG_JSON`; it prints
"ready" once every client has subscribed once, then answers lines on stdin: "check
EXPECTED_JSON" ({key: payload}) prints a JSON report; "exit" ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
from collections import Counter
from typing import Any

from websockets.asyncio.client import connect

from tests.support.wsclient import origin_for

STREAM = "metrics.week"
SAMPLES = 10


def week_sum(payload: dict[str, Any] | None) -> float:
    """Returns the sum of a week payload's values (0 for none)."""
    return sum(v for v in (payload or {}).get("values", []) if v is not None)


class Figures:
    """What one process's subscribers saw: counts and the first few violations."""

    def __init__(self) -> None:
        self.applied = self.ignored = self.sessions = self.failures = 0
        self.violations: list[str] = []
        self.errors: Counter[str] = Counter()

    def violation(self, text: str) -> None:
        """Records an applied state that went back."""
        self.violations.append(text)


class Subscriber:
    """One socket holding several keys, reconnecting and resubscribing whenever it drops."""

    def __init__(self, urls: list[str], first: int, pairs: list[list[str]], figures: Figures):
        self.urls, self.at, self.pairs, self.figures = urls, first, pairs, figures
        self.state: dict[str, tuple[int, dict[str, Any] | None]] = {}
        # How each key's state was applied: "reply" or "push", and in which session.
        self.how: dict[str, str] = {}
        self.session = 0
        self.keys: dict[tuple[str, ...], str] = {}
        self.subscribed = asyncio.Event()
        # Subscribed to every key on an open socket right now.
        self.live = False
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def apply(self, key: str, version: int, payload: Any, reply: bool) -> None:
        """Applies a state by client.js's rule, checking it against the last one applied."""
        held = self.state.get(key)
        if held is not None and not reply and version <= held[0]:
            self.figures.ignored += 1
            return
        how = f"{'reply' if reply else 'push'} in session {self.session}"
        if held is not None:
            steps = f"({self.how[key]}, then {how})"
            if version < held[0] or (version == held[0] and payload != held[1]):
                self.figures.violation(f"{key}: v{held[0]} then v{version} {steps}")
            grow = isinstance(payload, dict) and str(payload.get("series")).startswith("grow-")
            if grow and week_sum(payload) < week_sum(held[1]):
                self.figures.violation(
                    f"{key}: sum {week_sum(held[1])} then {week_sum(payload)} {steps}"
                )
        self.state[key] = (version, payload)
        self.how[key] = how
        self.figures.applied += 1

    async def run(self) -> None:
        """Connects, subscribes and reads, forever; backs off and moves to the next server."""
        attempt = 0
        while True:
            try:
                url = self.urls[self.at]
                async with connect(
                    url, origin=origin_for(url), compression=None, open_timeout=15, close_timeout=1
                ) as socket:
                    self.session += 1
                    reader = asyncio.get_running_loop().create_task(self._read(socket))
                    try:
                        for n, (slug, week) in enumerate(self.pairs, start=1):
                            await self._subscribe(socket, reader, n, slug, week)
                        self.figures.sessions += 1
                        self.subscribed.set()
                        self.live, attempt = True, 0
                        await reader
                    finally:
                        self.live = False
                        reader.cancel()
                self.figures.errors[f"closed {socket.close_code}"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.figures.errors[repr(exc)[:80]] += 1
                self.figures.failures += 1
            self.at = (self.at + 1) % len(self.urls)
            ceiling = min(3.0, 0.2 * 2**attempt)
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)

    async def _subscribe(self, socket: Any, reader: Any, n: int, slug: str, week: str) -> None:
        future = self._replies[n] = asyncio.get_running_loop().create_future()
        params = {"series": slug, "week": week}
        await socket.send(
            json.dumps({"action": "subscribe", "request_id": n, "stream": STREAM, "params": params})
        )
        await asyncio.wait([future, reader], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            raise ConnectionError(f"no reply to subscribe {slug} {week}")
        reply = future.result()
        if reply.get("response_status") != 200:
            raise ConnectionError(f"subscribe refused: {reply}")

    async def _read(self, socket: Any) -> None:
        async for text in socket:
            message = json.loads(text)
            if message.get("action") in ("update", "gone") and "request_id" not in message:
                if message["key"] in self.keys.values():
                    self.apply(message["key"], message["version"], message.get("payload"), False)
            elif message.get("request_id") in self._replies:
                # Applied here, in the order frames arrived, as client.js does: the pushes
                # read after it in this loop must not be overtaken by it.
                if message.get("response_status") == 200:
                    data = message["data"]
                    n = message["request_id"]
                    self.keys[tuple(self.pairs[n - 1])] = data["key"]
                    self.apply(data["key"], data["version"], data["payload"], reply=True)
                self._replies.pop(message["request_id"]).set_result(message)


def check(clients: list[Subscriber], figures: Figures, expected: dict[str, Any]) -> dict:
    """Returns the report: stale (subscriber, key) pairs against `expected`, and the counts."""
    stale = [
        f"{key}: v{client.state.get(key, (None,))[0]}"
        for client in clients
        for key in (client.keys.get((s, w)) for s, w in client.pairs)
        if key is None or client.state.get(key, (0, None))[1] != expected.get(key)
    ]
    return {
        "pairs": sum(len(c.pairs) for c in clients),
        "live": sum(1 for c in clients if c.live),
        "errors": dict(figures.errors.most_common(5)),
        "stale": len(stale),
        "stale_samples": stale[:SAMPLES],
        "violations": len(figures.violations),
        "violation_samples": figures.violations[:SAMPLES],
        "applied": figures.applied,
        "ignored": figures.ignored,
        "sessions": figures.sessions,
        "failures": figures.failures,
    }


async def main(config: dict[str, Any]) -> None:
    """Starts the subscribers, then answers commands on stdin."""
    figures = Figures()
    clients = [
        Subscriber(config["urls"], i % len(config["urls"]), pairs, figures)
        for i, pairs in enumerate(config["plans"])
    ]
    tasks = []
    for client in clients:
        tasks.append(asyncio.get_running_loop().create_task(client.run()))
        # A few at a time, as pages open: not a connection storm.
        await asyncio.sleep(0.005)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(120):
            await asyncio.gather(*(c.subscribed.wait() for c in clients))
    ready = sum(1 for c in clients if c.subscribed.is_set())
    print(f"ready {ready} {len(clients)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _, rest = line.strip().partition(" ")
        if command == "check":
            print(json.dumps(check(clients, figures, json.loads(rest))), flush=True)
        else:
            break
    # Closing hundreds of sockets politely is not part of the run.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
