"""
The canary for streaming/publish/redis_pubsub.py's reach into channels-redis: what the
sender thread PUBLISHes with a blocking client must reach the members a real
RedisPubSubChannelLayer added to the group, on the right shard, under the layer's prefix.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from streaming.publish.redis_pubsub import blocking_group_send
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def members_receive(layer: RedisPubSubChannelLayer, groups: list[str]) -> None:
    """Sends a message to each group with the blocking sender; each member must get its own."""
    sender = blocking_group_send(layer)
    assert sender is not None
    await sync_to_async(sender.connect)()
    channels = {}
    for group in groups:
        channels[group] = await layer.new_channel()
        await layer.group_add(group, channels[group])
    for group in groups:
        await sync_to_async(sender.group_send)(group, {"type": "streaming.update", "to": group})
    for group, channel in channels.items():
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        assert message == {"type": "streaming.update", "to": group}
    await layer.flush()


async def test_a_blocking_send_reaches_the_groups_members(redis_url: str):
    """Tests one shard, a dict host with options, and the layer's own prefix."""
    host = {"address": redis_url, "max_connections": 10}
    await members_receive(RedisPubSubChannelLayer(hosts=[host]), ["a", "b"])
    await members_receive(RedisPubSubChannelLayer(hosts=[redis_url], prefix="other"), ["a"])


async def test_each_group_is_sent_on_the_layers_shard_for_it(redis_url: str):
    """Tests two shards: each group's member (subscribed on its shard) gets its message."""
    second = RedisServer().start()
    try:
        layer = RedisPubSubChannelLayer(hosts=[redis_url, second.url])
        await members_receive(layer, [f"group-{i}" for i in range(8)])
    finally:
        second.stop()


def test_other_layers_and_hosts_are_left_to_group_send(redis_url: str):
    """Tests that layers and host forms the blocking sender does not know get None."""
    assert blocking_group_send(InMemoryChannelLayer()) is None
    assert blocking_group_send(RedisChannelLayer(hosts=[redis_url])) is None
    assert blocking_group_send(RedisPubSubChannelLayer(hosts=[("127.0.0.1", 6379)])) is None
    sentinel = {"sentinels": [("127.0.0.1", 26379)], "master_name": "m"}
    assert blocking_group_send(RedisPubSubChannelLayer(hosts=[sentinel])) is None


def test_a_layer_replaced_by_new_settings_is_freed_with_its_sender(redis_url: str):
    """Tests that the cached sender keeps neither its layer nor itself alive."""
    import gc
    import weakref

    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    sender = weakref.ref(blocking_group_send(layer))
    gone = weakref.ref(layer)
    del layer
    gc.collect()
    assert gone() is None
    assert sender() is None
