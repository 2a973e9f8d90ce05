"""
Where streaming/ reaches into channels-redis's pub/sub layer, both ways (docs/benchmarks.md):

- the sender thread's blocking PUBLISH: the same bytes to the same channel and shard as the
  layer's group_send, without redis-py's asyncio client and the event loop turn around it
  (48 against 170 µs a send, measured alone);
- a server hub's inbox: the layer's receive task hands an update straight to the hub,
  without the queue and the hub's receive loop between them (~0.08 ms of a delivery).

It reads channels-redis internals (the layer's hosts, prefix and serializer, its group
channel names, its shard hash, its per-loop layer's channel queues):
tests/streaming/test_redis_pubsub.py is their canary, against a real layer and Redis. Any
other layer, or hosts it does not know (Sentinel), is left to the layer's own API.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("streaming.publish.redis_pubsub")

# Seconds a send or a connect may block the sender thread (a hung Redis): the batch then
# fails and is retried, as a failed group_send is.
_TIMEOUT = 5.0
_PUBSUB_LAYER = ("channels_redis.pubsub", "RedisPubSubChannelLayer")
_cache: weakref.WeakKeyDictionary[Any, BlockingGroupSend | None] = weakref.WeakKeyDictionary()


class BlockingGroupSend:
    """Sends group messages the way a RedisPubSubChannelLayer does, with blocking clients."""

    def __init__(self, layer: Any, hosts: list[dict[str, Any]], prefix: str) -> None:
        import redis
        from channels_redis.utils import _consistent_hash

        # The layer's serializer, not the layer: the cache below is keyed by the layer, which
        # must not outlive its settings.
        self.serialize = layer._serializer.serialize
        self.shard_of = _consistent_hash
        self.prefix = prefix
        self.clients = []
        for host in hosts:
            options: dict[str, Any] = {
                "socket_timeout": _TIMEOUT,
                "socket_connect_timeout": _TIMEOUT,
            }
            options.update(host)
            address: str = options.pop("address")
            self.clients.append(redis.Redis.from_url(address, **options))

    def group_send(self, group: str, message: dict[str, Any]) -> None:
        """PUBLISHes `message` to the group's channel, on the group's shard."""
        channel = f"{self.prefix}__group__{group}"
        client = self.clients[self.shard_of(channel, len(self.clients))]
        client.publish(channel, self.serialize(message))

    def connect(self) -> None:
        """Opens each shard's connection now, before a broadcast waits for it."""
        for client in self.clients:
            client.ping()


def blocking_group_send(layer: Any) -> BlockingGroupSend | None:
    """Returns the blocking sender for `layer`, or None if it is not one it can send for."""
    try:
        return _cache[layer]
    except KeyError:
        pass
    sender = None
    try:
        sender = _make(layer)
    except Exception:
        logger.warning(
            "streaming: the blocking PUBLISH could not attach to the channel layer "
            "(channels-redis changed?); broadcasts go through its group_send",
            exc_info=True,
        )
    _cache[layer] = sender
    return sender


def _make(layer: Any) -> BlockingGroupSend | None:
    if not _is_pubsub_layer(layer):
        return None
    from channels_redis.utils import decode_hosts

    kwargs = layer._kwargs
    if layer._args or set(kwargs) - {"hosts", "prefix"}:
        return None
    hosts = decode_hosts(kwargs.get("hosts"))
    if not all(isinstance(host.get("address"), str) for host in hosts):
        # (host, port) pairs, Sentinel: left to the layer's own group_send.
        return None
    return BlockingGroupSend(layer, hosts, kwargs.get("prefix", "asgi"))


# Takes a message off the layer, returning whether it did (False: the message is queued).
Deliver = Callable[[dict[str, Any]], bool]


class Inbox(asyncio.Queue[bytes]):
    """
    Stands in for the queue channels-redis keeps for a hub's channel: a message that finds
    nothing queued before it is offered to `deliver` in the layer's receive task, and queued
    for the hub's receive loop only if `deliver` does not take it.
    """

    def __init__(self, deserialize: Callable[[bytes], Any], deliver: Deliver) -> None:
        super().__init__()
        self._deserialize = deserialize
        self._deliver = deliver

    def put_nowait(self, item: bytes) -> None:
        """Hands `item` to the hub, or queues it behind what waits (in order)."""
        if self.empty():
            try:
                if self._deliver(self._deserialize(item)):
                    return
            except Exception:
                # Raised into channels-redis's receive task, it would pause that task for a
                # second: the hub's receive loop gets the message instead.
                logger.exception("streaming: handing a message to the hub failed")
        super().put_nowait(item)


def attach_inbox(layer: Any, channel: str, deliver: Deliver) -> bool:
    """
    Makes a pub/sub layer offer `channel`'s messages to `deliver` (which returns whether it
    took one) as they arrive; call it before anything receives on `channel`. Returns False
    for any other layer, and if it cannot attach (logged).
    """
    if not _is_pubsub_layer(layer):
        return False
    try:
        loop_layer = layer._get_layer()
        queue = loop_layer.channels[channel]
        if type(queue) is not asyncio.Queue:
            raise TypeError(f"the channel's queue is a {type(queue).__qualname__}")
        inbox = Inbox(loop_layer.channel_layer.deserialize, deliver)
        while not queue.empty():
            asyncio.Queue.put_nowait(inbox, queue.get_nowait())
        loop_layer.channels[channel] = inbox
    except Exception:
        logger.warning(
            "streaming: the hub's inbox could not attach to the channel layer "
            "(channels-redis changed?); updates go through its receive",
            exc_info=True,
        )
        return False
    return True


def _is_pubsub_layer(layer: Any) -> bool:
    cls = type(layer)
    return (cls.__module__, cls.__qualname__) == _PUBSUB_LAYER
