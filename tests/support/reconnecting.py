"""
A client that stays subscribed across server restarts and outages, as client.js does:
reconnect with exponential backoff and jitter, resubscribe, take each reply as the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from tests.support.wsclient import KeyState, StreamSubscriber


class ReconnectingSubscriber(KeyState):
    """Keeps `subscriptions` (stream, params) alive on `url`; holds the newest state per key."""

    def __init__(
        self,
        url: str,
        subscriptions: list[tuple[str, dict[str, Any]]],
        min_delay: float = 0.1,
        max_delay: float = 2.0,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions
        self.min_delay = min_delay
        self.max_delay = max_delay
        super().__init__()
        self.keys: list[str] = []
        self.sessions = 0
        self.delays: list[float] = []
        self.close_codes: list[int | None] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> ReconnectingSubscriber:
        """Starts connecting in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        """Stops reconnecting and closes the current connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @staticmethod
    async def _unless_closed(client: StreamSubscriber, request: Any) -> Any:
        """Returns the request's result; raises at once if the connection closes first."""
        task = asyncio.ensure_future(request)
        assert client._reader is not None
        await asyncio.wait([task, client._reader], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            raise ConnectionError("closed while waiting for a reply")
        return task.result()

    async def _run(self) -> None:
        attempt = 0
        while True:
            client = StreamSubscriber(self.url)
            # Shared state: a reply replaces a key's state, a push applies if newer.
            client.state, client.changed = self.state, self.changed
            try:
                await client.connect()
                keys = []
                for stream, params in self.subscriptions:
                    reply = await self._unless_closed(client, client.subscribe(stream, **params))
                    if reply["response_status"] != 200:
                        raise RuntimeError(f"subscribe refused: {reply}")
                    keys.append(reply["data"]["key"])
                self.keys, attempt = keys, 0
                self.sessions += 1
                self.changed.set()
                assert client._reader is not None
                await client._reader
            except asyncio.CancelledError:
                await client.close()
                raise
            except Exception:
                pass
            if client.socket is not None:
                self.close_codes.append(client.socket.close_code)
                self.changed.set()
            await client.close()
            # Exponential backoff, each delay drawn from the upper half of its ceiling.
            ceiling = min(self.max_delay, self.min_delay * 2**attempt)
            attempt += 1
            delay = ceiling / 2 + random.random() * ceiling / 2
            self.delays.append(delay)
            await asyncio.sleep(delay)
