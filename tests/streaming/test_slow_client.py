"""
A subscriber that stops reading its socket (issue 6 §4): the others keep receiving, the
server's memory stays bounded, and the stalled one gets the newest state once it reads
again (latest-wins per key, streaming/serve/daphne/). Latency under a stall: bench/ measures it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psutil
import pytest
from asgiref.sync import sync_to_async

from tests.exampleapp.models import Board, Note
from tests.support.processes import run_script
from tests.support.rawclient import RawClient
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

UPDATES = 1000
NOTES, NOTE_CHARS = 200, 500


def head_value(payload: dict[str, Any]) -> int:
    """Returns the counter written at the start of the board's first note."""
    return int(payload["notes"][0]["text"][:6])


async def test_stalled_client_neither_delays_others_nor_grows_memory(daphne, use_redis):
    """
    Tests that while one subscriber stops reading during 1,000 updates of ~100 KB each,
    another keeps receiving them up to the last, the server's RSS stays far below the
    backlog, and the stalled one, reading again, gets the newest state without the backlog.
    """

    # A board's payload carries all its notes: 200 notes of 500 characters make ~100 KB
    # frames, so 1,000 updates (~100 MB) overflow the kernel's socket buffers (a few MB on
    # loopback) and would pile up in the server without flow control.
    def make_board() -> None:
        board = Board.objects.create(slug="big", title="Big")
        Note.objects.bulk_create(
            Note(board=board, text=f"{0:06d}" + "x" * (NOTE_CHARS - 6)) for _ in range(NOTES)
        )

    await sync_to_async(make_board)()
    subscribe = {"action": "subscribe", "stream": "exampleapp.board", "params": {"board": "big"}}
    stalled = RawClient(daphne.port)
    await stalled.connect()
    await stalled.send({**subscribe, "request_id": 1})
    reply = await stalled.message()
    assert reply["response_status"] == 200, reply
    key = reply["data"]["key"]

    reader = await StreamSubscriber(daphne.ws_url).connect()
    assert (await reader.subscribe("exampleapp.board", board="big"))["response_status"] == 200
    server = psutil.Process(daphne.process.pid)
    rss_before = server.memory_info().rss

    # From here on the stalled client reads nothing.
    await asyncio.to_thread(
        run_script,
        f"""
        from streaming.publish.publisher import publisher
        from tests.exampleapp.models import Note
        note = Note.objects.filter(board__slug="big").order_by("pk").first()
        for i in range(1, {UPDATES} + 1):
            note.text = f"{{i:06d}}" + "y" * ({NOTE_CHARS} - 6)
            note.save()
            # Each save its own update: nothing conflated on the writer's side.
            publisher.flush()
        """,
        use_redis,
        120,
    )
    await reader.wait_for(lambda c: head_value(c.payload(key)) == UPDATES, timeout=60)
    rss_growth = server.memory_info().rss - rss_before
    fast_updates = [m for m in reader.received if m.get("action") == "update"]
    sent_bytes = sum(len(json.dumps(m)) for m in fast_updates)

    slow_updates = []
    while True:
        message = await asyncio.wait_for(stalled.message(), timeout=30)
        assert message["action"] == "update", message
        slow_updates.append(message)
        if head_value(message["payload"]) == UPDATES:
            break
    stalled.close()
    await reader.close()

    versions = [m["version"] for m in slow_updates]
    assert versions == sorted(set(versions)), "versions must only grow"
    assert slow_updates[-1]["version"] == fast_updates[-1]["version"]
    # The stalled socket was given the newest state, not every update in between.
    assert len(slow_updates) < len(fast_updates) / 2, (len(slow_updates), len(fast_updates))
    # What the others received would have piled up for the stalled socket; it did not.
    assert sent_bytes > 50 * 2**20, f"only {sent_bytes} bytes were sent: no backlog to test"
    assert rss_growth < 20 * 2**20, f"server RSS grew by {rss_growth / 2**20:.1f} MiB"
