"""
Fast, flow-controlled fan-out to daphne's sockets.

Under daphne each update is framed once (autobahn's PreparedMessage) and the same bytes
are written to every socket's Twisted transport, skipping the per-socket ASGI send chain
(session wrapper, daphne's reply dispatch, UTF-8 encoding, framing, debug formatting);
a socket with nothing queued gets them at once, without a trip through the reactor.

A socket whose transport holds more than STREAMING["SOCKET_BUFFER_BYTES"] unsent bytes (a
client that stopped reading) gets nothing more until it drains: meanwhile the hub keeps
only the newest update per key for it (latest-wins), so memory stays bounded whatever
the update rate. Other servers (and test communicators) use the ASGI send.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streaming.ops.stats import stats

if TYPE_CHECKING:
    from autobahn.websocket.protocol import PreparedMessage

logger = logging.getLogger("streaming.serve.daphne")

# autobahn's WebSocketProtocol.STATE_OPEN, named here so that importing this module loads
# neither autobahn nor Twisted (the app also runs under uvicorn); a canary test checks it.
STATE_OPEN = 3
# Which fallbacks were reported already (each once per process).
_reported: set[str] = set()
# How many wrappers around daphne's send to look through (channels' session middleware
# adds one).
_MAX_WRAPPERS = 4


class Wire:
    """
    One daphne WebSocket connection, written to directly. Registered as its transport's
    streaming producer (Twisted's documented flow control: pauseProducing past bufferSize
    unsent bytes, resumeProducing once they are written), it tells the hub when it drains.
    """

    __slots__ = ("protocol", "send_queue", "socket", "transport", "watched")
    # Called with a wire whose buffer drained (set by streaming.serve.hub).
    on_drain: Callable[[Wire], None] | None = None

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        # Both are made once per connection (autobahn's at connect, Twisted's with the
        # transport): held here, a write reads neither the protocol's dict nor the transport's.
        self.send_queue = protocol.send_queue
        self.socket = getattr(self.transport, "socket", None)
        self.watched = False

    def watch(self, limit: int) -> bool:
        """Becomes the transport's producer, paused past `limit` bytes; False if taken."""
        t = self.transport
        if t.producer is not None or not hasattr(t, "bufferSize"):
            return False
        t.bufferSize = limit
        t.registerProducer(self, True)
        self.watched = True
        return True

    def pauseProducing(self) -> None:
        """Called by Twisted past bufferSize: offer() sees the backlog and holds by itself."""

    def resumeProducing(self) -> None:
        """Called by Twisted once the buffer is written: the hub sends what it held."""
        if Wire.on_drain is not None:
            Wire.on_drain(self)

    def stopProducing(self) -> None:
        """Called by Twisted when the connection is lost."""
        self.watched = False

    @property
    def open(self) -> bool:
        """Returns whether the socket still takes data messages."""
        return self.protocol.state == STATE_OPEN

    @staticmethod
    def frame(message: dict[str, Any]) -> PreparedMessage:
        """Returns what this socket sends for an update: its frame, built once per message."""
        return frame_of(message)

    def backlog(self) -> int:
        """Returns how many bytes wait in the transport's user-space send buffer."""
        t = self.transport
        return len(t.dataBuffer) - t.offset + t._tempDataLen

    def offer(self, frame: PreparedMessage, limit: int) -> bool:
        """
        Writes a frame unless more than `limit` bytes already wait; returns False then.
        A closing socket takes nothing and returns True: there is nothing to keep for it.
        """
        t = self.transport
        queued = len(t.dataBuffer) - t.offset + t._tempDataLen
        if queued > limit:
            return False
        if self.protocol.state == STATE_OPEN:
            self._write(frame, queued)
        return True

    def write(self, frame: PreparedMessage) -> None:
        """Writes a prepared frame: the bytes autobahn's sendPreparedMessage would send."""
        self._write(frame, self.backlog())

    def _write(self, frame: PreparedMessage, queued: int) -> None:
        if self.send_queue:
            # autobahn is in the middle of a queued (synchronous) send: let it order ours.
            self.protocol.sendPreparedMessage(frame)
            return
        data = frame.payloadHybi
        t = self.transport
        if queued == 0 and self.socket is not None and t.connected and not t.disconnecting:
            # Nothing queued: send now, as asyncio's transports do, instead of Twisted's
            # register-writer, wait-for-writable, send, unregister (3 more syscalls). The
            # socket's own send: writeSomeData's memoryview and retry wrapper were 0.4 µs
            # of each delivery.
            try:
                sent = self.socket.send(data)
            except OSError:
                # Would block, or the connection is lost: Twisted's write sees to either.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)


def wire_for(owner: object) -> Wire | None:
    """
    Returns the daphne connection behind a consumer, or None under other servers; under
    daphne, a socket the fast path cannot attach to is logged (once) and counted.
    """
    wire, daphne = _find(owner)
    if wire is not None:
        stats.add("fast_path_sockets", "*")
    elif daphne:
        stats.add("fast_path_misses", "*")
        report_once(
            "miss",
            logging.WARNING,
            "streaming: the daphne fast path could not attach to a socket (daphne, Twisted "
            "or autobahn changed?); it is served through the ASGI send, without backpressure",
        )
    elif wire is None:
        report_once(
            "other",
            logging.INFO,
            "streaming: not under daphne: sockets are served through the ASGI send",
        )
    return wire


def report_once(kind: str, level: int, message: str) -> None:
    """Logs `message` the first time this process reports a fallback of this kind."""
    if kind not in _reported:
        _reported.add(kind)
        logger.log(level, message)


def _find(owner: object) -> tuple[Wire | None, bool]:
    """
    Returns the daphne connection behind a consumer, if there is one, and whether its send
    came from daphne at all.

    daphne hands each application `functools.partial(server.handle_reply, protocol)` as
    its ASGI send; channels' session middleware wraps it (`real_send`).
    """
    send: Callable[..., Any] | None = getattr(owner, "base_send", None)
    for _ in range(_MAX_WRAPPERS):
        if send is None:
            return None, False
        if isinstance(send, functools.partial):
            daphne = type(getattr(send.func, "__self__", None)).__module__ == "daphne.server"
            protocol: Any = send.args[0] if send.args else None
            if _is_websocket_protocol(protocol) and hasattr(protocol, "transport"):
                transport = protocol.transport
                needed = ("dataBuffer", "offset", "_tempDataLen", "socket", "disconnecting")
                if hasattr(protocol, "send_queue") and all(hasattr(transport, a) for a in needed):
                    return Wire(protocol), True
            return None, daphne
        send = getattr(getattr(send, "__self__", None), "real_send", None)
    return None, False


def _is_websocket_protocol(value: object) -> bool:
    # Not loaded, not in use: no import (and no Twisted) for servers other than daphne.
    module = sys.modules.get("autobahn.websocket.protocol")
    return module is not None and isinstance(value, module.WebSocketProtocol)


def frame_of(message: dict[str, Any]) -> PreparedMessage:
    """Returns the update's WebSocket frame, built once per message and kept on it."""
    frame = message.get("_frame")
    if frame is None:
        from autobahn.websocket.protocol import PreparedMessage

        # doNotCompress: the same bytes are valid on every connection, compressed or not.
        frame = message["_frame"] = PreparedMessage(
            message["text"].encode(), isBinary=False, applyMask=False, doNotCompress=True
        )
    return frame
