"""
Fuzzing /ws/stream/'s consumer with hypothesis: random JSON, random text, random bytes and
half-valid protocol messages never crash it, never get a 5xx, and never close the socket.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics.models import Series
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
weeks = st.sampled_from(["2026-W48", "2026-W53", "2026-W99", "1-W01", "9999-W52"]) | json_values
params = st.fixed_dictionaries(
    {}, optional={"series": st.sampled_from(["cpu", "secret", "Cpu", "", "cpu\x00"]) | json_values}
) | st.fixed_dictionaries({}, optional={"week": weeks})
protocol_messages = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["subscribe", "unsubscribe", "update"]) | json_values,
        "request_id": json_values,
        "stream": st.sampled_from(["metrics.week", "metrics", ""]) | json_values,
        "params": params | json_values,
        "extra": json_values,
    },
)
frames = st.one_of(
    protocol_messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Returns an event loop running in a thread, shared by every example (one hub)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop

    async def stop() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loop.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop)
    thread.join(5)
    loop.close()


def strict(text: str) -> Any:
    """Returns parsed JSON, refusing NaN and Infinity as a browser's JSON.parse does."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} sent"))


async def exchange(sent: list[str | bytes]) -> None:
    """Sends the frames; each gets one 4xx/200 reply; then the socket still subscribes."""
    socket = await ConsumerSocket().connect()
    for frame in sent:
        if isinstance(frame, bytes):
            await socket.send(data=frame)
        else:
            await socket.send(frame)
        message = await socket.output()
        assert message["type"] == "websocket.send", (frame, message)
        reply = strict(message["text"])
        assert reply.get("response_status") in (200, 400, 403, 404, 405), (frame, reply)
        if reply["response_status"] != 200:
            assert reply["errors"], reply
    reply = await socket.subscribe("cpu")
    assert reply["response_status"] == 200, reply
    await socket.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=st.lists(frames, min_size=1, max_size=5))
def test_random_frames_get_error_replies_and_never_break_the_socket(loop, sent, transactional_db):
    """Tests that any sequence of random frames gets one reply each, never a 5xx or a close."""
    if not Series.objects.exists():
        Series.objects.create(slug="cpu", name="CPU")
        Series.objects.create(slug="secret", name="Secret", is_public=False)
    asyncio.run_coroutine_threadsafe(exchange(sent), loop).result(30)
