"""
Lean benchmark subscribers for N = 5,000: bench/clients.py's protocol on stdin, but each
socket is a bare asyncio Protocol that parses the server's frames itself.

Run as `python -m bench.lean_clients KIND URL COUNT SERIES` (KIND: raw or project). A
`websockets` client spends 25-50 µs of CPU per message; at 50,000 messages/s that is more
than the 2 cores can spare beside the server. Here, once every socket has subscribed, one
epoll loop reads them all into one buffer, and a message costs one dict lookup beside its
recv: every subscriber receives the same bytes, so each frame is decoded once per process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Any

from bench.clients import Client, Swarm, dump_and_exit, origin_for, reflected, subscribe_message

# What a decoded frame means: a reply to the subscribe, or a push that reflects a value.
REPLY, PUSH = "reply", "push"
# Frames seen recently; bounded, since each write brings a new one.
MEANINGS_KEPT = 10_000
# One receive buffer for every socket of the process: the loop fills one at a time, and
# buffer_updated copies out what came. asyncio's default recv allocates 256 KiB per read,
# which cost more than everything else a message needs.
RECEIVED = memoryview(bytearray(65536))


def masked(opcode: int, data: bytes) -> bytes:
    """Returns a client frame (FIN set, masked, as RFC 6455 requires of clients)."""
    mask, size = os.urandom(4), len(data)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class Meanings:
    """Decodes each distinct text frame once per process: (kind, value or reply)."""

    def __init__(self) -> None:
        self.known: dict[bytes, tuple[str, Any]] = {}

    def of(self, payload: bytes) -> tuple[str, Any]:
        """Returns what a frame means."""
        meaning = self.known.get(payload)
        if meaning is None:
            message = json.loads(payload)
            if "response_status" in message:
                meaning = (REPLY, message)
            else:
                meaning = (PUSH, reflected(message))
            if len(self.known) >= MEANINGS_KEPT:
                self.known.clear()
            self.known[payload] = meaning
        return meaning


class LeanSocket(asyncio.BufferedProtocol):
    """One subscriber: the upgrade, the subscribe, then every frame into a Client."""

    def __init__(self, swarm: LeanSwarm, client: Client, request: bytes, frame: str | None):
        self.swarm, self.client, self.request, self.frame = swarm, client, request, frame
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        """Sends the upgrade request."""
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fails a socket that closed before it was ready."""
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc!r}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        """Returns the process's shared receive buffer."""
        return RECEIVED

    def buffer_updated(self, nbytes: int) -> None:
        """Handles the bytes just received into the shared buffer."""
        self.data_received(bytes(RECEIVED[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Parses the upgrade response, then whole frames; keeps a partial one for later."""
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:end].decode(errors="replace")))
                self.transport.close()
                return
            self.upgraded, buffer = True, buffer[end + 4 :]
            if self.frame is None:
                self.ready.set_result(None)
            else:
                self.transport.write(masked(0x1, self.frame.encode()))
        at, size = 0, len(buffer)
        while size - at >= 2:
            opcode, length, head = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = struct.unpack_from("!H", buffer, at + 2)[0], 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = struct.unpack_from("!Q", buffer, at + 2)[0], 10
            if size - at < head + length:
                break
            self.on_frame(opcode, buffer[at + head : at + head + length])
            at += head + length
        self.buffer = buffer[at:]

    def on_frame(self, opcode: int, payload: bytes) -> None:
        """Handles one whole frame: text is a reply or a push, a ping gets its pong."""
        if opcode == 0x1:
            kind, meaning = self.swarm.meanings.of(payload)
            if kind == REPLY:
                if not self.ready.done():
                    status = meaning.get("response_status", 500)
                    if status < 300:
                        self.ready.set_result(None)
                    else:
                        self.ready.set_exception(RuntimeError(f"subscribe failed: {meaning}"))
                return
            now = time.time()
            self.swarm.received.append(now)
            client = self.client
            if meaning is not None and meaning > client.best:
                client.best = meaning
                client.trace.append((now, meaning))
        elif opcode == 0x9:
            self.transport.write(masked(0xA, payload))
        elif opcode == 0x8:
            self.transport.close()


class LeanSwarm(Swarm):
    """A Swarm whose sockets are LeanSocket protocols."""

    def __init__(self, kind: str, url: str, series: str) -> None:
        super().__init__(kind, url, series)
        self.meanings = Meanings()
        self.sockets: list[LeanSocket] = []
        authority, path = url.split("//")[1].split("/", 1)
        host, port = authority.split(":")
        self.address = (host, int(port))
        self.head = (
            f"GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin_for(url)}\r\n"
        )

    async def _open_one(self, gate: asyncio.Semaphore) -> None:
        client = Client()
        key = base64.b64encode(os.urandom(16)).decode()
        request = f"{self.head}Sec-WebSocket-Key: {key}\r\n\r\n".encode()
        frame = subscribe_message(self.kind, self.series)
        async with gate:
            try:
                _, socket = await asyncio.get_running_loop().create_connection(
                    lambda: LeanSocket(self, client, request, frame), *self.address
                )
                async with asyncio.timeout(60):
                    await socket.ready
            except Exception as exc:
                self.failed += 1
                print(f"client failed: {exc!r}", file=sys.stderr, flush=True)
                return
        self.sockets.append(socket)
        self.clients.append(client)


class Raw:
    """A ready socket taken from its asyncio transport: sends a pong at once, or not at all."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        """Sends a small frame without waiting."""
        try:
            self.sock.send(data)
        except BlockingIOError:
            return

    def close(self) -> None:
        """Leaves closing to the end of the process."""


def pump(swarm: LeanSwarm) -> None:
    """Reads every ready socket, and stdin's commands, with one epoll loop until "dump"."""
    poll, readers = select.epoll(), {}
    for lean in swarm.sockets:
        # The transport stops reading; a duplicate of its socket reads from now on.
        lean.transport.pause_reading()
        raw = socket.socket(fileno=os.dup(lean.transport.get_extra_info("socket").fileno()))
        raw.setblocking(False)
        readers[raw.fileno()] = (raw, lean)
        lean.transport = Raw(raw)
        poll.register(raw.fileno(), select.EPOLLIN)
    stdin = sys.stdin.fileno()
    poll.register(stdin, select.EPOLLIN)
    waiting: tuple[float, float] | None = None
    lines = b""
    while True:
        for fd, _ in poll.poll(0.02):
            if fd == stdin:
                lines += os.read(stdin, 4096)
                while b"\n" in lines:
                    line, lines = lines.split(b"\n", 1)
                    words = line.split()
                    if not words or words[0] == b"dump":
                        return
                    if words[0] == b"wait":
                        waiting = (float(words[1]), time.monotonic() + float(words[2]))
                continue
            raw, lean = readers[fd]
            try:
                size = raw.recv_into(RECEIVED)
            except BlockingIOError:
                continue
            if size == 0:
                poll.unregister(fd)
                continue
            lean.data_received(bytes(RECEIVED[:size]))
        if waiting is not None:
            reached = sum(1 for c in swarm.clients if c.best >= waiting[0])
            if reached == len(swarm.clients) or time.monotonic() > waiting[1]:
                print(f"reached {reached}", flush=True)
                waiting = None


async def main(kind: str, url: str, count: int, series: str) -> None:
    """Opens the swarm with asyncio, then pumps it; prints bench/clients.py's answers."""
    swarm = LeanSwarm(kind, url, series)
    await swarm.open(count)
    print(f"ready {len(swarm.clients)} {swarm.failed}", flush=True)
    pump(swarm)
    dump_and_exit(swarm)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
