"""
Where a process's broadcasts go: the shared channel layer, or, with the in-memory layer, the
event loop of this process's own hub (servers register theirs). A process with neither sends
nothing: the servers' relays deliver its writes from the database.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer

from streaming.conf import channel_layer
from streaming.publish.redis_pubsub import blocking_group_send

_IN_MEMORY = f"{InMemoryChannelLayer.__module__}.{InMemoryChannelLayer.__qualname__}"
# A group nobody joins: one group_send to it opens the channel layer's connection.
_WARM_GROUP = "streaming.warm-up"


def reaches_anyone() -> bool:
    """
    Returns whether this process's broadcasts can reach a socket: over a shared channel layer,
    or to this process's own hub. Otherwise the servers' relays deliver from the database.
    """
    if not _in_memory_layer():
        return True
    return local_loop() is not None


def _in_memory_layer() -> bool:
    """
    Returns whether the default channel layer is the in-memory one, from the settings alone
    when it was not made yet: making it imports its backend (redis-py: ~100 ms), which the
    sender thread does, not the caller's save().
    """
    from channels.layers import channel_layers

    if DEFAULT_CHANNEL_LAYER in channel_layers.backends:
        return isinstance(channel_layer(), InMemoryChannelLayer)
    config = channel_layers.configs.get(DEFAULT_CHANNEL_LAYER)
    return config is None or config.get("BACKEND") == _IN_MEMORY


def serve_locally(loop: asyncio.AbstractEventLoop) -> None:
    """Called by a server's hub: broadcasts of this process may be handed to its loop."""
    _local_loops.add(loop)


def local_loop() -> asyncio.AbstractEventLoop | None:
    """Returns the event loop of this process's running hub, if there is one."""
    for loop in list(_local_loops):
        if loop.is_running() and not loop.is_closed():
            return loop
    return None


def send_all(loop: asyncio.AbstractEventLoop, outgoing: list[tuple[str, dict[str, Any]]]) -> None:
    """
    Sends each (group, message) from the sender thread: a blocking PUBLISH over channels-redis's
    pub/sub layer, otherwise the layer's group_send run on `loop`.
    """
    sender = blocking_group_send(channel_layer())
    if sender is None:
        loop.run_until_complete(group_send_all(outgoing))
        return
    for group, message in outgoing:
        sender.group_send(group, message)


def connect(loop: asyncio.AbstractEventLoop) -> None:
    """Opens the channel layer's connection, ahead of the first broadcast."""
    layer = channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return
    sender = blocking_group_send(layer)
    if sender is not None:
        sender.connect()
    else:
        loop.run_until_complete(layer.group_send(_WARM_GROUP, {"type": "streaming.warm"}))


async def group_send_all(outgoing: list[tuple[str, dict[str, Any]]]) -> None:
    """Sends each (group, message) over the layer, or hands them to the local hub's loop."""
    layer = channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        # One process only: hand the messages to the hub's own event loop, the only place
        # an in-memory layer can be used from.
        loop = local_loop()
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(_send_each(layer, outgoing), loop)
        await asyncio.wrap_future(future)
        return
    await _send_each(layer, outgoing)


async def _send_each(layer: Any, outgoing: list[tuple[str, dict[str, Any]]]) -> None:
    if len(outgoing) == 1:
        # The usual batch: awaited in place, its PUBLISH is written without gather's task
        # and the event loop turn that task waits for (~0.03 ms of a 0.25 ms send).
        await layer.group_send(*outgoing[0])
        return
    await asyncio.gather(*(layer.group_send(group, message) for group, message in outgoing))


_local_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
