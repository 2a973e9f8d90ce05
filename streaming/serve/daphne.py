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

`police` makes each socket's pings count against its limits, its keepalive deaf to what
the client sends (a client that never answers a ping is dropped, even one that keeps
sending), and stops reading a socket while MAX_QUEUED_FRAMES of its frames wait for the
consumer.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streaming.ops.stats import stats

if TYPE_CHECKING:
    from autobahn.websocket.protocol import PreparedMessage

logger = logging.getLogger("streaming.serve.daphne")

# autobahn's WebSocketProtocol.STATE_OPEN, named here so that importing this module loads
# neither autobahn nor Twisted (the app also runs under uvicorn); a canary test checks it.
_OPEN = 3
# Whether the fallback to the ASGI send was reported already (once per process).
_reported: set[str] = set()
# Frames a socket may have waiting for its consumer before daphne stops reading it: daphne
# queues every frame it reads, however long the consumer takes (a request waiting on Redis).
MAX_QUEUED_FRAMES = 16
# How many wrappers around daphne's send to look through (channels' session middleware
# adds one).
_MAX_WRAPPERS = 4


class Wire:
    """
    One daphne WebSocket connection, written to directly. Registered as its transport's
    streaming producer (Twisted's documented flow control: pauseProducing past bufferSize
    unsent bytes, resumeProducing once they are written), it tells the hub when it drains.
    """

    __slots__ = ("protocol", "transport", "watched")
    # Called with a wire whose buffer drained (set by streaming.serve.hub).
    on_drain: Callable[[Wire], None] | None = None

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
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
        return self.protocol.state == _OPEN

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
        if self.protocol.state == _OPEN:
            self._write(frame, queued)
        return True

    def write(self, frame: PreparedMessage) -> None:
        """Writes a prepared frame: the bytes autobahn's sendPreparedMessage would send."""
        self._write(frame, self.backlog())

    def _write(self, frame: PreparedMessage, queued: int) -> None:
        if self.protocol.send_queue:
            # autobahn is in the middle of a queued (synchronous) send: let it order ours.
            self.protocol.sendPreparedMessage(frame)
            return
        data = frame.payloadHybi
        t = self.transport
        if queued == 0 and t.connected and not t.disconnecting:
            # Nothing queued: send now, as asyncio's transports do, instead of Twisted's
            # register-writer, wait-for-writable, send, unregister (3 more syscalls).
            sent = t.writeSomeData(data)
            if isinstance(sent, int):
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
        _report_once(
            "miss",
            logging.WARNING,
            "streaming: the daphne fast path could not attach to a socket (daphne, Twisted "
            "or autobahn changed?); it is served through the ASGI send, without backpressure",
        )
    elif wire is None:
        _report_once(
            "other",
            logging.INFO,
            "streaming: not under daphne: sockets are served through the ASGI send",
        )
    return wire


def _report_once(kind: str, level: int, message: str) -> None:
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
                needed = ("dataBuffer", "offset", "_tempDataLen", "writeSomeData", "disconnecting")
                if all(hasattr(transport, a) for a in needed):
                    return Wire(protocol), True
            return None, daphne
        send = getattr(getattr(send, "__self__", None), "real_send", None)
    return None, False


def _is_websocket_protocol(value: object) -> bool:
    # Not loaded, not in use: no import (and no Twisted) for servers other than daphne.
    module = sys.modules.get("autobahn.websocket.protocol")
    return module is not None and isinstance(value, module.WebSocketProtocol)


def release_upgrade_request(transport: Any) -> bool:
    """
    Frees the HTTP request a daphne WebSocket was upgraded from; returns whether it did.

    daphne leaves the HTTPChannel that received the upgrade request registered as the
    transport's producer, which keeps it and its request (headers, buffers: about 4 KB)
    alive as long as the socket. In that state it does nothing: its pause and resume act
    on a request producer (there is none) and on reading only between requests (this one
    never ends). Unregistering it changes nothing else.
    """
    from twisted.web.http import HTTPChannel

    producer = getattr(transport, "producer", None)
    if not (
        isinstance(producer, HTTPChannel)
        and producer._handlingRequest
        and producer._requestProducer is None
    ):
        return False
    transport.unregisterProducer()
    # The channel and its request refer to each other: this frees them now, not at the
    # next cyclic garbage collection.
    producer.requests.clear()
    return True


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


def police(wire: Wire, admit: Callable[[], bool] | None) -> None:
    """
    Makes a daphne socket answer a ping only when `admit()` returns True, and ping its
    client every --ping-interval seconds whatever the client sends, so one that does not
    answer within --ping-timeout is dropped. `admit` None undoes it (the consumer ended).

    autobahn answers every ping itself, straight into the transport: a client sending pings
    without reading grew the server by the pongs. daphne pings only a socket idle for
    --ping-interval, and autobahn takes any data frame for a pong: a client that sends now
    and then was never dropped.
    """
    protocol = wire.protocol
    if admit is None:
        # Breaks the protocol -> consumer -> protocol cycle the hooks made.
        for name in ("onPing", "onMessage", "check_timeouts", "streaming_admit"):
            protocol.__dict__.pop(name, None)
        resume_reading(wire)
        return
    protocol.streaming_admit = admit
    protocol.streaming_pinged_at = time.time()
    protocol.streaming_paused = False
    protocol.onPing = types.MethodType(_on_ping, protocol)
    protocol.onMessage = types.MethodType(_on_message, protocol)
    protocol.check_timeouts = types.MethodType(_check_timeouts, protocol)
    # Data frames must not stand in for a pong: a client that never reads may still send.
    protocol.autoPingRestartOnAnyTraffic = False


def _on_ping(protocol: Any, payload: bytes) -> None:
    if protocol.state == _OPEN and protocol.streaming_admit():
        protocol.sendPong(payload)


def _on_message(protocol: Any, payload: bytes, is_binary: bool) -> None:
    type(protocol).onMessage(protocol, payload, is_binary)
    queue = getattr(protocol, "application_queue", None)
    if queue is not None and queue.qsize() >= MAX_QUEUED_FRAMES and not protocol.streaming_paused:
        # What the client sends meanwhile waits in the kernel's buffers, then in its own.
        protocol.streaming_paused = True
        protocol.transport.pauseProducing()


def resume_reading(wire: Wire) -> None:
    """Called as the consumer takes a message: reads the socket again once it caught up."""
    protocol = wire.protocol
    if not protocol.__dict__.get("streaming_paused"):
        return
    queue = getattr(protocol, "application_queue", None)
    if queue is None or queue.qsize() <= MAX_QUEUED_FRAMES // 2:
        protocol.streaming_paused = False
        protocol.transport.resumeProducing()


def _check_timeouts(protocol: Any) -> None:
    # daphne's own check (connect and socket timeouts, keepalive), run on a ping clock
    # that only this socket's pings reset: daphne resets `last_ping` on every message.
    pending = protocol.autoPingPending is not None
    # While a ping waits for its pong, autobahn's --ping-timeout call is armed: no other.
    protocol.last_ping = time.time() if pending else protocol.streaming_pinged_at
    type(protocol).check_timeouts(protocol)
    if not pending:
        protocol.streaming_pinged_at = protocol.last_ping
