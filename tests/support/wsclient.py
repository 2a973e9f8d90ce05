"""A plain WebSocket client of the stream protocol, holding state by the version rule."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import websockets


def origin_for(url: str) -> str:
    """Returns the Origin a page served by the server at ws `url` sends: the same host and port."""
    scheme, rest = url.split("://", 1)
    return f"{'https' if scheme == 'wss' else 'http'}://{rest.split('/', 1)[0]}"


class KeyState:
    """The newest (version, payload) per key a client holds, and a way to wait on it."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self.changed = asyncio.Event()

    def payload(self, key: str) -> dict[str, Any] | None:
        """Returns the newest payload applied for `key`."""
        return self.state[key][1]

    async def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        """Waits until predicate(self) is true."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()


class StreamSubscriber(KeyState):
    """Connects to /ws/stream/, subscribes, and keeps the newest payload per key."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.url = url
        self.headers = headers or {}
        self.socket: Any = None
        self.received: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> StreamSubscriber:
        """Opens the socket (with the server's own Origin, as OriginValidator wants)."""
        self.socket = await websockets.connect(
            self.url, origin=origin_for(self.url), additional_headers=self.headers, open_timeout=10
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def close(self) -> None:
        """Closes the socket."""
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()

    async def request(self, message: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Sends an action with a fresh request_id and returns its reply."""
        request_id = next(self._ids)
        future = self._replies[request_id] = asyncio.get_running_loop().create_future()
        await self.socket.send(json.dumps({**message, "request_id": request_id}))
        return await asyncio.wait_for(future, timeout)

    async def subscribe(self, stream: str, **params: Any) -> dict[str, Any]:
        """Subscribes and applies the snapshot; returns the reply."""
        reply = await self.request({"action": "subscribe", "stream": stream, "params": params})
        if reply["response_status"] == 200:
            data = reply["data"]
            self.state[data["key"]] = (data["version"], data["payload"])
            self.changed.set()
        return reply

    async def _read(self) -> None:
        async for text in self.socket:
            message = json.loads(text)
            self.received.append(message)
            if message.get("action") in ("update", "gone") and "request_id" not in message:
                key, version = message["key"], message["version"]
                if key not in self.state or version > self.state[key][0]:
                    self.state[key] = (version, message.get("payload"))
                    self.changed.set()
            elif message.get("request_id") in self._replies:
                self._replies.pop(message["request_id"]).set_result(message)
            # Predicates may look at any message (`received`), not only at state changes.
            self.changed.set()
