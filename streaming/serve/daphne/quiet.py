"""
Makes autobahn build the text of its debug lines only when a line is written.

autobahn passes each debug line its arguments already formatted: a socket's options through
pprint.pformat as it opens, and names and values through `hltype`/`hlval` (ANSI-coloured
with click when click is installed) as it opens, receives data and closes. With debug
logging off, as in production, it built that text for nothing: 7.5 % of the server's CPU in
a storm of 5,000 connects (docs/benchmarks.md). The text is the same when a line is written.
"""

from __future__ import annotations

import logging
import pprint
import sys
from collections.abc import Callable
from typing import Any

from streaming.serve.daphne.wire import report_once

# The modules whose every call of hltype and hlval is a log line's keyword argument
# (tests/streaming/test_police.py checks it in their source).
HL_MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")


class Deferred:
    """fn(*args), computed only when its text is asked for."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(
        self, fn: Callable[..., str], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __str__(self) -> str:
        return self.fn(*self.args, **(self.kwargs or {}))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        # What a log observer that stores events as data would have recorded: the text.
        return repr(str(self))


def defer_debug_lines() -> None:
    """Installs the deferred formatters in autobahn once; logs a warning if it cannot."""
    if not _defer_options_log():
        report_once(
            "options-log",
            logging.WARNING,
            "streaming: could not defer autobahn's options log (autobahn changed?); each "
            "socket's opening formats it as autobahn does",
        )
    for name in HL_MODULES:
        if not _defer_highlights(sys.modules.get(name)):
            report_once(
                f"highlights-{name}",
                logging.WARNING,
                f"streaming: could not defer {name}'s hltype/hlval (autobahn changed?); its "
                "debug lines are formatted as autobahn does",
            )


def _defer_options_log() -> bool:
    """
    Makes WebSocketProtocol._connectionMade's pformat of the socket's options deferred; the
    module's other calls of pformat, whose text it uses, still get it at once.
    """
    module: Any = sys.modules.get("autobahn.websocket.protocol")
    current = getattr(module, "pformat", None)
    if getattr(current, "streaming_deferred", False):
        return True
    opening = getattr(getattr(module, "WebSocketProtocol", None), "_connectionMade", None)
    if current is not pprint.pformat or opening is None:
        return False
    code = opening.__code__

    def pformat(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or sys._getframe(1).f_code is not code:
            return pprint.pformat(obj, *args, **kwargs)
        return Deferred(pprint.pformat, (obj,))

    pformat.streaming_deferred = True  # type: ignore[attr-defined]
    module.pformat = pformat
    return True


def _defer_highlights(module: Any) -> bool:
    """Makes `module`'s hltype and hlval return Deferred texts."""
    for name in ("hltype", "hlval"):
        current = getattr(module, name, None)
        if getattr(current, "streaming_deferred", False):
            continue
        if not callable(current) or getattr(current, "__module__", None) != "autobahn.util":
            return False
        setattr(module, name, _deferring(current))
    return True


def _deferring(fn: Callable[..., str]) -> Callable[..., Deferred]:
    def deferred(*args: Any, **kwargs: Any) -> Deferred:
        return Deferred(fn, args, kwargs)

    deferred.streaming_deferred = True  # type: ignore[attr-defined]
    return deferred
