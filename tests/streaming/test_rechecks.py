"""
The periodic permission re-check at many keys: a stream's batch hook (Stream.permissions)
answers for all of a pass's keys in one query per hop, and revocation still arrives
(streaming/serve/rechecks.py, docs/security.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metrics.models import Series
from metrics.streams import WEEK_STREAM, week_key
from metrics.weeks import IsoWeek
from streaming.registry import get_stream
from streaming.serve import access, rechecks
from tests.streaming.test_access import Frames, cookie, viewer_session
from tests.support.wsclient import StreamSubscriber

WEEKS = [IsoWeek.parse("2026-W01").shift(n) for n in range(150)]


def many_series(count: int) -> tuple[list[str], list[str]]:
    """Creates `count` series, every other one private; returns (public, private) keys."""
    made = Series.objects.bulk_create(
        Series(slug=f"s{i}", name=f"S {i}", is_public=i % 2 == 0) for i in range(count)
    )
    public = [week_key(s.pk, w) for s in made if s.is_public for w in WEEKS]
    private = [week_key(s.pk, w) for s in made if not s.is_public for w in WEEKS]
    return public, private


class FakeConsumer:
    """What the re-checker needs of a connection; records what it was told it lost."""

    def __init__(self, keys: list[str]) -> None:
        self.scope: dict[str, Any] = {"user": AnonymousUser()}
        self.subscriptions = {(WEEK_STREAM, key): None for key in keys}
        self.lost: list[tuple[str, str]] = []

    def forget_gone(self) -> None:
        """Nothing is gone here."""

    async def revoke(self, user: Any, lost: list[tuple[str, str]]) -> None:
        """Records the lost keys."""
        self.lost += lost


@pytest.mark.django_db
def test_the_week_streams_batch_hook_answers_many_keys_in_one_query():
    """
    Tests that metrics.week's Stream.permissions reads 300 keys' series in one query and
    gives the answers permission() gives key by key.
    """
    public, private = many_series(4)
    stream = get_stream(WEEK_STREAM)
    anonymous = AnonymousUser()
    with CaptureQueriesContext(connection) as queries:
        allowed = stream.permissions(anonymous, public + private)
    assert len(queries) == 1
    assert allowed == set(public)
    assert allowed == {k for k in public + private if stream.permission(anonymous, k)}


@pytest.mark.django_db(transaction=True)
async def test_a_pass_over_3000_keys_makes_one_query_per_hop_and_revokes_the_private_ones(
    monkeypatch,
):
    """
    Tests that a re-check pass over 3,000 distinct keys of anonymous sockets asks the stream
    in two hops (KEYS_PER_HOP is 2,000) of one query each, and that every socket loses
    exactly its private keys.
    """
    public, private = await sync_to_async(many_series)(20)
    queries_per_hop: list[int] = []
    allowed_keys = access.allowed_keys

    def counted(work: Any) -> list[set[str]]:
        with CaptureQueriesContext(connection) as queries:
            result = allowed_keys(work)
        queries_per_hop.append(len(queries))
        return result

    monkeypatch.setattr(access, "allowed_keys", counted)
    everything = public + private
    consumers = [FakeConsumer(everything[i::4]) for i in range(4)] + [FakeConsumer(public[:5])]
    await rechecks.Rechecker().check(consumers)
    assert queries_per_hop == [1, 1]
    for consumer in consumers:
        held = [key for _, key in consumer.subscriptions]
        assert sorted(k for _, k in consumer.lost) == sorted(set(held) & set(private))


@pytest.mark.redis
async def test_a_lost_permission_revokes_every_one_of_many_keys(daphne):
    """
    Tests that a viewer's socket holding 50 private keys across weeks gets `revoked` for
    each of them once metrics.view_series is removed, through the batched re-check.
    """
    await sync_to_async(Series.objects.create)(slug="revenue", name="R", is_public=False)
    user, browser = await sync_to_async(viewer_session)()
    client = await StreamSubscriber(daphne.ws_url, headers=cookie(browser)).connect()
    client.received = Frames(client.changed)
    keys = set()
    for week in WEEKS[:50]:
        reply = await client.subscribe("metrics.week", series="revenue", week=str(week))
        assert reply["response_status"] == 200, reply
        keys.add(reply["data"]["key"])
        # Under the rate limit (20 messages/s).
        await asyncio.sleep(0.06)

    await sync_to_async(user.user_permissions.clear)()
    await client.wait_for(
        lambda c: len([m for m in c.received if m.get("action") == "revoked"]) == 50, 30
    )
    revoked = [m for m in client.received if m.get("action") == "revoked"]
    assert {m["key"] for m in revoked} == keys
    await client.close()


@pytest.mark.django_db(transaction=True)
async def test_a_mass_revocation_lets_other_work_run_between_its_frames(settings):
    """
    Tests that a connection told `revoked` for 1,000 keys gives the event loop back while
    it sends them: another task gets a turn before the last frame, not after all of them.
    """
    from streaming.serve.consumer import StreamConsumer
    from streaming.serve.hub import get_hub

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    consumer = StreamConsumer()
    consumer.hub = get_hub()
    consumer.scope = {"user": AnonymousUser()}
    lost = [(WEEK_STREAM, f"1:{n}") for n in range(1000)]
    consumer.subscriptions = dict.fromkeys(lost)
    events: list[str] = []

    async def send_json(content: dict[str, Any]) -> None:
        events.append(content["action"])

    async def other_work() -> None:
        events.append("other")

    consumer.send_json = send_json  # type: ignore[method-assign]
    other = asyncio.get_running_loop().create_task(other_work())
    await consumer.revoke(AnonymousUser(), lost)
    await other

    assert events.count("revoked") == 1000
    assert events.index("other") < len(events) - 1
    assert consumer.subscriptions == {}


@pytest.mark.django_db(transaction=True)
async def test_a_pass_revoking_many_connections_lets_other_work_run_between_them():
    """
    Tests that a pass revoking 50 keys on each of 40 connections gives the event loop back
    between turns: a task scheduled when the first connection is told runs before the last.
    """
    _, private = await sync_to_async(many_series)(2)
    consumers = [FakeConsumer(private[:50]) for _ in range(40)]
    told: list[str] = []
    others: list[asyncio.Task[None]] = []

    async def other_work() -> None:
        told.append("other")

    def telling(consumer: FakeConsumer) -> Any:
        async def revoke(user: Any, lost: list[tuple[str, str]]) -> None:
            if not others:
                others.append(asyncio.get_running_loop().create_task(other_work()))
            told.append("revoked")
            consumer.lost += lost

        return revoke

    for consumer in consumers:
        consumer.revoke = telling(consumer)  # type: ignore[method-assign]

    await rechecks.Rechecker().check(consumers)
    await others[0]

    assert told.count("revoked") == 40
    assert told.index("other") < len(told) - 1
    assert all(len(consumer.lost) == 50 for consumer in consumers)
