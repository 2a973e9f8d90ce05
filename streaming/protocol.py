"""Group names and the frames sent to clients: built once per broadcast, sent verbatim."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def group_name(stream: str, key: str) -> str:
    """Returns the channel-layer group of a key (a hash: keys may hold any character)."""
    digest = hashlib.blake2b(f"{stream}\x00{key}".encode(), digest_size=16).hexdigest()
    return f"streaming.k.{digest}"


def control_group(stream: str) -> str:
    """Returns the group every hub with subscribers of `stream` listens to for refreshes."""
    digest = hashlib.blake2b(stream.encode(), digest_size=8).hexdigest()
    return f"streaming.c.{digest}"


def encode(frame: dict[str, Any]) -> str:
    """Returns the compact JSON text of a frame; NaN and Infinity are refused."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)


def update_message(
    stream: str, key: str, version: int, payload: dict[str, Any] | None
) -> dict[str, Any]:
    """
    Returns the channel-layer message for a key's new state, with the client frame
    already encoded: an `update`, or a `gone` once the key's object no longer exists.
    """
    frame: dict[str, Any] = {"action": "update" if payload is not None else "gone"}
    frame.update(stream=stream, key=key, version=version)
    if payload is not None:
        frame["payload"] = payload
    return {
        "type": "stream.update",
        "group": group_name(stream, key),
        "stream": stream,
        "key": key,
        "version": version,
        "gone": payload is None,
        "text": encode(frame),
    }


def refresh_message(stream: str, prefix: str) -> dict[str, Any]:
    """Returns the message asking every hub to re-send its keys of `stream` under `prefix`."""
    return {"type": "stream.refresh", "stream": stream, "prefix": prefix}
