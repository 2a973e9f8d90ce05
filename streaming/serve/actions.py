"""
The action/reply protocol of /ws/stream/, owned here in djangochannelsrestframework's
message shape (docs/protocol.md): `{"action", "request_id", ...}` in, and replies of
`{"errors", "data", "action", "response_status", "request_id"}`. DCRF's consumer carries
per-socket maps, permission classes and observers this protocol has no use for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import APIException, MethodNotAllowed

logger = logging.getLogger("streaming.serve.consumer")

Handler = Callable[..., Awaitable[tuple[Any, int] | None]]


class ActionMissing(APIException):
    """A message without an `action` (405, as DCRF answers it)."""

    status_code = 405
    default_detail = "Unable to find action in message body."
    default_code = "method_not_allowed"


def action() -> Callable[[Handler], Handler]:
    """Marks a consumer method as an action clients may call by its name: `@action()`."""

    def mark(method: Handler) -> Handler:
        method.is_action = True  # type: ignore[attr-defined]
        return method

    return mark


# Typed Any: channels' stubs type scopes and events as TypedDicts this consumer passes on as
# plain dicts, and its fast paths override __call__ with the server's own arguments.
_Consumer: Any = AsyncJsonWebsocketConsumer


class ActionConsumer(_Consumer):
    """Dispatches each JSON message to the action it names, and replies DCRF's way."""

    actions: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.actions = {
            name: name for name in dir(cls) if getattr(getattr(cls, name), "is_action", False)
        }

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        """Called with each message: runs its action; a failure gets an error reply."""
        request_id = content.pop("request_id", None)
        name: str | None = None
        try:
            if "action" not in content:
                raise ActionMissing()
            name, content = await self.get_action_name(content)
            if name not in self.actions:
                raise MethodNotAllowed(method=name)
            handler = getattr(self, self.actions[name])
            result = await handler(request_id=request_id, action=name, **content)
            if result is not None:
                data, status = result
                await self.reply(action=name, data=data, status=status, request_id=request_id)
        except Exception as exc:
            await self.handle_exception(exc, name, request_id)

    async def get_action_name(self, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Returns the message's action name and the rest of it."""
        return content.pop("action"), content

    async def reply(
        self,
        action: str | None,
        data: Any = None,
        errors: list[Any] | None = None,
        status: int = 200,
        request_id: Any = None,
    ) -> None:
        """Sends a reply to a request."""
        await self.send_json(
            {
                "errors": errors or [],
                "data": data,
                "action": action,
                "response_status": status,
                "request_id": request_id,
            }
        )

    async def handle_exception(self, exc: Exception, action: str | None, request_id: Any) -> None:
        """Replies to an APIException with its status and detail; anything else propagates."""
        if not isinstance(exc, APIException):
            raise exc
        detail = exc.detail
        errors = detail if isinstance(detail, list) else [detail]
        await self.reply(
            action=action, errors=errors, status=exc.status_code, request_id=request_id
        )


def redis_errors() -> tuple[type[Exception], ...]:
    """Returns redis-py's error class when it is installed (the `redis` extra), else none."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return ()
    return (RedisError,)
