"""
A project's whole ASGI application in one import: HTTP to Django, /ws/stream/ and the
Server-Sent Events endpoint /sse/stream/ to streaming/.

    # mysite/asgi.py
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

    from streaming.asgi import application

A project with a ProtocolTypeRouter of its own uses websocket_application() as its
"websocket" entry and sse_application(its HTTP application) as its "http" entry instead
(docs/reference.md).
"""

from typing import Any

from django.core.asgi import get_asgi_application

# Loads Django's apps before the imports below, which reach models.
http_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import URLPattern  # noqa: E402

from streaming.serve.middleware import PathRouter, SessionUserMiddleware  # noqa: E402
from streaming.serve.origin import OriginValidator  # noqa: E402
from streaming.serve.routing import websocket_urlpatterns  # noqa: E402
from streaming.serve.sse_endpoint import EventStreamRouter, serve  # noqa: E402


def websocket_application(extra_patterns: list[URLPattern] | None = None) -> Any:
    """
    Returns the WebSocket stack: the site's own Origin (serve/origin.py), the session's user, then
    /ws/stream/ and `extra_patterns` (literal path() routes; use channels' URLRouter for others).
    """
    patterns = [*websocket_urlpatterns, *(extra_patterns or [])]
    # Typed Any: channels' stubs want a Coroutine where these layers return an Awaitable.
    inner: Any = SessionUserMiddleware(PathRouter(patterns))
    return OriginValidator(inner)


def sse_application(fallback: Any = None) -> Any:
    """
    Returns the HTTP stack serving Server-Sent Events at /sse/stream/ with the session's user
    (docs/protocol.md); every other request goes to `fallback` (Django), or gets a 404.
    """
    return EventStreamRouter(SessionUserMiddleware(serve), fallback)


application = ProtocolTypeRouter(
    {"http": sse_application(http_application), "websocket": websocket_application()}
)
