"""
A process of benchmark subscribers: asyncio `websockets` clients of one target.

Run as `python -m bench.clients KIND URL COUNT SERIES`. It connects COUNT clients (a
few at a time), subscribes each to SERIES, prints "ready OK FAILED", then answers lines
on stdin: "wait VALUE SECONDS" prints "reached K" once every client holds a value of at
least VALUE (or the time is up); "dump" prints the traces as JSON and exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

CONNECT_AT_ONCE = 20


def origin_for(url: str) -> str:
    """Returns the Origin of a page of the server at ws `url`: same host and port."""
    return "http://" + url.split("//")[1].split("/")[0]


def reflected(message: dict[str, Any]) -> float | None:
    """Returns the value a pushed payload reflects, or None for anything else."""
    # This project and raw send {"payload": ...}; the DCRF peer sends {"message": ...}.
    payload = message.get("payload") or message.get("message") or message
    if isinstance(payload, dict) and payload.get("notes"):
        # A board (bench/stall.py): the counter leads its first note.
        return float(payload["notes"][0]["text"][:6])
    values = payload.get("values") if isinstance(payload, dict) else None
    if not values:
        return None
    present = [v for v in values if v is not None]
    return max(present) if present else None


def subscribe_message(kind: str, series: str) -> str | None:
    """Returns the frame a client of `kind` sends to subscribe, if any."""
    if kind == "project":
        params = {"series": series}
        return json.dumps(
            {"action": "subscribe", "request_id": 1, "stream": "metrics.week", "params": params}
        )
    if kind == "dcrf":
        return json.dumps({"action": "subscribe", "request_id": 1, "series": series})
    if kind in ("board", "stalled"):
        params = {"board": series}
        return json.dumps(
            {"action": "subscribe", "request_id": 1, "stream": "exampleapp.board", "params": params}
        )
    return None


async def stalled_socket(url: str, frame: str) -> Any:
    """
    Returns a bare WebSocket that subscribed (`frame`) and then reads nothing more: a
    tiny kernel buffer, and asyncio stops reading once 8 KiB wait unread.
    """
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    path = "/" + url.split("//")[1].split("/", 1)[1]
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin_for(url)}\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    data, mask = frame.encode(), os.urandom(4)
    writer.write(bytes([0x81, 0xFE]) + struct.pack("!H", len(data)) + mask)
    writer.write(bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    return reader, writer


class Client:
    """One subscriber: the times at which it first held each higher value."""

    __slots__ = ("best", "trace")

    def __init__(self) -> None:
        self.best = float("-inf")
        self.trace: list[tuple[float, float]] = []


class Swarm:
    """This process's clients and every delivery they received."""

    def __init__(self, kind: str, url: str, series: str) -> None:
        self.kind, self.url, self.series = kind, url, series
        self.clients: list[Client] = []
        self.received: list[float] = []
        self.failed = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.stalled: list[Any] = []

    async def open(self, count: int) -> None:
        """Connects and subscribes `count` clients, CONNECT_AT_ONCE at a time."""
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)
        await asyncio.gather(*(self._open_one(gate) for _ in range(count)))

    async def _open_one(self, gate: asyncio.Semaphore) -> None:
        async with gate:
            if self.kind == "stalled":
                frame = subscribe_message(self.kind, self.series)
                assert frame is not None
                self.stalled.append(await stalled_socket(self.url, frame))
                return
            try:
                ws = await connect(
                    self.url,
                    origin=origin_for(self.url),
                    compression=None,
                    ping_interval=None,
                    open_timeout=60,
                    close_timeout=1,
                )
                frame = subscribe_message(self.kind, self.series)
                if frame is not None:
                    await ws.send(frame)
                    async with asyncio.timeout(60):
                        reply = json.loads(await ws.recv())
                        # A heartbeat may come before the reply to a late subscribe.
                        while "response_status" not in reply:
                            reply = json.loads(await ws.recv())
                    if reply.get("response_status", 500) >= 300:
                        raise RuntimeError(f"subscribe failed: {reply}")
            except Exception as exc:
                self.failed += 1
                print(f"client failed: {exc!r}", file=sys.stderr, flush=True)
                return
        client = Client()
        self.clients.append(client)
        self._tasks.append(asyncio.get_running_loop().create_task(self._read(ws, client)))

    async def _read(self, ws: Any, client: Client) -> None:
        received = self.received
        async for text in ws:
            now = time.time()
            message = json.loads(text)
            if "response_status" in message:
                continue
            received.append(now)
            value = reflected(message)
            if value is not None and value > client.best:
                client.best = value
                client.trace.append((now, value))

    async def wait(self, value: float, seconds: float) -> int:
        """Waits until every client holds `value` or more; returns how many do."""
        deadline = time.monotonic() + seconds
        while True:
            reached = sum(1 for c in self.clients if c.best >= value)
            if reached == len(self.clients) or time.monotonic() > deadline:
                return reached
            await asyncio.sleep(0.02)


async def main(kind: str, url: str, count: int, series: str) -> None:
    """Runs the swarm, driven by lines on stdin."""
    swarm = Swarm(kind, url, series)
    await swarm.open(count)
    print(f"ready {len(swarm.clients) + len(swarm.stalled)} {swarm.failed}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "dump":
            break
        if line[0] == "wait":
            reached = await swarm.wait(float(line[1]), float(line[2]))
            print(f"reached {reached}", flush=True)
    dump_and_exit(swarm)


def dump_and_exit(swarm: Swarm) -> None:
    """Prints the swarm's traces as one JSON line and exits at once."""
    data = {"traces": [c.trace for c in swarm.clients], "received": swarm.received}
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()
    # Closing hundreds of sockets politely is not part of the measure.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
