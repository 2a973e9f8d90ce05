"""
What a reply may echo or reveal (issue 15 §1 and §4), against a real daphne: strict JSON
only, a bounded request_id, bounded error lists, and a private key answered exactly like
an unknown one. Limits: docs/security.md; error replies: docs/protocol.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from metrics.models import Series
from tests.support.wsclient import origin_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

SUBSCRIBE = {"action": "subscribe", "stream": "metrics.week"}


def strict(text: str) -> Any:
    """Returns the JSON value of `text`, failing on NaN and Infinity (not JSON)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a frame: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


async def ask(ws: websockets.ClientConnection, frame: str) -> tuple[str, dict[str, Any]]:
    """Sends one text frame; returns the reply's text and its strict JSON."""
    await ws.send(frame)
    text = await ws.recv()
    return text, strict(text)


@pytest.fixture
async def ws(daphne):
    """Returns an anonymous socket on the server."""
    async with websockets.connect(daphne.ws_url, origin=origin_for(daphne.ws_url)) as socket:
        yield socket


async def test_numbers_json_cannot_hold_are_refused_not_echoed(ws):
    """Tests that 1e400, -1e400, NaN and Infinity get a 400 and no reply holds a non-JSON value."""
    for number in ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"]:
        for frame in [
            f'{{"action": "subscribe", "request_id": {number}}}',
            f'{{"action": "subscribe", "request_id": 1, "params": {{"series": {number}}}}}',
        ]:
            # ask() fails on a bare NaN or Infinity in the reply.
            _, reply = await ask(ws, frame)
            assert reply["response_status"] == 400, frame
            assert reply["request_id"] is None


async def test_a_large_request_id_is_refused_without_being_echoed(ws):
    """Tests that a request_id over 256 bytes of JSON gets 400 without it; one under is echoed."""
    fits = {"trace": "x" * 200}
    _, reply = await ask(ws, json.dumps({"action": "dance", "request_id": fits}))
    assert (reply["response_status"], reply["request_id"]) == (405, fits)
    for big in ["x" * 300, ["x"] * 100, {"k": "é" * 200}, 10**300, [[[[[[1]]]]]] * 50]:
        text, reply = await ask(ws, json.dumps({**SUBSCRIBE, "request_id": big}))
        assert (reply["response_status"], reply["request_id"]) == (400, None), text[:200]
        assert "request_id" in reply["errors"][0]
        assert len(text) < 300, len(text)


async def test_unexpected_fields_are_listed_within_a_bound(ws):
    """Tests that 2,000 unexpected fields (and one long name) get a short 400, not a list."""
    message = {**SUBSCRIBE, "request_id": 1, **{f"f{i}": 0 for i in range(2000)}}
    message["y" * 10_000] = 0
    frame = json.dumps(message)
    text, reply = await ask(ws, frame)
    assert reply["response_status"] == 400
    errors = reply["errors"][0]
    assert len([name for name in errors if name != "non_field_errors"]) == 3
    assert errors["non_field_errors"] == ["And 1998 more unexpected fields."]
    assert len(text) < 400 < len(frame), len(text)


async def test_a_private_series_answers_exactly_like_an_unknown_one(ws):
    """
    Tests that an anonymous subscribe or unsubscribe of a private series gets the very
    reply an unknown series gets: 404, no key, no hint that it exists.
    """
    await sync_to_async(Series.objects.create)(slug="revenue", name="Revenue", is_public=False)
    for action in ("subscribe", "unsubscribe"):
        texts = []
        for slug in ("revenue", "no-such-series"):
            message = {**SUBSCRIBE, "action": action, "request_id": 7}
            message["params"] = {"series": slug, "week": "2026-W48"}
            text, reply = await ask(ws, json.dumps(message))
            assert reply["response_status"] == 404, reply
            texts.append(text.replace(slug, "<slug>"))
        assert texts[0] == texts[1]
        assert "revenue" not in texts[0]


async def test_a_long_action_name_is_refused_without_being_echoed(ws):
    """Tests that an action name over 64 characters gets a short 400 that does not echo it."""
    text, reply = await ask(ws, json.dumps({"action": "a" * 60_000, "request_id": 3}))
    assert (reply["response_status"], reply["action"], reply["request_id"]) == (400, None, 3)
    assert "action" in reply["errors"][0]
    assert len(text) < 200, len(text)
