"""
A generic app that broadcasts model changes live over WebSockets.

Apps register a Stream (what to observe, which keys a change touches, how to build a
key's payload, who may see it); streaming/ does the rest. It never imports its users.
"""

from streaming.registry import (
    AllKeys,
    InvalidParams,
    Source,
    Stream,
    StreamNotFound,
    get_stream,
    register,
)

__version__ = "0.2.0"

__all__ = [
    "AllKeys",
    "InvalidParams",
    "Source",
    "Stream",
    "StreamNotFound",
    "get_stream",
    "register",
]
