"""
The WebSocket consumer behind /ws/stream/: DCRF's action/reply protocol, with updates
pushed by the process's hub (docs/protocol.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from channels.db import database_sync_to_async
from djangochannelsrestframework.consumers import AsyncAPIConsumer
from djangochannelsrestframework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, Throttled, ValidationError
from rest_framework.permissions import AllowAny

from streaming.conf import streaming_settings, version_store
from streaming.hub import Hub, Member, get_hub
from streaming.registry import InvalidParams, Stream, StreamNotFound, get_stream


class StreamConsumer(AsyncAPIConsumer):
    """Subscribes sockets to stream keys; each reply carries a snapshot with its version."""

    permission_classes = (AllowAny,)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Called when a WebSocket connection is opened."""
        self.hub: Hub = get_hub()
        self.subscriptions: dict[tuple[str, str], Member] = {}
        await super().websocket_connect(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Called when the connection closes: leaves every subscribed key."""
        for stream, key in list(getattr(self, "subscriptions", {})):
            await self.hub.leave(self, stream, key)
        await super().websocket_disconnect(message)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Called with each frame: anything but a JSON object gets a 400 reply."""
        if text_data is None:
            await self.reply(action=None, errors=["Binary frames are not supported."], status=400)
            return
        if len(text_data) > streaming_settings.MAX_MESSAGE_BYTES:
            await self.close(code=4009)
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.reply(action=None, errors=["Malformed JSON."], status=400)
            return
        if not isinstance(content, dict):
            await self.reply(action=None, errors=["Expected a JSON object."], status=400)
            return
        await self.receive_json(content)

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
        stream, key = await self._resolve(content)
        user = self.scope.get("user")
        if not await database_sync_to_async(stream.permission)(user, key):
            raise PermissionDenied("You may not subscribe to this stream.")
        if (stream.name, key) not in self.subscriptions and (
            len(self.subscriptions) >= streaming_settings.MAX_SUBSCRIPTIONS
        ):
            cap = streaming_settings.MAX_SUBSCRIPTIONS
            raise Throttled(detail=f"At most {cap} subscriptions per connection.")
        # Join first, then read: a change committed after the read reaches us as an update.
        member = await self.hub.join(self, self.base_send, stream.name, key)
        self.subscriptions[(stream.name, key)] = member
        try:
            version = await version_store().current(stream.name, key)
            payload = await database_sync_to_async(stream.payload)(key, None)
        except BaseException:
            await self._leave(stream.name, key)
            raise
        if payload is None:
            await self._leave(stream.name, key)
            raise NotFound("This stream is gone.")
        data = {"stream": stream.name, "key": key, "version": version, "payload": payload}
        await self.reply(action=action, data=data, status=200, request_id=request_id)
        await self.hub.ready(member, version)

    @action()
    async def unsubscribe(
        self, request_id: Any, action: str, **content: Any
    ) -> tuple[dict[str, Any], int]:
        """Stops updates of a key; unsubscribing from a key not subscribed is a no-op."""
        stream, key = await self._resolve(content)
        await self._leave(stream.name, key)
        return {"stream": stream.name, "key": key}, 200

    async def _leave(self, stream: str, key: str) -> None:
        if self.subscriptions.pop((stream, key), None) is not None:
            await self.hub.leave(self, stream, key)

    async def _resolve(self, content: Mapping[str, Any]) -> tuple[Stream, str]:
        """Returns the stream and key named by a subscribe/unsubscribe message."""
        extra = sorted(set(content) - {"stream", "params"})
        if extra:
            raise ValidationError({name: ["Unexpected field."] for name in extra})
        name, params = content.get("stream"), content.get("params", {})
        if not isinstance(name, str):
            raise ValidationError({"stream": ["Must be a string."]})
        if not isinstance(params, dict):
            raise ValidationError({"params": ["Must be an object."]})
        try:
            stream = get_stream(name)
            key = await database_sync_to_async(stream.params)(params)
        except InvalidParams as exc:
            raise ValidationError({"params": [str(exc)]}) from exc
        except StreamNotFound as exc:
            raise NotFound(str(exc)) from exc
        return stream, key
