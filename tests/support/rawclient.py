"""
A bare WebSocket client over a plain TCP socket, for clients no library would be: one that
never reads, never answers a ping, floods pings, or vanishes without a close.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def masked_frame(opcode: int, data: bytes) -> bytes:
    """Returns one final, masked client frame."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    if len(data) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(data)])
    elif len(data) < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(data))
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", len(data))
    return head + mask + body


class RawClient:
    """One connection to /ws/stream/ on a small receive buffer; reads only when told to."""

    def __init__(self, port: int, receive_buffer: int = 4096) -> None:
        self.port = port
        self.receive_buffer = receive_buffer
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> RawClient:
        """Opens the socket and completes the handshake, with the server's own Origin."""
        sock = socket.socket()
        # A small kernel buffer: what the client does not read piles up in the server.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.connect(("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET /ws/stream/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://127.0.0.1:{self.port}\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return self

    async def send(self, message: dict[str, Any] | str) -> None:
        """Sends one text frame (a dict is sent as JSON)."""
        text = message if isinstance(message, str) else json.dumps(message)
        self.writer.write(masked_frame(TEXT, text.encode()))
        await self.writer.drain()

    def queue(self, opcode: int, data: bytes = b"", times: int = 1) -> None:
        """Queues `times` copies of a frame without waiting for the kernel to take them."""
        self.writer.write(masked_frame(opcode, data) * times)

    async def drain(self) -> None:
        """Waits until what was queued is handed to the kernel."""
        await self.writer.drain()

    async def frame(self) -> tuple[int, bytes]:
        """Reads the next frame; returns its opcode and payload."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def message(self) -> dict[str, Any]:
        """Returns the next text message as JSON, skipping pings and pongs."""
        while True:
            opcode, payload = await self.frame()
            if opcode == TEXT:
                return json.loads(payload)
            assert opcode in (PING, PONG), f"unexpected opcode {opcode}"

    async def until_closed(self) -> tuple[int | None, list[tuple[int, bytes]]]:
        """
        Reads until the connection ends; returns the close frame's code (None when it was
        dropped without one reaching us) and the frames before it.
        """
        frames = []
        try:
            while True:
                opcode, payload = await self.frame()
                if opcode == CLOSE:
                    return struct.unpack("!H", payload[:2])[0], frames
                frames.append((opcode, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, frames

    def vanish(self) -> None:
        """Drops the connection with a TCP reset: no close frame, no FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        """Closes the TCP connection."""
        self.writer.close()
