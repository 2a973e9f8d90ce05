"""
streaming.serve.middleware: the session cookie resolved to a user once, at connect, and the
session's key kept for the re-checks (streaming.serve.access). End to end over daphne, with
logout and a lost permission: tests/streaming/test_access.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.compatibility import is_double_callable
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import path, re_path

from streaming.serve import access
from streaming.serve.consumer import StreamConsumer
from streaming.serve.middleware import (
    SESSION_KEY,
    PathRouter,
    SessionUserMiddleware,
    cookie_session_key,
)

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(username: str = "viewer") -> tuple[User, str]:
    """Returns a user and the key of a session logged in as them."""
    user = User.objects.create_user(username, password="pw")
    client = Client()
    client.force_login(user)
    return user, client.cookies[settings.SESSION_COOKIE_NAME].value


async def scope_seen(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Returns the scope the application under the middleware gets for a socket."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    original = {"type": "websocket", "path": "/ws/stream/", "headers": headers}
    await SessionUserMiddleware(app)(original, None, None)
    assert SESSION_KEY not in original
    assert "user" not in original
    return seen


def cookie(*pairs: str) -> tuple[bytes, bytes]:
    """Returns a Cookie header carrying `name=value` pairs."""
    return (b"cookie", "; ".join(pairs).encode())


async def test_a_session_cookie_gives_the_socket_its_user_and_session_key():
    """Tests that the scope carries the session's user and key, among other cookies."""
    user, key = await sync_to_async(logged_in)()
    scope = await scope_seen([cookie("csrftoken=x", f"{settings.SESSION_COOKIE_NAME}={key}")])
    assert scope["user"] == user
    assert scope["user"].is_authenticated
    assert scope[SESSION_KEY] == key
    assert access.session_key(scope) == key


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [cookie("csrftoken=x")],
        [cookie(f"{settings.SESSION_COOKIE_NAME}=")],
        [cookie(f"{settings.SESSION_COOKIE_NAME}=no-such-session-key")],
        [cookie(f"{settings.SESSION_COOKIE_NAME}=short")],
    ],
)
async def test_no_valid_session_means_an_anonymous_socket_without_a_key(headers):
    """Tests that a missing, empty, unknown or malformed session cookie is anonymous."""
    scope = await scope_seen(headers)
    assert not scope["user"].is_authenticated
    assert scope[SESSION_KEY] is None


async def test_a_logged_out_session_is_anonymous_at_the_next_recheck():
    """Tests that access.session_user re-reads the session the middleware kept by key."""
    user, key = await sync_to_async(logged_in)()
    scope = await scope_seen([cookie(f"{settings.SESSION_COOKIE_NAME}={key}")])
    assert (await sync_to_async(access.session_user)(scope)) == user

    # What logout does to the session store.
    await sync_to_async(Session.objects.filter(session_key=key).delete)()
    assert not (await sync_to_async(access.session_user)(scope)).is_authenticated


def test_the_last_cookie_header_wins():
    """Tests that with two Cookie headers the session key comes from the last one."""
    name = settings.SESSION_COOKIE_NAME
    scope = {"headers": [cookie(f"{name}=first-key-1"), cookie(f"{name}=second-key-2")]}
    assert cookie_session_key(scope) == "second-key-2"


async def test_the_rechecks_find_the_session_under_channels_auth_stack_too():
    """Tests that access.session_key reads channels' scope["session"] when that stack is used."""
    user, key = await sync_to_async(logged_in)()
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    headers = [cookie(f"{settings.SESSION_COOKIE_NAME}={key}")]
    await AuthMiddlewareStack(app)({"type": "websocket", "headers": headers}, None, None)
    assert access.session_key(seen) == key
    assert (await sync_to_async(access.session_user)(seen)) == user


def test_the_frameless_layers_are_asgi3_single_callables():
    """
    Tests that the middleware and the consumer's application, plain functions returning a
    coroutine, still count as ASGI 3 applications for servers (daphne, uvicorn) that check.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass

    assert not is_double_callable(SessionUserMiddleware(app))
    assert not is_double_callable(StreamConsumer.as_asgi())
    assert StreamConsumer.as_asgi().consumer_class is StreamConsumer


async def routed(router: PathRouter, path: str, root_path: str = "") -> dict[str, Any]:
    """Returns the scope the routed application got for a connection to `path`."""
    scope = {"type": "websocket", "path": path, "root_path": root_path}
    seen = await router(scope, None, None)
    assert seen is scope
    return seen


async def test_the_path_router_hands_the_scope_itself_to_the_literal_route():
    """Tests that a literal path reaches its application with the scope itself (no copy)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
        return scope

    router = PathRouter([path("ws/stream/", app)])
    assert (await routed(router, "/ws/stream/"))["path"] == "/ws/stream/"
    assert (await routed(router, "/live/ws/stream/", root_path="/live"))["root_path"] == "/live"
    for wrong, root_path in [("/ws/other/", ""), ("/ws/stream/x/", ""), ("/ws/stream/", "/live")]:
        assert await refused(router, wrong, root_path)


async def refused(router: PathRouter, path: str, root_path: str = "") -> bool:
    """Returns whether a socket to `path` was closed at its handshake, reaching no application."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": path, "root_path": root_path}
    await router(scope, receive, send)
    return sent == [{"type": "websocket.close"}]


def test_the_path_router_refuses_routes_it_cannot_match_exactly():
    """Tests that patterns with converters, regexes or default kwargs are refused at startup."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        pass

    for pattern in [path("ws/<int:n>/", app), re_path(r"^ws/$", app), path("ws/", app, {"a": 1})]:
        with pytest.raises(ImproperlyConfigured):
            PathRouter([pattern])
