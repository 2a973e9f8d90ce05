"""
The hub's members, without a server: a socket's send is shared by all its keys, and a key
the socket left stays silent even while a fan-out is under way (streaming/serve/hub.py).
"""

from __future__ import annotations

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
