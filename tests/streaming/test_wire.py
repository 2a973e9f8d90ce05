"""
streaming.serve.daphne's release of the HTTP request a daphne WebSocket was upgraded from, on real
Twisted objects: an HTTPChannel fed a request over a StringTransport.
"""

from __future__ import annotations

import gc
import weakref

from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

from streaming.serve.daphne import release_upgrade_request

UPGRADE = (
    b"GET /ws/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Upgraded(Request):
    """A request handed to another protocol, as daphne's upgrade does: it never finishes."""

    def process(self) -> None:
        """Called with the whole request: keeps it open."""


def channel_with(request: bytes | None) -> tuple[HTTPChannel, StringTransport]:
    """Returns an HTTPChannel on a transport, after receiving `request` (if any)."""
    channel = HTTPChannel()
    channel.requestFactory = Upgraded
    transport = StringTransport()
    channel.makeConnection(transport)
    if request is not None:
        channel.dataReceived(request)
    return channel, transport


def test_the_upgraded_request_is_released_and_freed_at_once():
    """
    Tests that a channel whose request was upgraded is no longer the transport's producer,
    and that it and its request are freed as soon as nothing else holds them (no GC pass).
    """
    channel, transport = channel_with(UPGRADE)
    assert transport.producer is channel
    request = weakref.ref(channel.requests[0])
    gone = weakref.ref(channel)
    del channel
    gc.disable()
    try:
        assert release_upgrade_request(transport)
        assert transport.producer is None
        assert gone() is None
        assert request() is None
    finally:
        gc.enable()


def test_a_channel_between_requests_is_kept():
    """Tests that a channel that may still read requests stays the transport's producer."""
    channel, transport = channel_with(None)
    assert not release_upgrade_request(transport)
    assert transport.producer is channel


def test_a_transport_without_a_producer_is_left_alone():
    """Tests that a transport with no producer, or another kind of producer, is untouched."""
    transport = StringTransport()
    assert not release_upgrade_request(transport)
    other = StringTransport()
    transport.registerProducer(other, True)
    assert not release_upgrade_request(transport)
    assert transport.producer is other


def test_the_open_state_named_in_daphne_py_is_autobahns():
    """Tests the canary for a constant daphne.py names to avoid importing autobahn."""
    from autobahn.websocket.protocol import WebSocketProtocol

    from streaming.serve import daphne

    assert daphne.STATE_OPEN == WebSocketProtocol.STATE_OPEN


def test_the_app_imports_and_serves_asgi_without_twisted_or_autobahn():
    """
    Tests that streaming's ASGI application imports in a process where Twisted, autobahn
    and daphne cannot be imported at all, as under uvicorn without the daphne extra.
    """
    import subprocess
    import sys

    from tests.support.processes import ROOT, process_env

    code = (
        "import sys\n"
        "for name in ('twisted', 'autobahn', 'daphne'):\n"
        "    sys.modules[name] = None\n"
        "import importlib, os, types\n"
        "base = importlib.import_module('settings.test')\n"
        "mod = types.ModuleType('nodaphne')\n"
        "mod.__dict__.update({k: v for k, v in vars(base).items() if k.isupper()})\n"
        "mod.INSTALLED_APPS = [a for a in base.INSTALLED_APPS if a != 'daphne']\n"
        "sys.modules['nodaphne'] = mod\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'nodaphne'\n"
        "from streaming.asgi import application\n"
        "import streaming.serve.consumer, streaming.serve.hub, streaming.serve.keepalive\n"
        "print('ok', callable(application))\n"
    )
    env = process_env(None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok True"
