"""
Polices daphne's sockets: a socket's pings count against its limits, its keepalive is deaf
to what the client sends (a client that never answers a ping is dropped, even one that
keeps sending), and daphne stops reading it while MAX_QUEUED_FRAMES of its frames wait for
the consumer.

The hooks live on a subclass of daphne's protocol class that the socket, and every later
socket of its factory, runs as. The subclass also holds autobahn's options, which autobahn
otherwise copies into each socket's __dict__: 29 of its 114 entries, whose dict then takes
3.3 KB a socket instead of 1.7 KB. Adopting the first socket also makes autobahn's debug
lines cheap for every later one (`streaming.serve.daphne.quiet`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from streaming.serve.daphne.quiet import defer_debug_lines
from streaming.serve.daphne.wire import STATE_OPEN, Wire, report_once

# Frames a socket may have waiting for its consumer before daphne stops reading it: daphne
# queues every frame it reads, however long the consumer takes (a request waiting on Redis).
MAX_QUEUED_FRAMES = 16


def police(wire: Wire, admit: Callable[[], bool] | None) -> bool:
    """
    Makes a daphne socket answer a ping only when `admit()` returns True, and ping its
    client every --ping-interval seconds whatever the client sends, so one that does not
    answer within --ping-timeout is dropped. `admit` None undoes it (the consumer ended).
    Returns False if the socket could not be policed (logged once).

    autobahn answers every ping itself, straight into the transport: a client sending pings
    without reading grew the server by the pongs. daphne pings only a socket idle for
    --ping-interval, and autobahn takes any data frame for a pong: a client that sends now
    and then was never dropped.
    """
    protocol = wire.protocol
    if admit is None:
        # Breaks the protocol -> consumer -> protocol cycle.
        protocol.__dict__.pop("streaming_admit", None)
        resume_reading(wire)
        return True
    if not _adopt(protocol):
        report_once(
            "police",
            logging.WARNING,
            "streaming: could not police a daphne socket's pings and reads (daphne or "
            "autobahn changed?); the socket is served without those limits",
        )
        return False
    protocol.streaming_admit = admit
    protocol.streaming_pinged_at = time.time()
    # Data frames must not stand in for a pong: a client that never reads may still send.
    protocol.autoPingRestartOnAnyTraffic = False
    return True


def resume_reading(wire: Wire) -> None:
    """Called as the consumer takes a message: reads the socket again once it caught up."""
    protocol = wire.protocol
    if not getattr(protocol, "streaming_paused", False):
        return
    queue = getattr(protocol, "application_queue", None)
    if queue is None or queue.qsize() <= MAX_QUEUED_FRAMES // 2:
        protocol.streaming_paused = False
        protocol.transport.resumeProducing()


def _adopt(protocol: Any) -> bool:
    """Makes the socket run as the policed subclass of its factory's protocol class."""
    factory: Any = getattr(protocol, "factory", None)
    cls = getattr(factory, "protocol", None)
    if not isinstance(cls, type):
        return False
    if not cls.__dict__.get("streaming_policed"):
        if not isinstance(protocol, cls) or not hasattr(cls, "CONFIG_ATTRS"):
            return False
        cls = factory.protocol = _policed(cls, factory)
        defer_debug_lines()
    if type(protocol) is not cls:
        if not isinstance(protocol, cls.__bases__[0]):
            return False
        # Its options were copied already: the instance's own copies keep applying.
        protocol.__class__ = cls
    return True


def _policed(base: Any, factory: Any) -> type:
    """Returns daphne's protocol class with the hooks, and the factory's options as class
    attributes (autobahn copies an option only if the socket lacks it)."""

    class Policed(base):
        streaming_policed = True
        # Set by police() while a consumer polices the socket; None serves it as daphne does.
        streaming_admit: Callable[[], bool] | None = None
        streaming_paused = False
        streaming_pinged_at = 0.0

        def onPing(self, payload: bytes) -> None:
            admit = self.streaming_admit
            if admit is None:
                super().onPing(payload)
            elif self.state == STATE_OPEN and admit():
                self.sendPong(payload)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            super().onMessage(payload, isBinary)
            if self.streaming_admit is None or self.streaming_paused:
                return
            queue = getattr(self, "application_queue", None)
            if queue is not None and queue.qsize() >= MAX_QUEUED_FRAMES:
                # What the client sends meanwhile waits in the kernel's buffers, then in its own.
                self.streaming_paused = True
                self.transport.pauseProducing()

        def check_timeouts(self) -> None:
            if self.streaming_admit is None:
                super().check_timeouts()
                return
            # daphne's own check (connect and socket timeouts, keepalive), run on a ping clock
            # that only this socket's pings reset: daphne resets `last_ping` on every message.
            pending = self.autoPingPending is not None
            # While a ping waits for its pong, autobahn's --ping-timeout call is armed: no other.
            self.last_ping = time.time() if pending else self.streaming_pinged_at
            super().check_timeouts()
            if not pending:
                self.streaming_pinged_at = self.last_ping

    Policed.__qualname__ = Policed.__name__ = f"Policed{base.__name__}"
    for name in base.CONFIG_ATTRS:
        value = getattr(factory, name)
        # A function (perMessageCompressionAccept) must not become a method of the socket.
        setattr(Policed, name, staticmethod(value) if callable(value) else value)
    return Policed
