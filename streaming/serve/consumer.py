"""
The WebSocket consumer behind /ws/stream/: the action/reply protocol (serve/actions.py),
with updates pushed by the process's hub (docs/protocol.md). Limits and close codes:
docs/security.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable
from typing import Any

from asgiref.sync import markcoroutinefunction
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from rest_framework.exceptions import (
    APIException,
    NotFound,
    Throttled,
    ValidationError,
)

from streaming import protocol
from streaming.conf import streaming_settings
from streaming.serve import inbound
from streaming.serve.actions import ActionConsumer, action, redis_errors
from streaming.serve.bounds import BoundedSocket
from streaming.serve.daphne import (
    release_handshake,
    release_upgrade_request,
    resume_reading,
    wire_for,
)
from streaming.serve.hub import Hub, Member, get_hub
from streaming.serve.inbound import HIDDEN
from streaming.serve.keepalive import get_keepalive
from streaming.serve.limits import (
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_LARGE,
    CLOSE_UNAVAILABLE,
    FloodGuard,
    too_large,
)
from streaming.serve.reads import get_reads
from streaming.serve.rechecks import REVOKED_PER_TURN, get_rechecker

logger = logging.getLogger("streaming.serve.consumer")

# Top-level fields a client message may carry; any other is refused before dispatch.
FIELDS = frozenset({"action", "request_id", "stream", "params"})
# Failures of the infrastructure (Redis), not of the request: the client should come back.
UNAVAILABLE = (*redis_errors(), OSError, TimeoutError)


class StreamConsumer(BoundedSocket, ActionConsumer):
    """Subscribes sockets to stream keys; each reply carries a snapshot with its version."""

    # No channel per socket: the hub holds the process's one channel and its group
    # memberships. A channel each would cost a Redis subscription per socket, and make
    # every connect fail while Redis is down.
    channel_layer_alias = None
    # Immutable and shared: this consumer joins no channel-layer group of its own.
    groups: tuple[str, ...] = ()

    def __init__(self) -> None:
        """Called once per connection; channels' per-socket setup has nothing to do here."""

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        """
        Returns the ASGI application: a consumer per connection. Unlike channels' own, it
        returns the consumer's coroutine instead of awaiting it, so no frame of its own
        stays alive for as long as the socket.
        """

        def app(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return markcoroutinefunction(app)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """
        Called by the server with each new connection: dispatches its messages in turn.
        With no channel layer there is one source to read, so this awaits it directly
        instead of channels' await_many_dispatch (a task and a wait set per socket).
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self.wire = None
        try:
            while True:
                message = await receive()
                if self.wire is not None:
                    resume_reading(self.wire)
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            self.release()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """
        Calls the message's handler. Unlike channels', it skips the hop to the database
        thread to close old connections: every database call here is a
        database_sync_to_async, which closes them in that thread, before and after.
        """
        # The hop was a tenth of the server's CPU in a storm of 5,000 connects.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Called when a WebSocket connection is opened."""
        self.hub: Hub = get_hub()
        self.subscriptions: dict[tuple[str, str], Member] = {}
        self.flood = FloodGuard(
            streaming_settings.RATE_PER_SECOND,
            streaming_settings.RATE_BURST,
            streaming_settings.RATE_STRIKES,
        )
        self.closing = False
        self.bound(wire_for(self))
        if self.wire is not None:
            release_upgrade_request(self.wire.transport)
            self.wire.watch(streaming_settings.SOCKET_BUFFER_BYTES)
        await super().websocket_connect(message)
        if self.wire is not None:
            # Accepted (or not) by now: the handshake is over either way.
            release_handshake(self.wire.protocol)
        get_keepalive().add(self, self.base_send, self.wire)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Called when the connection closes: leaves every subscribed key."""
        get_keepalive().discard(self)
        get_rechecker().forget(self)
        subscriptions = getattr(self, "subscriptions", {})
        for stream, key in list(subscriptions):
            del subscriptions[(stream, key)]
            await self.hub.leave(self, stream, key)
        await super().websocket_disconnect(message)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Called with each frame: rate-limited, size-capped; anything but an object is 400."""
        if self.closing or (self.wire is not None and not self.wire.open):
            # Frames already queued behind the one that closed the socket, or behind its
            # disconnect, get nothing: no one reads the reply.
            return
        verdict = self.flood.check()
        if verdict != FloodGuard.ALLOW:
            if verdict == FloodGuard.CLOSE:
                await self._close(CLOSE_RATE_LIMITED)
            else:
                await self.reply(action=None, errors=["Too many messages; slow down."], status=429)
            return
        if too_large(text_data, bytes_data, streaming_settings.MAX_MESSAGE_BYTES):
            await self._close(CLOSE_TOO_LARGE)
            return
        if text_data is None:
            await self.reply(action=None, errors=["Binary frames are not supported."], status=400)
            return
        try:
            content = inbound.decode(text_data)
        except inbound.NotJSON as exc:
            await self.reply(action=None, errors=[f"Malformed JSON: {exc}"], status=400)
            return
        except (ValueError, RecursionError):
            await self.reply(action=None, errors=["Malformed JSON."], status=400)
            return
        if not isinstance(content, dict):
            await self.reply(action=None, errors=["Expected a JSON object."], status=400)
            return
        # Checked before the message is spread into an action's keyword arguments.
        refused = inbound.refusal(content, FIELDS)
        if refused is not None:
            name, error, request_id = refused
            await self.reply(action=name, errors=[error], status=400, request_id=request_id)
            return
        await self.receive_json(content)

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        """Returns a frame's strict, compact JSON: NaN and Infinity are refused."""
        return protocol.encode(content)

    async def _close(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)

    async def handle_exception(self, exc: Exception, action: str | None, request_id: Any) -> None:
        """Replies to a failed action: 4xx for the request's fault; Redis down closes 4503."""
        if isinstance(exc, APIException):
            await super().handle_exception(exc, action, request_id)
            return
        if isinstance(exc, UNAVAILABLE):
            logger.warning("streaming: %r failed, Redis unavailable: %r; closing", action, exc)
            await self._close(CLOSE_UNAVAILABLE)
            return
        logger.exception("streaming: action %r failed", action, exc_info=exc)
        await self.reply(
            action=action, errors=["Internal error."], status=500, request_id=request_id
        )

    async def get_action_name(
        self, content: dict[str, Any], **kwargs: Any
    ) -> tuple[str, dict[str, Any]]:
        """Returns the message's action, which must be a string."""
        name = content.pop("action")
        if not isinstance(name, str):
            raise ValidationError({"action": ["Must be a string."]})
        return name, content

    @action()
    async def subscribe(self, request_id: Any, action: str, **content: Any) -> None:
        """Subscribes to a key and replies with its snapshot; updates follow, newer only."""
        stream, key, allowed = await inbound.resolve(content, self.scope)
        if not allowed:
            raise NotFound(HIDDEN)
        self.forget_gone()
        if (stream.name, key) not in self.subscriptions and (
            len(self.subscriptions) >= streaming_settings.MAX_SUBSCRIPTIONS
        ):
            cap = streaming_settings.MAX_SUBSCRIPTIONS
            raise Throttled(detail=f"At most {cap} subscriptions per connection.")
        # Join first, then read: a change committed after the read reaches us as an update.
        member = await self.hub.join(self, self.base_send, stream.name, key)
        self.subscriptions[(stream.name, key)] = member
        try:
            version, payload = await get_reads().read(stream, key)
        except BaseException:
            await self._leave(stream.name, key)
            raise
        if payload is None:
            await self._leave(stream.name, key)
            raise NotFound("This stream is gone.")
        data = {"stream": stream.name, "key": key, "version": version, "payload": payload}
        await self.reply(action=action, data=data, status=200, request_id=request_id)
        await self.hub.ready(member, version)
        get_rechecker().watch(self)

    @action()
    async def unsubscribe(
        self, request_id: Any, action: str, **content: Any
    ) -> tuple[dict[str, Any], int]:
        """
        Stops updates of a key; unsubscribing from a key not subscribed is a no-op. A key
        the user may not see is 404, as for subscribe: its reply would reveal the key.
        """
        stream, key, allowed = await inbound.resolve(content, self.scope)
        await self._leave(stream.name, key)
        if not allowed:
            raise NotFound(HIDDEN)
        return {"stream": stream.name, "key": key}, 200

    async def _leave(self, stream: str, key: str) -> None:
        if self.subscriptions.pop((stream, key), None) is not None:
            await self.hub.leave(self, stream, key)

    def forget_gone(self) -> None:
        """Drops subscriptions the hub ended (their object was deleted: `gone` was sent)."""
        for stream, key in list(self.subscriptions):
            if self not in self.hub.groups.get(protocol.group_name(stream, key), ()):
                del self.subscriptions[(stream, key)]

    async def revoke(self, user: Any, lost: list[tuple[str, str]]) -> None:
        """Called by the re-checker: records the current user, drops and reports lost keys."""
        self.scope["user"] = user
        lost = [pair for pair in lost if pair in self.subscriptions]
        # Leave every lost key before saying so (nothing follows a `revoked`), all at once:
        # the channel layer's unsubscribes then overlap instead of one wait per key.
        await asyncio.gather(*(self._leave(stream, key) for stream, key in lost))
        for n, (stream, key) in enumerate(lost, start=1):
            await self.send_json({"action": "revoked", "stream": stream, "key": key})
            if n % REVOKED_PER_TURN == 0:
                # Sends that never suspend would hold the event loop for all of them.
                await asyncio.sleep(0)
