"""
What a Server-Sent Events request asks for (docs/protocol.md, "Server-Sent Events"): its
subscriptions, read from the query string in one of two forms, each checked like the
WebSocket's subscribe message before anything is joined, and the replies it gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from streaming.conf import streaming_settings
from streaming.registry import InvalidParams, Stream, StreamNotFound, get_stream
from streaming.serve import inbound
from streaming.serve.inbound import HIDDEN

# Query-string bytes a request may carry: 50 subscriptions of a few params fit in far less.
MAX_QUERY_BYTES = 16 * 1024
# The fields a `subscribe=` object may hold (a WebSocket subscribe's, less its action).
FIELDS = frozenset({"stream", "params", "request_id"})


class BadRequest(ValueError):
    """The request as a whole is malformed: it gets this HTTP status and no stream."""

    def __init__(self, status: int, errors: Any) -> None:
        super().__init__(errors)
        self.status = status
        self.errors = errors


@dataclass
class Wanted:
    """One subscription a request asks for: a stream's name, its params, an echoed id."""

    stream: Any
    params: Any = field(default_factory=dict)
    request_id: Any = None
    # Asked in the plain form (`stream=…`): a refusal is then the response's own status.
    plain: bool = False


def parse(query_string: bytes) -> list[Wanted]:
    """
    Returns the subscriptions of a query string: `stream=NAME&param=value…` (one, params
    as strings) or repeated `subscribe=<JSON object>`; raises BadRequest (400, 429).
    """
    if len(query_string) > MAX_QUERY_BYTES:
        raise BadRequest(400, [f"The query string is over {MAX_QUERY_BYTES} bytes."])
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(400, ["The query string is not valid UTF-8."]) from exc
    names = [name for name, _ in pairs]
    if "subscribe" in names:
        others = sorted(set(names) - {"subscribe"})
        if others:
            raise BadRequest(400, inbound.unexpected_fields(others))
        wanted = [_decode(value) for _, value in pairs]
    elif "stream" in names:
        wanted = [_plain(pairs)]
    elif names:
        raise BadRequest(400, inbound.unexpected_fields(sorted(set(names))))
    else:
        wanted = []
    cap = streaming_settings.MAX_SUBSCRIPTIONS
    if len(wanted) > cap:
        raise BadRequest(429, [f"At most {cap} subscriptions per connection."])
    return wanted


def _plain(pairs: list[tuple[str, str]]) -> Wanted:
    """Returns the one subscription of the plain form: every field but `stream` is a param."""
    params: dict[str, str] = {}
    stream = None
    for name, value in pairs:
        if name in params or (name == "stream" and stream is not None):
            raise BadRequest(400, {name[: inbound.MAX_FIELD_CHARS]: ["Given more than once."]})
        if name == "stream":
            stream = value
        else:
            params[name] = value
    return Wanted(stream=stream, params=params, plain=True)


def _decode(text: str) -> Wanted:
    """Returns one `subscribe=` subscription: a JSON object of stream, params, request_id."""
    try:
        content = inbound.decode(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, {"subscribe": [f"Malformed JSON: {str(exc)[:100]}"]}) from exc
    if not isinstance(content, dict):
        raise BadRequest(400, {"subscribe": ["Expected a JSON object."]})
    refused = inbound.refusal(content, FIELDS)
    if refused is not None:
        raise BadRequest(400, refused[1])
    return Wanted(content.get("stream"), content.get("params", {}), content.get("request_id"))


# (what was asked, its stream and key once allowed, else the error reply's status and errors)
Resolved = tuple[Wanted, Stream | None, str | None, int, list[Any]]


def reply(
    wanted: Wanted, status: int, data: Any = None, errors: list[Any] | None = None
) -> dict[str, Any]:
    """Returns a subscribe reply frame, shaped as the WebSocket's (DCRF's reply)."""
    return {
        "action": "subscribe",
        "errors": errors or [],
        "data": data,
        "response_status": status,
        "request_id": wanted.request_id,
    }


def resolve(scope: dict[str, Any], wanted: list[Wanted]) -> list[Resolved]:
    """Returns each subscription's stream and key, or its error: checked as a socket's subscribe."""
    user = scope["user"]
    out: list[Resolved] = []
    for item in wanted:
        if not isinstance(item.stream, str):
            out.append((item, None, None, 400, [{"stream": ["Must be a string."]}]))
            continue
        if not isinstance(item.params, dict):
            out.append((item, None, None, 400, [{"params": ["Must be an object."]}]))
            continue
        try:
            stream = get_stream(item.stream)
            key = stream.params(item.params)
        except InvalidParams as exc:
            out.append((item, None, None, 400, [{"params": [str(exc)]}]))
            continue
        except StreamNotFound:
            out.append((item, None, None, 404, [HIDDEN]))
            continue
        if not stream.permission(user, key):
            out.append((item, None, None, 404, [HIDDEN]))
            continue
        out.append((item, stream, key, 200, []))
    return out
