"""
Who may watch what over /ws/stream/, against a real daphne and Redis: the Origin check,
session authentication, refused subscriptions, and revocation after logout or a lost
permission (docs/security.md). REST and page access: tests/metrics/test_api.py, test_pages.py.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from metrics.models import Metric, Series
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

WEEK = "2026-W48"
TUESDAY = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture
def series() -> tuple[Series, Series]:
    """Returns a public and a private series."""
    public = Series.objects.create(slug="cpu", name="CPU")
    private = Series.objects.create(slug="revenue", name="Revenue", is_public=False)
    return public, private


class Frames(list):
    """The frames a client received; each one wakes its wait_for, `revoked` ones too."""

    def __init__(self, changed: asyncio.Event) -> None:
        super().__init__()
        self.changed = changed

    def append(self, frame: Any) -> None:
        """Adds a frame and wakes waiters."""
        super().append(frame)
        self.changed.set()


def viewer_session() -> tuple[User, Client]:
    """Returns a user with metrics.view_series and a client logged in as them."""
    user = User.objects.create_user("viewer", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_series"))
    client = Client()
    client.force_login(user)
    return user, client


def cookie(client: Client) -> dict[str, str]:
    """Returns the Cookie header carrying the client's session."""
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


async def write(series: Series, value: float) -> None:
    """Saves one metric of `series` on the Tuesday of WEEK."""
    await sync_to_async(Metric.objects.create)(series=series, timestamp=TUESDAY, value=value)


def frames_for(client: StreamSubscriber, key: str) -> list[dict[str, Any]]:
    """Returns every frame the client got that names `key` or carries its data."""
    return [
        m
        for m in client.received
        if m.get("key") == key or (isinstance(m.get("data"), dict) and m["data"].get("key") == key)
    ]


async def test_sockets_without_an_allowed_origin_are_refused(daphne):
    """Tests that the handshake is refused (403) with a foreign Origin or none at all."""
    for origin in ["http://evil.example", None]:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(daphne.ws_url, origin=origin, open_timeout=10)
        assert refused.value.response.status_code == 403


async def test_a_refused_subscription_never_receives_data(daphne, series):
    """
    Tests that an anonymous subscribe to a private series is 404, as for an unknown one,
    and nothing follows it.
    """
    public, private = series
    client = await StreamSubscriber(daphne.ws_url).connect()
    refused = await client.subscribe("metrics.week", series="revenue", week=WEEK)
    assert (refused["response_status"], refused["data"]) == (404, None)
    key = (await client.subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"]

    await write(private, 99.0)
    await write(public, 1.0)
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 1.0)
    assert not [m for m in client.received if "revenue" in str(m) or "99.0" in str(m)]
    assert [m.get("response_status") for m in client.received if "request_id" in m] == [404, 200]
    await client.close()


async def test_a_session_with_view_permission_subscribes_to_private_series(daphne, series):
    """Tests that the session cookie authenticates the socket: private data flows."""
    _, private = series
    _, browser = await sync_to_async(viewer_session)()
    client = await StreamSubscriber(daphne.ws_url, headers=cookie(browser)).connect()
    reply = await client.subscribe("metrics.week", series="revenue", week=WEEK)
    assert reply["response_status"] == 200, reply
    key = reply["data"]["key"]
    await write(private, 5.0)
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 5.0)
    await client.close()


async def revoked_after(change: Any, daphne: Any, series: tuple[Series, Series]) -> None:
    """
    Subscribes a viewer's socket to the private series, applies `change(user, browser)`,
    and checks the key is revoked within the re-check bound and gets nothing afterwards.
    """
    public, private = series
    user, browser = await sync_to_async(viewer_session)()
    client = await StreamSubscriber(daphne.ws_url, headers=cookie(browser)).connect()
    client.received = Frames(client.changed)
    key = (await client.subscribe("metrics.week", series="revenue", week=WEEK))["data"]["key"]
    sentinel = (await client.subscribe("metrics.week", series="cpu", week=WEEK))["data"]["key"]
    await write(private, 1.0)
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 1.0)

    await sync_to_async(change)(user, browser)
    # RECHECK_SECONDS is 5 s: the revocation comes within that, and the wait is generous.
    await client.wait_for(lambda c: any(m.get("action") == "revoked" for m in c.received), 20)
    revoked = [m for m in client.received if m.get("action") == "revoked"]
    assert revoked == [{"action": "revoked", "stream": "metrics.week", "key": key}]

    seen = len(frames_for(client, key))
    await write(private, 50.0)
    await write(public, 7.0)
    await client.wait_for(lambda c: c.payload(sentinel)["values"][1] == 7.0)
    assert len(frames_for(client, key)) == seen
    assert client.payload(key)["values"][1] == 1.0
    again = await client.subscribe("metrics.week", series="revenue", week=WEEK)
    assert again["response_status"] == 404
    await client.close()


async def test_logout_revokes_open_private_subscriptions(daphne, series):
    """Tests that after logout an open socket's private key is revoked and gets no data."""
    await revoked_after(lambda user, browser: browser.logout(), daphne, series)


async def test_a_lost_permission_revokes_open_private_subscriptions(daphne, series):
    """Tests that removing metrics.view_series revokes the open socket's private key."""

    def remove(user: User, browser: Client) -> None:
        user.user_permissions.clear()

    await revoked_after(remove, daphne, series)


def test_scripts_get_a_token_from_drf_create_token():
    """Tests that `manage.py drf_create_token <user>` makes the token scripts write with."""
    user = User.objects.create_user("script")
    out = io.StringIO()
    call_command("drf_create_token", "script", stdout=out)
    assert Token.objects.get(user=user).key in out.getvalue()
