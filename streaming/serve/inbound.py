"""
Checks on what a client sends, before the consumer dispatches it: strict JSON, a bounded
request_id, error replies that never echo more than a bounded part of the message, and the
stream and key a subscribe or unsubscribe names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from typing import Any

from channels.db import database_sync_to_async
from rest_framework.exceptions import NotFound, ValidationError

from streaming.registry import InvalidParams, Stream, StreamNotFound, get_stream
from streaming.serve import access

# A request_id is echoed in every reply: its compact JSON may take at most this many bytes.
MAX_REQUEST_ID_BYTES = 256
# Actions are echoed in replies: longer names are refused unechoed.
MAX_ACTION_CHARS = 64
# An "unexpected field" error names at most this many fields, each cut to MAX_FIELD_CHARS.
MAX_LISTED_FIELDS = 3
MAX_FIELD_CHARS = 64
# A key the user may not see answers exactly like a key that does not exist (as REST's 404).
HIDDEN = "Not found, or not visible to you."


class NotJSON(ValueError):
    """A frame held something JSON has no value for (NaN, Infinity, 1e400)."""


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 is valid JSON text, but Python reads it as inf, which cannot be echoed.
        raise NotJSON(f"{text[:32]} is out of range for a JSON number.")
    return value


def decode(text: str) -> Any:
    """Returns the JSON value of `text`; raises ValueError (NotJSON for non-finite numbers)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def request_id_too_large(request_id: Any) -> bool:
    """Returns whether the request_id's compact JSON exceeds MAX_REQUEST_ID_BYTES."""
    if request_id is None or isinstance(request_id, (bool, float)):
        # A finite float's JSON takes at most 24 bytes; an int may have thousands of digits.
        return False
    if isinstance(request_id, int) and request_id.bit_length() <= 800:
        # At most 242 digits and a sign: the common case, counted without encoding it.
        return False
    if isinstance(request_id, str) and len(request_id) * 4 + 2 <= MAX_REQUEST_ID_BYTES:
        return False
    # A deep or long value: encoding stops counting past the cap plus one chunk.
    size = 0
    for chunk in json.JSONEncoder(separators=(",", ":")).iterencode(request_id):
        size += len(chunk.encode("utf-8", "surrogatepass"))
        if size > MAX_REQUEST_ID_BYTES:
            return True
    return False


def unexpected_fields(extra: list[str]) -> dict[str, list[str]]:
    """
    Returns the error naming unexpected fields: at most MAX_LISTED_FIELDS, each cut to
    MAX_FIELD_CHARS, and a count of the rest, so the reply stays small whatever was sent.
    """
    listed = {name[:MAX_FIELD_CHARS]: ["Unexpected field."] for name in extra[:MAX_LISTED_FIELDS]}
    rest = len(extra) - MAX_LISTED_FIELDS
    if rest > 0:
        listed["non_field_errors"] = [f"And {rest} more unexpected fields."]
    return listed


def refusal(content: dict[str, Any], fields: Set[str]) -> tuple[str | None, Any, Any] | None:
    """
    Returns the (action, error, request_id) of the 400 a message gets before dispatch, or
    None: a request_id too large (not echoed), a long action name, fields not in `fields`.
    """
    action, request_id = content.get("action"), content.get("request_id")
    # An action name is echoed twice in a 405 (field and message): only short ones are.
    name = action if isinstance(action, str) and len(action) <= MAX_ACTION_CHARS else None
    if request_id_too_large(request_id):
        return name, {"request_id": [f"At most {MAX_REQUEST_ID_BYTES} bytes of JSON."]}, None
    if isinstance(action, str) and name is None:
        return None, {"action": [f"At most {MAX_ACTION_CHARS} characters."]}, request_id
    extra = sorted(set(content) - fields)
    if extra:
        return name, unexpected_fields(extra), request_id
    return None


def key_and_permission(scope: dict[str, Any], stream: Stream, params: Any) -> tuple[str, bool]:
    """
    Returns the key `params` name and whether the session's current user may subscribe to
    it (the user is recorded in the scope); runs in the database thread.
    """
    key = stream.params(params)
    scope["user"] = access.session_user(scope)
    return key, stream.permission(scope["user"], key)


# Made once: building a SyncToAsync per message was a tenth of a subscribe's cost in a storm.
_key_and_permission = database_sync_to_async(key_and_permission)


async def resolve(content: Mapping[str, Any], scope: dict[str, Any]) -> tuple[Stream, str, bool]:
    """
    Returns the stream and key named by a subscribe/unsubscribe message, and whether the
    session's user may subscribe to it: one hop to the database thread for both.
    """
    extra = sorted(set(content) - {"stream", "params"})
    if extra:
        raise ValidationError(unexpected_fields(extra))
    name, params = content.get("stream"), content.get("params", {})
    if not isinstance(name, str):
        raise ValidationError({"stream": ["Must be a string."]})
    if not isinstance(params, dict):
        raise ValidationError({"params": ["Must be an object."]})
    try:
        stream = get_stream(name)
        key, allowed = await _key_and_permission(scope, stream, params)
    except InvalidParams as exc:
        raise ValidationError({"params": [str(exc)]}) from exc
    except StreamNotFound as exc:
        # Not the stream's own message: it must read as a key the user may not see.
        raise NotFound(HIDDEN) from exc
    return stream, key, allowed
