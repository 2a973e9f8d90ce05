"""
streaming.serve.daphne's police and handshake release, on daphne's own protocol and
factory over a Twisted StringTransport: a real opening handshake, real ping frames.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from streaming.serve.daphne import STATE_OPEN, Wire, police, release_handshake
from streaming.serve.daphne.quiet import HL_MODULES, Deferred

HANDSHAKE = (
    b"GET /ws/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)
# A masked ping from the client, payload b"hi".
PING = bytes([0x89, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])


class Server:
    """What daphne's protocol asks of daphne's Server during a handshake."""

    root_path = ""
    proxy_forwarded_address_header = None

    def protocol_connected(self, protocol: Any) -> None:
        """Called as a socket connects."""

    def create_application(self, protocol: Any, scope: dict) -> queue.SimpleQueue:
        """Returns the application's input queue."""
        return queue.SimpleQueue()

    def log_action(self, *args: Any) -> None:
        """Called for daphne's access log."""

    def protocol_disconnected(self, protocol: Any) -> None:
        """Called as a socket closes."""


def daphne_factory() -> WebSocketFactory:
    """Returns daphne's factory, with the options daphne's Server sets."""
    factory = WebSocketFactory(Server())
    factory.setProtocolOptions(autoPingInterval=7, autoPingTimeout=9, allowNullOrigin=True)
    return factory


def open_socket(factory: WebSocketFactory) -> tuple[Any, StringTransport]:
    """Returns a socket of `factory` after its handshake was accepted, and its transport."""
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    protocol._raw_query_string = b""  # set by daphne's HTTP protocol as it upgrades
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(HANDSHAKE)
    protocol.serverAccept()
    assert protocol.state == STATE_OPEN
    transport.clear()
    return protocol, transport


def test_later_sockets_read_autobahns_options_from_their_class():
    """
    Tests that once a socket is policed, later sockets of its factory keep no copy of
    autobahn's options, yet read the factory's values (a function option stays unbound).
    """
    factory = daphne_factory()
    first, _ = open_socket(factory)
    assert police(Wire(first), lambda: True)
    assert type(first) is factory.protocol
    assert issubclass(factory.protocol, WebSocketProtocol)
    later, _ = open_socket(factory)
    assert type(later) is factory.protocol
    assert [name for name in later.CONFIG_ATTRS if name in later.__dict__] == []
    assert (later.autoPingInterval, later.autoPingTimeout) == (7, 9)
    assert later.perMessageCompressionAccept is factory.perMessageCompressionAccept


def test_a_policed_socket_answers_a_ping_only_when_admitted():
    """Tests that pongs follow admit(), and that an unpoliced socket answers as autobahn does."""
    factory = daphne_factory()
    protocol, transport = open_socket(factory)
    verdict = [False]
    assert police(Wire(protocol), lambda: verdict[0])
    protocol.dataReceived(PING)
    assert transport.value() == b""
    verdict[0] = True
    protocol.dataReceived(PING)
    assert transport.value() == b"\x8a\x02hi"
    transport.clear()
    police(Wire(protocol), None)
    assert "streaming_admit" not in protocol.__dict__
    protocol.dataReceived(PING)
    assert transport.value() == b"\x8a\x02hi"


def test_the_handshake_is_freed_once_the_socket_is_open():
    """
    Tests that an open socket no longer holds its handshake: the parsed headers dict, which
    autobahn and daphne's request shared, is referenced by nothing else.
    """
    protocol, _ = open_socket(daphne_factory())
    headers = protocol.http_headers
    assert headers is protocol.request.headers
    assert "origin" in headers
    assert release_handshake(protocol)
    assert sys.getrefcount(headers) == 2  # `headers` and getrefcount's argument
    assert (protocol.http_request_data, protocol.websocket_extensions) == (b"", [])
    assert protocol.request.path == "/ws/stream/"


def test_a_socket_still_in_its_handshake_keeps_it():
    """Tests that a socket not yet accepted keeps what its handshake needs."""
    factory = daphne_factory()
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    protocol._raw_query_string = b""
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(HANDSHAKE)
    assert not release_handshake(protocol)
    assert "upgrade" in protocol.http_headers


def test_later_sockets_format_autobahns_options_log_only_if_it_is_written(monkeypatch):
    """
    Tests that once a socket is policed, a later socket's opening does not format its
    options for autobahn's debug line; that the line, when written, holds the same text;
    and that autobahn's other use of pformat still gets a string.
    """
    import pprint

    from autobahn.websocket import protocol as autobahn_protocol

    factory = daphne_factory()
    first, _ = open_socket(factory)
    assert police(Wire(first), lambda: True)
    assert autobahn_protocol.pformat.streaming_deferred
    calls = []
    real = pprint.pformat
    monkeypatch.setattr(pprint, "pformat", lambda *a, **k: calls.append(a) or real(*a, **k))
    open_socket(factory)
    assert calls == []
    logged = []

    class Logging:
        """A debug logger that writes its line, as txaio's does with debug logging on."""

        @staticmethod
        def debug(text: str, **kwargs: object) -> None:
            logged.append(text.format(**kwargs))

    later = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    later.log = Logging()
    later._raw_query_string = b""
    later.makeConnection(StringTransport())
    options = [line for line in logged if "autoPingInterval" in line]
    assert len(options) == 1
    assert "('autoPingInterval', 7," in options[0]
    assert len(calls) == 1
    assert repr(Deferred(real, ([("a", 1)],))) == repr(real([("a", 1)]))
    timings = autobahn_protocol.Timings()
    timings.track("x")
    assert type(str(timings)) is str
    assert "'x'" in str(timings)


def test_later_sockets_highlight_names_and_values_only_in_lines_written(monkeypatch):
    """
    Tests that once a socket is policed, autobahn's hltype and hlval build no text for
    debug lines not written (a later socket opens, receives and closes without calling
    autobahn.util.hl), and that a line written holds autobahn's own text.
    """
    import autobahn.util
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    factory = daphne_factory()
    first, _ = open_socket(factory)
    assert police(Wire(first), lambda: True)
    calls = []
    real = autobahn.util.hl
    monkeypatch.setattr(autobahn.util, "hl", lambda *a, **k: calls.append(a) or real(*a, **k))
    later, _ = open_socket(factory)
    later.dataReceived(PING)
    later.connectionLost(Failure(ConnectionDone()))
    assert calls == []
    from autobahn.twisted import websocket as twisted_websocket

    text = str(twisted_websocket.hlval(42, color="green"))
    assert text == autobahn.util.hlval(42, color="green")
    assert "42" in text


def test_autobahn_calls_hltype_and_hlval_only_for_log_lines():
    """
    Tests the canary of the deferred highlights: in each module streaming patches, every
    call of hltype or hlval is a keyword argument of a log call, whose text is only read
    when the line is written.
    """
    import ast
    import importlib
    import inspect

    for name in HL_MODULES:
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        highlights = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("hltype", "hlval")
        ]
        in_log_lines = [
            keyword.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value).endswith("log")
            for keyword in node.keywords
        ]
        assert highlights, name
        assert all(any(h is value for value in in_log_lines) for h in highlights), name
