"""
ASGI layers in front of the stream consumer that keep nothing alive per socket beyond what
the socket needs: who opened it, and which consumer serves its path.

SessionUserMiddleware is a lighter AuthMiddlewareStack for long-lived sockets. channels'
stack keeps, for as long as a socket lives, a session wrapper (it exists to save HTTP
sessions; a socket never saves one), a SessionStore, a lazy user and four copies of the
scope. This keeps the session's key (streaming.serve.access re-reads the session by it) and the
user, in one scope copy. PathRouter routes literal paths without URLRouter's coroutine frame
and scope copy (about 1.4 KB per socket); the scope then has no "url_route".
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from asgiref.sync import markcoroutinefunction
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http.cookie import parse_cookie
from django.urls import URLPattern
from django.urls.resolvers import RoutePattern

# The scope key holding the session key the socket was opened with (None without one).
SESSION_KEY = "session_key"


def cookie_session_key(scope: dict[str, Any]) -> str | None:
    """Returns the session key in the scope's Cookie header, or None."""
    cookie = None
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            # Like channels' CookieMiddleware: the last Cookie header wins.
            cookie = value
    if cookie is None:
        return None
    return parse_cookie(cookie.decode("latin1")).get(settings.SESSION_COOKIE_NAME) or None


def resolve_session(session_key: str | None) -> tuple[str | None, Any]:
    """
    Returns the session's key and its user, read from the session store: no key and an
    anonymous user when the session is missing, invalid or was flushed (stale auth hash).
    """
    if not session_key:
        return None, AnonymousUser()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    user = auth.get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
    return store.session_key, user


class SessionUserMiddleware:
    """Sets scope["user"] and scope["session_key"] from the session cookie, once at connect."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @markcoroutinefunction
    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[Any]:
        """
        Called for each new connection; returns the application's coroutine. Without a
        session cookie there is nothing to read, and no frame of this middleware stays
        alive for as long as the socket.
        """
        key = cookie_session_key(scope)
        if key is None:
            return self.inner({**scope, SESSION_KEY: None, "user": AnonymousUser()}, receive, send)
        return self._with_session(key, scope, receive, send)

    async def _with_session(self, key: str, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        session_key, user = await database_sync_to_async(resolve_session)(key)
        return await self.inner({**scope, SESSION_KEY: session_key, "user": user}, receive, send)


class PathRouter:
    """
    Routes connections by their exact path to the applications of literal URL patterns;
    refuses a WebSocket to any other path at the handshake.
    """

    def __init__(self, patterns: Iterable[URLPattern]) -> None:
        self.routes: dict[str, Any] = {}
        for pattern in patterns:
            route = pattern.pattern
            if not isinstance(route, RoutePattern) or route.converters or pattern.default_args:
                raise ImproperlyConfigured(
                    f"PathRouter takes literal path() routes only, not {route}: use URLRouter."
                )
            self.routes[str(route)] = pattern.callback

    @markcoroutinefunction
    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[Any]:
        """Called for each new connection; returns its application's coroutine."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        # As URLRouter: the path must start with root_path; routes match without the "/".
        application = None
        if path.startswith(root_path):
            application = self.routes.get(path[len(root_path) :].lstrip("/"))
        if application is None:
            if scope["type"] != "websocket":
                raise ValueError(f"No route found for path {path!r}.")
            # A socket to no route is refused at the handshake (HTTP 403): URLRouter's
            # ValueError became a 500 and a traceback in the log for each such connect.
            return _refuse(receive, send)
        return application(scope, receive, send)


async def _refuse(receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close"})
