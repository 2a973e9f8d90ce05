"""
The canary for streaming/publish/redis_pubsub.py's reach into channels-redis, against a real
RedisPubSubChannelLayer and Redis: what the sender thread PUBLISHes with a blocking client
must reach the members the layer added to the group, on the right shard, under the layer's
prefix; and a hub's inbox must be handed what arrives on its channel, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from streaming.publish.redis_pubsub import attach_inbox, blocking_group_send
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


async def until(condition: Any, seconds: float = 5.0) -> None:
    """Waits until condition() is true; fails after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_the_inbox_is_handed_each_message_as_it_arrives(redis_url: str):
    """
    Tests that a message published to a group reaches the inbox's deliver in the layer's own
    receive task, and that receive() then has nothing: it was not queued as well.
    """
    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    channel = await layer.new_channel("streaming.hub.")
    delivered: list[dict[str, Any]] = []
    assert attach_inbox(layer, channel, lambda message: delivered.append(message) or True)
    await layer.group_add("g", channel)
    sender = blocking_group_send(layer)
    assert sender is not None
    await sync_to_async(sender.group_send)("g", {"type": "stream.update", "n": 1})
    await layer.group_send("g", {"type": "stream.update", "n": 2})

    await until(lambda: len(delivered) == 2)
    assert delivered == [{"type": "stream.update", "n": 1}, {"type": "stream.update", "n": 2}]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=0.3)
    await layer.flush()


async def test_what_the_inbox_does_not_take_reaches_receive_in_order(redis_url: str, caplog):
    """
    Tests that a message deliver declines, and one it fails on (logged), are queued for
    receive(); and that a message arriving behind a queued one waits behind it, in order.
    """
    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    channel = await layer.new_channel("streaming.hub.")
    offered: list[int] = []

    def deliver(message: dict[str, Any]) -> bool:
        offered.append(message["n"])
        if message["n"] == 2:
            raise ValueError("a broken hub")
        return message["n"] != 1

    assert attach_inbox(layer, channel, deliver)
    await layer.group_add("g", channel)
    for n in (1, 2, 3):
        await layer.group_send("g", {"type": "stream.update", "n": n})
    got = [(await asyncio.wait_for(layer.receive(channel), timeout=5))["n"] for _ in range(3)]

    assert got == [1, 2, 3]
    # 1 declined and queued: 2 and 3 arrived behind it and were queued without an offer.
    assert offered == [1]
    await layer.group_send("g", {"type": "stream.update", "n": 2})
    await until(lambda: offered == [1, 2])
    assert (await asyncio.wait_for(layer.receive(channel), timeout=5))["n"] == 2
    assert "handing a message to the hub failed" in caplog.text
    await layer.flush()


async def test_the_inbox_attaches_to_the_pubsub_layer_only_and_says_when_it_cannot(
    redis_url: str, caplog
):
    """Tests other layers (left alone, silently) and a changed channels-redis (logged)."""
    assert not attach_inbox(InMemoryChannelLayer(), "x", lambda message: True)
    assert not attach_inbox(RedisChannelLayer(hosts=[redis_url]), "x", lambda message: True)
    assert not caplog.text
    layer = RedisPubSubChannelLayer(hosts=[redis_url])
    assert not attach_inbox(layer, "never-made", lambda message: True)
    assert "inbox could not attach" in caplog.text
    await layer.flush()
