"""
A blocking PUBLISH for channels-redis's pub/sub layer, used by the sender thread: the same
bytes to the same channel and shard as the layer's group_send, without redis-py's asyncio
client and the event loop turn around it (48 against 170 µs a send, measured alone;
docs/benchmarks.md).

It reads channels-redis internals (the layer's hosts, prefix and serializer, its group
channel names, its shard hash): tests/streaming/test_redis_pubsub.py is their canary,
against a real layer's subscribers. Any other layer, or hosts it does not know
(Sentinel), gets None and is sent through group_send.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

logger = logging.getLogger("streaming.publish.redis_pubsub")

# Seconds a send or a connect may block the sender thread (a hung Redis): the batch then
# fails and is retried, as a failed group_send is.
_TIMEOUT = 5.0
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
    cls = type(layer)
    if (cls.__module__, cls.__qualname__) != ("channels_redis.pubsub", "RedisPubSubChannelLayer"):
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
