"""streaming.asgi: the one-import application, its WebSocket stack by hand, its SSE route."""

from __future__ import annotations

import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.urls import path

from settings import asgi as demo_asgi
from streaming import asgi
from streaming.serve.consumer import StreamConsumer
from streaming.serve.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
HOSTILE = [(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")]
LIST = {"action": "subscribe", "request_id": 1, "stream": "no.such.stream", "params": {}}


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def speaks_protocol(application, route: str = "/ws/stream/") -> bool:
    """Returns whether `route` accepts a socket that gets a protocol reply to a subscribe."""
    communicator = WebsocketCommunicator(application, route, headers=ORIGIN)
    connected, _ = await communicator.connect(timeout=5)
    if not connected:
        return False
    await communicator.send_json_to(LIST)
    reply = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return reply["request_id"] == 1 and reply["response_status"] == 404


def test_the_demo_serves_streaming_asgi_application():
    """Tests that settings.asgi is streaming.asgi's application, not a copy of its stack."""
    assert demo_asgi.application is asgi.application


async def test_application_serves_the_stream_protocol_on_ws_stream():
    """Tests that streaming.asgi.application answers the protocol on /ws/stream/."""
    assert await speaks_protocol(asgi.application)


async def test_application_refuses_an_origin_outside_allowed_hosts():
    """Tests that a socket from an Origin not in ALLOWED_HOSTS is refused at connect."""
    communicator = WebsocketCommunicator(asgi.application, "/ws/stream/", headers=HOSTILE)
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_websocket_application_composes_into_a_projects_router():
    """Tests that websocket_application() serves /ws/stream/ and a project's own literal routes."""
    router = ProtocolTypeRouter(
        {
            "http": asgi.http_application,
            "websocket": asgi.websocket_application([path("ws/mine/", StreamConsumer.as_asgi())]),
        }
    )
    assert await speaks_protocol(router)
    assert await speaks_protocol(router, "/ws/mine/")


async def test_websocket_urlpatterns_work_in_channels_own_stack():
    """Tests the documented URLRouter composition: channels' auth stack, streaming's route."""
    mine = [path("ws/rooms/<str:room>/", StreamConsumer.as_asgi())]
    stack = AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *mine]))
    )
    assert await speaks_protocol(stack)
    assert await speaks_protocol(stack, "/ws/rooms/lobby/")


async def test_application_routes_sse_stream_and_leaves_other_paths_to_django():
    """
    Tests that streaming.asgi.application answers /sse/stream/ itself (a 404 JSON reply for
    an unknown stream, before any stream starts) and every other path through Django.
    """
    sse = HttpCommunicator(
        asgi.application, "GET", "/sse/stream/?stream=no.such.stream", headers=ORIGIN
    )
    response = await sse.get_response(timeout=5)
    assert response["status"] == 404
    assert json.loads(response["body"])["errors"] == ["Not found, or not visible to you."]
    django = HttpCommunicator(asgi.application, "GET", "/sse/stream/x", headers=ORIGIN)
    other = await django.get_response(timeout=5)
    assert other["status"] == 404
    assert b"Not found, or not visible" not in other["body"]


async def test_sse_application_without_fallback_serves_only_its_path():
    """Tests that sse_application() alone answers other paths 404, and a foreign Host 400."""
    alone = asgi.sse_application()
    other = HttpCommunicator(alone, "GET", "/elsewhere/", headers=ORIGIN)
    assert (await other.get_response(timeout=5))["status"] == 404
    foreign = [(b"host", b"evil.example")]
    hostile = HttpCommunicator(alone, "GET", "/sse/stream/?stream=x", headers=foreign)
    assert (await hostile.get_response(timeout=5))["status"] == 400
