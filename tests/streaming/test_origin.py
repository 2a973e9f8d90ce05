"""
The handshake's Origin check (streaming/serve/origin.py) against a real daphne: only the
site's own scheme, host and port, or CSRF_TRUSTED_ORIGINS, may open a socket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websockets

from streaming.serve.origin import allowed_origin
from tests.support.processes import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

TRUSTED = "https://app.example.com,https://*.example.org"


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[DaphneServer]:
    """Returns a daphne (no Redis: a handshake needs none) trusting two more origins."""
    with django_db_blocker.unblock():
        server = DaphneServer(None, CSRF_TRUSTED_ORIGINS=TRUSTED).start()
    yield server
    server.stop()


async def handshake(server: DaphneServer, *headers: tuple[str, str]) -> int:
    """Opens a socket with the given extra headers; returns 101, or the refusal's status."""
    try:
        async with websockets.connect(server.ws_url, additional_headers=headers, open_timeout=10):
            return 101
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


async def test_the_sites_own_origin_and_trusted_origins_are_accepted(server):
    """Tests that the Origin of the Host and scheme used, or a trusted one, opens a socket."""
    own = f"http://127.0.0.1:{server.port}"
    for origin in [own, own.upper(), "https://app.example.com", "https://eu.example.org"]:
        assert await handshake(server, ("Origin", origin)) == 101, origin
    # Default ports may be spelled out.
    assert await handshake(server, ("Origin", "https://app.example.com:443")) == 101


async def test_other_origins_of_the_same_host_are_refused(server):
    """
    Tests that other ports, schemes and userinfo tricks on the same host, and foreign,
    malformed, null, missing or repeated Origins are refused with 403.
    """
    port = server.port
    refused = [
        "http://localhost:3000",
        "http://127.0.0.1:6666",
        "http://127.0.0.1",
        f"https://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}",
        "http://evil.com@127.0.0.1",
        f"http://evil.com@127.0.0.1:{port}",
        f"http://user:pw@127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/path",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://example.org.evil.com",
        "https://evil.com",
        "null",
    ]
    for origin in refused:
        assert await handshake(server, ("Origin", origin)) == 403, origin
    assert await handshake(server) == 403
    own = f"http://127.0.0.1:{port}"
    # autobahn itself refuses a repeated Origin (400); the validator would too (403).
    assert await handshake(server, ("Origin", own), ("Origin", "https://evil.com")) in (400, 403)


def scope(origin: str, host: str = "metrics.example.com", **extra: bytes) -> dict:
    """Returns a WebSocket handshake scope with the given Origin, Host and other headers."""
    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    headers += [(name.replace("_", "-").encode(), value) for name, value in extra.items()]
    return {"type": "websocket", "scheme": "ws", "headers": headers}


def test_behind_a_tls_proxy_the_own_origin_is_https(settings):
    """
    Tests that behind a proxy setting SECURE_PROXY_SSL_HEADER the site's own origin is
    https (as Django's request.is_secure()), and http only without the header.
    """
    settings.ALLOWED_HOSTS = ["metrics.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https = "https://metrics.example.com"
    assert allowed_origin(scope(https, x_forwarded_proto=b"https"))
    assert not allowed_origin(scope("http://metrics.example.com", x_forwarded_proto=b"https"))
    assert not allowed_origin(scope(https))
    assert allowed_origin(scope("http://metrics.example.com"))
    # A Host outside ALLOWED_HOSTS has no origin of its own.
    assert not allowed_origin(
        scope("https://evil.com", host="evil.com", x_forwarded_proto=b"https")
    )
