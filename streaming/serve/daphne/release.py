"""
Frees what daphne, Twisted and autobahn keep of a WebSocket's opening handshake for as
long as the socket lives, though nothing reads it once the socket is open.
"""

from __future__ import annotations

from typing import Any

from streaming.serve.daphne.wire import STATE_OPEN


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


def release_handshake(protocol: Any) -> bool:
    """
    Frees autobahn's copy of an open socket's handshake; returns whether it did.

    autobahn keeps the request's bytes, its parsed headers (also on the ConnectionRequest
    daphne keeps), its extension offers and the response's text: about 2.4 KB a socket
    with a few headers, more with a browser's. Only the handshake reads them, and daphne
    reads only the request's path afterwards.
    """
    if protocol.state != STATE_OPEN:
        return False
    protocol.http_request_data = b""
    protocol.http_response_data = ""
    protocol.http_headers = {}
    protocol.websocket_extensions = []
    request = getattr(protocol, "request", None)
    if request is not None:
        request.headers = {}
        request.extensions = []
    return True
