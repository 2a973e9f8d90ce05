"""An in-process socket of StreamConsumer (WebsocketCommunicator) speaking the protocol."""

from __future__ import annotations

import itertools
import json
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from streaming.serve.consumer import StreamConsumer


class ConsumerSocket:
    """One connection to StreamConsumer, with no server and no network in between."""

    def __init__(self, user: Any = None) -> None:
        self.communicator = WebsocketCommunicator(StreamConsumer.as_asgi(), "/ws/stream/")
        self.communicator.scope["user"] = user or AnonymousUser()
        self._ids = itertools.count(1)

    async def connect(self) -> ConsumerSocket:
        """Opens the connection."""
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def send(self, text: str | None = None, data: bytes | None = None) -> None:
        """Sends one text or binary frame (empty ones too)."""
        frame = {"text": text} if data is None else {"bytes": data}
        await self.communicator.send_input({"type": "websocket.receive", **frame})

    async def output(self, timeout: float = 10) -> dict[str, Any]:
        """Returns the next ASGI message the consumer sent (a frame or a close)."""
        return await self.communicator.receive_output(timeout)

    async def frame(self, timeout: float = 10) -> dict[str, Any]:
        """Returns the next JSON frame; fails on a close."""
        message = await self.output(timeout)
        assert message["type"] == "websocket.send", message
        return json.loads(message["text"])

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Sends a message with a fresh request_id and returns its reply (skipping pushes)."""
        request_id = next(self._ids)
        await self.send(json.dumps({**message, "request_id": request_id}))
        while True:
            frame = await self.frame()
            if frame.get("request_id") == request_id and "response_status" in frame:
                return frame

    async def subscribe(self, series: str, week: str = "2026-W48") -> dict[str, Any]:
        """Subscribes to a series' week of metrics.week and returns the reply."""
        params = {"series": series, "week": week}
        return await self.request(
            {"action": "subscribe", "stream": "metrics.week", "params": params}
        )

    async def quiet(self, seconds: float = 0.2) -> bool:
        """Returns whether nothing at all arrives for `seconds`."""
        return await self.communicator.receive_nothing(seconds)

    async def close(self) -> None:
        """Closes the connection."""
        await self.communicator.disconnect()
