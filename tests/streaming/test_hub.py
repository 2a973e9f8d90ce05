"""
The hub's members, without a server: a socket's send is shared by all its keys, and a key
the socket left stays silent even while a fan-out is under way (streaming/serve/hub.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streaming import protocol
from streaming.serve.hub import get_hub

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps the hub in this process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def test_a_key_left_during_a_fanout_gets_nothing_more():
    """
    Tests that when one socket's send (awaited by the fan-out) makes another socket leave
    the key, the other socket gets nothing of that update, nor of a later ready().
    """
    hub = get_hub()
    got: dict[str, list[int]] = {"first": [], "second": []}
    owners = {"first": object(), "second": object()}

    def sender(name: str) -> Any:
        async def send(event: dict[str, Any]) -> None:
            got[name].append(json.loads(event["text"])["version"])
            if name == "first":
                await hub.leave(owners["second"], "s", "k")

        return send

    first = await hub.join(owners["first"], sender("first"), "s", "k")
    second = await hub.join(owners["second"], sender("second"), "s", "k")
    await hub.ready(first, 1)
    await hub.ready(second, 1)
    await hub.fanout(protocol.update_message("s", "k", 2, {"v": 2}))
    await hub.ready(second, 1)

    assert got == {"first": [2], "second": []}
    assert list(hub.groups[protocol.group_name("s", "k")]) == [owners["first"]]
    await hub.leave(owners["first"], "s", "k")


async def test_leaving_does_not_wait_on_the_layer_and_a_quick_return_stays_joined():
    """
    Tests that the last socket leaving a key returns while the channel layer is stuck, that
    the layer is left afterwards in the background, and that a key subscribed again before
    the background reaches it stays joined on the layer.
    """
    hub = get_hub()
    gate = asyncio.Event()
    discard = hub.layer.group_discard

    async def stuck_discard(group: str, channel: str) -> None:
        await gate.wait()
        await discard(group, channel)

    async def send(event: dict[str, Any]) -> None:
        pass

    owner = object()
    for key in ("left", "back"):
        await hub.join(owner, send, "s", key)
    hub.layer.group_discard = stuck_discard
    await asyncio.wait_for(hub.leave(owner, "s", "left"), 1)
    await asyncio.wait_for(hub.leave(owner, "s", "back"), 1)
    await hub.join(owner, send, "s", "back")
    gate.set()
    assert hub._leaver is not None
    await asyncio.wait_for(hub._leaver, 5)

    layer_groups = hub.layer.groups
    assert hub.channel not in layer_groups.get(protocol.group_name("s", "left"), {})
    assert hub.channel in layer_groups[protocol.group_name("s", "back")]
    await hub.leave(owner, "s", "back")


class ServedOwner:
    """A socket's owner under a real server: the hub gives it an outlet (no awaited send)."""

    scope = {"server": ("127.0.0.1", 8000)}


async def test_deliver_takes_an_update_in_the_callers_turn_unless_a_send_is_awaited():
    """
    Tests that deliver() (what channels-redis's receive task calls, through the inbox) sends
    an update at once; and that it leaves updates to the receive loop, which keeps awaited
    sends in order, while a socket without an outlet is subscribed, and other messages always.
    """
    hub = get_hub()
    got: list[int] = []

    async def send(event: dict[str, Any]) -> None:
        got.append(json.loads(event["text"])["version"])

    served = ServedOwner()
    await hub.ready(await hub.join(served, send, "s", "k"), 1)
    assert hub.deliver(protocol.update_message("s", "k", 2, {"v": 2}))
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [2]

    awaited = object()
    await hub.ready(await hub.join(awaited, send, "s", "k"), 2)
    assert not hub.deliver(protocol.update_message("s", "k", 3, {"v": 3}))
    await hub.leave(awaited, "s", "k")
    assert not hub.deliver(protocol.refresh_message("s", ""))
    assert hub.deliver(protocol.update_message("s", "k", 3, {"v": 3}))
    for _ in range(100):
        if len(got) == 2:
            break
        await asyncio.sleep(0.01)
    assert got == [2, 3]

    assert hub.deliver(protocol.update_message("s", "k", 4, None))
    assert protocol.group_name("s", "k") not in hub.groups
