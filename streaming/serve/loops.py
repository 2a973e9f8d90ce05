"""One instance of a server-side service per event loop (tests run several loops)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_loop(make: Callable[[asyncio.AbstractEventLoop], T]) -> Callable[[], T]:
    """Returns a function that returns the running loop's instance, made by `make` once."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        instance = instances.get(loop)
        if instance is None:
            instance = instances[loop] = make(loop)
        return instance

    return get
