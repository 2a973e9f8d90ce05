"""
Transactions: nothing is sent before commit, nothing for a rollback, and a savepoint that
rolls back takes exactly its own changes with it. ATOMIC_REQUESTS requests behave alike.

Silence is checked with a sentinel: a later committed write to another key (2026-W50)
arrives, so anything sent before it would have arrived first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from django.urls import path

from metrics.api import MetricViewSet
from metrics.models import Metric, Series
from metrics.streams import week_key
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.consumer import ConsumerSocket

pytestmark = pytest.mark.django_db(transaction=True)

W48, W49, W50 = IsoWeek(2026, 48), IsoWeek(2026, 49), IsoWeek(2026, 50)
Frame = dict[str, Any]


class Rollback(Exception):
    """Raised to roll an atomic block back."""


class FailingMetricViewSet(MetricViewSet):
    """Creates the metric, then fails: the request's transaction must roll it back."""

    def perform_create(self, serializer: Any) -> None:
        """Saves, then raises as a later step of the request would."""
        serializer.save()
        raise RuntimeError("a later step of the request failed")


# Used as ROOT_URLCONF by the test of a request that fails after its save.
urlpatterns = [path("fail/metrics/", FailingMetricViewSet.as_view({"post": "create"}))]


@pytest.fixture(autouse=True)
def memory_layer(settings) -> None:
    """Keeps these tests in one process: the in-memory layer."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def at(week: IsoWeek, day: int = 0) -> datetime:
    """Returns noon UTC of a day (0 = Monday) of `week`."""
    return datetime.combine(week.days[day], datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)


@pytest.fixture
async def cpu() -> Series:
    """Returns series cpu."""
    return await Series.objects.acreate(slug="cpu", name="CPU")


async def subscribed() -> ConsumerSocket:
    """Returns a socket subscribed to cpu's W48, W49 and W50."""
    await sync_to_async(publisher.flush)()
    socket = await ConsumerSocket().connect()
    for week in (W48, W49, W50):
        reply = await socket.subscribe("cpu", str(week))
        assert reply["response_status"] == 200, reply
    return socket


async def frames_before_sentinel(socket: ConsumerSocket, cpu: Series) -> dict[str, list[Frame]]:
    """Commits a metric in W50; returns by key the frames that arrived before its update."""
    await Metric.objects.acreate(series=cpu, timestamp=at(W50), value=1.0)
    sentinel = week_key(cpu.pk, W50)
    frames: dict[str, list[Frame]] = {}
    while (frame := await socket.frame())["key"] != sentinel:
        frames.setdefault(frame["key"], []).append(frame)
    return frames


def values(frame: Frame) -> list[float | None]:
    """Returns a frame's seven daily values."""
    return frame["payload"]["values"]


def run_rolled_back(write: Any) -> None:
    """Runs `write` in an atomic block that then rolls back."""
    try:
        with transaction.atomic():
            write()
            raise Rollback
    except Rollback:
        pass


async def test_a_rolled_back_transaction_sends_nothing(cpu):
    """Tests that a create, a move and a bulk update all rolled back together send nothing."""
    existing = await Metric.objects.acreate(series=cpu, timestamp=at(W48), value=1.0)
    socket = await subscribed()

    def write() -> None:
        Metric.objects.create(series=cpu, timestamp=at(W48, 1), value=2.0)
        existing.timestamp = at(W49)
        existing.save()
        Metric.objects.filter(series=cpu).update(value=3.0)

    await sync_to_async(run_rolled_back)(write)
    assert await frames_before_sentinel(socket, cpu) == {}
    await socket.close()


async def test_a_caught_savepoint_rollback_leaves_out_exactly_its_own_key(cpu):
    """Tests that outer W48 + inner W49 (rolled back, caught) sends W48 once and no W49."""
    socket = await subscribed()

    def write() -> None:
        with transaction.atomic():
            Metric.objects.create(series=cpu, timestamp=at(W48), value=1.0)
            try:
                with transaction.atomic():
                    Metric.objects.create(series=cpu, timestamp=at(W49), value=2.0)
                    raise Rollback
            except Rollback:
                pass

    await sync_to_async(write)()
    frames = await frames_before_sentinel(socket, cpu)
    assert list(frames) == [week_key(cpu.pk, W48)]
    assert [values(f)[0] for f in frames[week_key(cpu.pk, W48)]] == [1.0]
    await socket.close()


async def test_a_caught_savepoint_rollback_on_the_outer_key_keeps_the_outer_change(cpu):
    """Tests that a rolled-back inner write to the outer's key leaves one frame, outer only."""
    socket = await subscribed()

    def write() -> None:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    Metric.objects.create(series=cpu, timestamp=at(W48, 2), value=9.0)
                    raise Rollback
            except Rollback:
                pass
            Metric.objects.create(series=cpu, timestamp=at(W48), value=1.0)
            try:
                with transaction.atomic():
                    Metric.objects.create(series=cpu, timestamp=at(W48, 3), value=9.0)
                    raise Rollback
            except Rollback:
                pass

    await sync_to_async(write)()
    frames = await frames_before_sentinel(socket, cpu)
    assert [values(f) for f in frames[week_key(cpu.pk, W48)]] == [[1.0] + [None] * 6]
    assert list(frames) == [week_key(cpu.pk, W48)]
    await socket.close()


async def test_a_released_savepoint_inside_a_rolled_back_transaction_sends_nothing(cpu):
    """Tests that an inner block that committed its savepoint sends nothing if the outer fails."""
    socket = await subscribed()

    def write() -> None:
        with transaction.atomic():
            Metric.objects.create(series=cpu, timestamp=at(W49), value=2.0)

    await sync_to_async(run_rolled_back)(write)
    assert await frames_before_sentinel(socket, cpu) == {}
    await socket.close()


def post_metric(url: str, value: float) -> int:
    """POSTs a W48 metric of cpu to `url` as a user allowed to add metrics; returns the status."""
    user, _ = User.objects.get_or_create(username="writer")
    user.user_permissions.add(Permission.objects.get(codename="add_metric"))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    body = {"series": "cpu", "timestamp": "2026-11-23T12:00:00Z", "value": value}
    return client.post(url, body, content_type="application/json").status_code


@pytest.mark.urls(__name__)
async def test_a_request_that_fails_after_its_save_sends_nothing(cpu):
    """Tests that with ATOMIC_REQUESTS a request failing after save() sends and keeps nothing."""
    socket = await subscribed()
    assert await sync_to_async(post_metric)("/fail/metrics/", 4.0) == 500
    assert await frames_before_sentinel(socket, cpu) == {}
    assert not await Metric.objects.filter(value=4.0).aexists()
    await socket.close()


async def test_a_successful_request_is_sent_after_its_commit(cpu):
    """Tests that a REST create (one ATOMIC_REQUESTS transaction) sends the committed row."""
    socket = await subscribed()
    assert await sync_to_async(post_metric)("/api/metrics/", 4.0) == 201
    frames = await frames_before_sentinel(socket, cpu)
    assert [values(f)[0] for f in frames[week_key(cpu.pk, W48)]] == [4.0]
    await socket.close()
