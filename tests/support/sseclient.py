"""A plain HTTP/1.1 Server-Sent Events client over asyncio streams, as a test subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

# How long a test waits for something a server should send.
WAIT_SECONDS = 30


def query(*subscriptions: dict[str, Any]) -> str:
    """Returns the query string of `subscribe=` objects: {"stream", "params", "request_id"}."""
    return urlencode([("subscribe", json.dumps(s)) for s in subscriptions])


class EventStreamClient:
    """One GET to an SSE endpoint: its status, its headers, then its events as they come."""

    def __init__(self, port: int, path: str, cookie: str | None = None) -> None:
        self.port = port
        self.path = path
        self.cookie = cookie
        self.status = 0
        self.headers: dict[str, str] = {}
        self.events: list[tuple[str, Any]] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = b""
        self._chunked = False

    async def open(self) -> EventStreamClient:
        """Sends the request and reads the status line and headers."""
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines.append("Accept: text/event-stream")
        if self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), WAIT_SECONDS)
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        return self

    async def _more(self) -> bool:
        """Reads the next piece of the body into the buffer; False at its end."""
        assert self._reader is not None
        if not self._chunked:
            data = await self._reader.read(65536)
            self._buffer += data
            return bool(data)
        size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            return False
        self._buffer += (await self._reader.readexactly(size + 2))[:-2]
        return True

    async def raw(self) -> bytes:
        """Returns a whole (non-streaming) response body."""
        length = self.headers.get("content-length")
        assert self._reader is not None
        if length is not None:
            return await self._reader.readexactly(int(length))
        while await asyncio.wait_for(self._more(), WAIT_SECONDS):
            pass
        return self._buffer

    async def body(self) -> Any:
        """Returns a whole (non-streaming) response body's JSON."""
        return json.loads(await self.raw())

    async def next_event(self) -> tuple[str, Any]:
        """Returns the next event's name and JSON data; comments are skipped."""
        while True:
            while b"\n\n" not in self._buffer:
                if not await asyncio.wait_for(self._more(), WAIT_SECONDS):
                    raise EOFError("the stream ended")
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            name, data = "message", []
            for line in block.decode().split("\n"):
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    data.append(line[len("data: ") :])
            if data:
                parsed = (name, json.loads("\n".join(data)))
                self.events.append(parsed)
                return parsed

    async def wait_for(self, predicate: Callable[[str, Any], bool]) -> tuple[str, Any]:
        """Returns the first next event matching `predicate`(name, data)."""
        while True:
            name, data = await self.next_event()
            if predicate(name, data):
                return name, data

    async def close(self) -> None:
        """Closes the connection, as a browser leaving the page."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
