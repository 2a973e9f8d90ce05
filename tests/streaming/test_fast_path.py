"""
The canary for streaming.serve.daphne's reach into daphne, Twisted and autobahn: sockets a
real daphne serves must get the fast path. If a pinned dependency changed under it, this
fails here instead of silently serving without backpressure.
"""

from __future__ import annotations

import re
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from metrics.models import Series
from tests.support.processes import DaphneServer
from tests.support.wsclient import StreamSubscriber

pytestmark = pytest.mark.django_db(transaction=True)


def counters(server: DaphneServer, token: str) -> dict[str, float]:
    """Returns the fast-path counters of the server's /metrics/."""
    request = urllib.request.Request(
        f"{server.http_url}/metrics/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    found = re.findall(r'^(streaming_fast_path_\w+)\{stream="\*"\} (\S+)$', text, re.M)
    return {name: float(value) for name, value in found}


async def test_sockets_served_by_daphne_get_the_fast_path():
    """Tests that each daphne socket got the fast path, and none fell back to the ASGI send."""
    await sync_to_async(Series.objects.create)(slug="cpu", name="CPU")
    staff = await sync_to_async(User.objects.create_user)("ops", is_staff=True)
    token = (await sync_to_async(Token.objects.create)(user=staff)).key
    server = DaphneServer(None).start()
    try:
        clients = [await StreamSubscriber(server.ws_url).connect() for _ in range(3)]
        for client in clients:
            reply = await client.subscribe("metrics.week", series="cpu")
            assert reply["response_status"] == 200, reply
        found = await sync_to_async(counters)(server, token)
        assert found["streaming_fast_path_sockets_total"] == 3
        assert found.get("streaming_fast_path_misses_total", 0) == 0
        for client in clients:
            await client.close()
    finally:
        server.stop()
