"""
Request-body guards for the REST API: a size cap and a nesting cap checked before any
parsing, lone surrogates refused after it, and JSON 400s (never a 500 or an HTML page)
for bodies that break them.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

# Deepest nesting of arrays and objects a body may have; the API's bodies are flat.
MAX_DEPTH = 20
# What json.loads leaves of a `\udXXX` escape with no partner: not text, and the database
# drivers fail to encode it (a 500). Valid pairs arrive combined into one character.
_SURROGATE = re.compile("[\ud800-\udfff]")


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Returns whether JSON text nests arrays or objects deeper than `limit` levels."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def lone_surrogate(value: Any) -> str | None:
    """Returns the first lone surrogate in a parsed body's strings (keys too), else None."""
    if isinstance(value, str):
        match = _SURROGATE.search(value)
        return match.group() if match else None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        for item in value:
            found = lone_surrogate(item)
            if found is not None:
                return found
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; values must be finite numbers")


def body_too_large() -> ParseError:
    """Returns the error for a body over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ParseError(f"Request body too large: at most {limit} bytes.")


class GuardedJSONParser(parsers.JSONParser):
    """JSON with NaN, Infinity and lone surrogates refused; nesting is capped before parsing."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        """Returns the parsed body, or raises ParseError (400) with a readable message."""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        data = stream.read(limit + 1 if limit is not None else -1)
        if limit is not None and len(data) > limit:
            raise body_too_large()
        if too_deep(data):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        try:
            text = data.decode((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET)
            parsed = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        surrogate = lone_surrogate(parsed)
        if surrogate is not None:
            raise ParseError(
                f"JSON parse error - lone surrogate \\u{ord(surrogate):04x} in a string; "
                "strings must be valid Unicode (a surrogate escape needs its pair)."
            )
        return parsed


class GuardedMultiPartParser(parsers.MultiPartParser):
    """Multipart forms (the browsable API) capped like any body: the API takes no files."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        """Returns the parsed form, or raises ParseError when the body is over the cap."""
        meta = parser_context["request"].META
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            raise body_too_large()
        return super().parse(stream, media_type, parser_context)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF's handler, plus a JSON 400 for bodies Django refuses as too large."""
    # Imported here: rest_framework.views reads the settings that name this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        exc = body_too_large()
    return drf_exception_handler(exc, context)
