"""
The ASGI application behind /sse/stream/ (docs/protocol.md, "Server-Sent Events"): checks
the request, answers a malformed one with its HTTP status and no stream, then streams.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import markcoroutinefunction
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from streaming import protocol
from streaming.serve.sse import EventStream
from streaming.serve.sse_request import BadRequest, parse, reply, resolve

# Where streaming.asgi serves it (a project mounting sse_application() itself may choose).
SSE_PATH = "sse/stream/"
# DEBUG's default hosts, as Django's own host check allows them.
_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


async def respond(send: Any, status: int, content: Any, headers: tuple[Any, ...] = ()) -> None:
    """Sends a whole JSON response."""
    body = protocol.encode(content).encode()
    start = [(b"content-type", b"application/json"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def _host_allowed(scope: dict[str, Any]) -> bool:
    """Returns whether the Host header names an allowed host, as Django checks it."""
    host = next((v.decode("latin1") for k, v in scope.get("headers", ()) if k == b"host"), "")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = _DEBUG_HOSTS
    return bool(domain) and validate_host(domain, allowed)


async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serves one request: 405/400/429 before streaming, or a stream of events."""
    if scope["type"] != "http":
        raise ValueError(f"The SSE endpoint serves HTTP, not {scope['type']!r}.")
    if scope["method"] != "GET":
        await respond(send, 405, {"errors": ["Only GET."]}, ((b"allow", b"GET"),))
        return
    if not _host_allowed(scope):
        await respond(send, 400, {"errors": ["Invalid Host header."]})
        return
    try:
        wanted = parse(scope.get("query_string", b""))
    except BadRequest as exc:
        await respond(send, exc.status, {"errors": exc.errors})
        return
    resolved = await database_sync_to_async(resolve)(scope, wanted)
    if len(resolved) == 1 and resolved[0][0].plain and resolved[0][1] is None:
        # The plain form's one subscription was refused: its status is the response's, so
        # EventSource stops instead of retrying. The `subscribe=` form streams its refusals.
        first, _, _, status, errors = resolved[0]
        await respond(send, status, reply(first, status, errors=errors))
        return
    await EventStream(scope, send).run(receive, resolved)


class EventStreamRouter:
    """Routes HTTP requests for `path` to the SSE endpoint, every other one to `fallback`."""

    def __init__(self, application: Any, fallback: Any = None, path: str = SSE_PATH) -> None:
        self.application = application
        self.fallback = fallback
        self.path = path

    @markcoroutinefunction
    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Called for each request; returns its application's coroutine."""
        path, root_path = scope.get("path", ""), scope.get("root_path", "")
        # As channels' URLRouter: the path must start with root_path, routes without the "/".
        if path.startswith(root_path) and path[len(root_path) :].lstrip("/") == self.path:
            return self.application(scope, receive, send)
        if self.fallback is None:
            return respond(send, 404, {"errors": ["Not found."]})
        return self.fallback(scope, receive, send)
