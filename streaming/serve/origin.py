"""
The handshake's Origin check, as strict as Django's CSRF origin check: the Origin header's
scheme, host and port must be the site's own (the scheme and Host header the socket was
opened with, the host being in ALLOWED_HOSTS) or one of CSRF_TRUSTED_ORIGINS. channels'
AllowedHostsOriginValidator compares hosts only: another app of the same host
(`http://localhost:3000`) and an origin with userinfo (`http://evil.com@127.0.0.1`) passed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import markcoroutinefunction
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """Returns an origin's (scheme, host, port), or None unless it is a plain http(s) origin."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        # Userinfo is never part of an origin: `http://evil.com@127.0.0.1` is refused.
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _headers(scope: dict[str, Any], name: bytes) -> list[str]:
    return [value.decode("latin1") for key, value in scope.get("headers", ()) if key == name]


def is_secure(scope: dict[str, Any]) -> bool:
    """Returns whether the socket came over TLS: wss, or the proxy header Django trusts."""
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy:
        return False
    header, secure_value = proxy
    # As Django's request.is_secure(): HTTP_X_FORWARDED_PROTO names x-forwarded-proto.
    name = header.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
    values = _headers(scope, name)
    return bool(values) and values[-1].split(",", 1)[0].strip() == secure_value


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """Returns the origin the socket was opened on (scheme and Host), if its host is allowed."""
    hosts = _headers(scope, b"host")
    if len(hosts) != 1:
        return None
    domain, _ = split_domain_port(hosts[0])
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        # As Django's request.get_host().
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed):
        return None
    return parse_origin(f"{'https' if is_secure(scope) else 'http'}://{hosts[0]}")


def trusted(origin: Origin, netloc: str) -> bool:
    """Returns whether an origin is one of CSRF_TRUSTED_ORIGINS (`https://*.example.com` too)."""
    scheme = origin[0]
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in entry:
            parts = urlsplit(entry)
            if parts.scheme == scheme and is_same_domain(netloc, parts.netloc.lstrip("*")):
                return True
        elif parse_origin(entry) == origin:
            return True
    return False


def allowed_origin(scope: dict[str, Any]) -> bool:
    """Returns whether the handshake's one Origin header is the site's own or trusted."""
    values = _headers(scope, b"origin")
    if len(values) != 1:
        return False
    origin = parse_origin(values[0])
    if origin is None:
        return False
    return origin == own_origin(scope) or trusted(origin, urlsplit(values[0]).netloc.lower())


class OriginValidator:
    """Refuses (HTTP 403) a WebSocket handshake whose Origin is not the site's (see above)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @markcoroutinefunction
    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[Any]:
        """Called for each new connection; returns the application's or the denier's coroutine."""
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator takes WebSocket connections only.")
        if allowed_origin(scope):
            return self.inner(scope, receive, send)
        return WebsocketDenier()(scope, receive, send)  # type: ignore[arg-type]
