"""
Health, counters and logs: /healthz, /metrics/ (Prometheus text), the admin's live-streams
page and the publisher's structured log lines.
"""

from __future__ import annotations

import logging
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token

from streaming.publish.publisher import publisher
from tests.conftest import redis_settings
from tests.exampleapp.models import Board, Note
from tests.streaming.test_generic_app import connect, next_frame, subscribe


def sample(text: str, name: str, stream: str) -> float:
    """Returns the value of `name{stream="..."}` in a Prometheus text body."""
    match = re.search(rf'^{re.escape(name)}{{stream="{re.escape(stream)}"}} (\S+)$', text, re.M)
    assert match, f"no {name} sample for {stream} in:\n{text}"
    return float(match[1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_healthz_is_200_when_database_and_redis_answer(client, use_redis):
    """Tests that /healthz passes every check through a real Redis channel layer."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "channel_layer", "versions"}
    assert all(check["ok"] for check in body["checks"].values()), body
    # A second check reuses the same channel and still gets its own message back.
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_healthz_is_503_when_redis_is_down(client, settings, redis_server):
    """
    Tests that /healthz answers 503 naming the channel layer when Redis is stopped; the
    versions, kept in the database, still read.
    """
    settings.CHANNEL_LAYERS, settings.STREAMING = redis_settings(redis_server.url)
    assert client.get("/healthz").status_code == 200
    redis_server.stop()

    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is False
    assert body["checks"]["channel_layer"]["error"]
    assert body["checks"]["versions"]["ok"] is True


@pytest.mark.django_db
def test_metrics_needs_a_staff_user(client):
    """Tests that /metrics/ is 401 anonymously, 403 for non-staff and 200 for staff."""
    anonymous = client.get("/metrics/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"

    user = User.objects.create_user("visitor", password="pw")
    client.force_login(user)
    assert client.get("/metrics/").status_code == 403
    token = Token.objects.create(user=user)
    assert Client().get("/metrics/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 403

    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    staff_token = Token.objects.create(user=staff)
    scraped = Client().get(
        "/metrics/",
        HTTP_AUTHORIZATION=f"Token {staff_token.key}",
        HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    assert scraped.status_code == 200
    assert scraped["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    client.force_login(staff)
    assert client.get("/metrics/").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_metrics_count_broadcasts_and_subscribers(use_redis):
    """Tests that a save and a subscription show up in /metrics/ as Prometheus samples."""
    staff = await sync_to_async(User.objects.create_user)("ops", is_staff=True)
    client = Client()
    await sync_to_async(client.force_login)(staff)

    async def scrape() -> str:
        response = await sync_to_async(client.get)("/metrics/")
        assert response.status_code == 200
        return response.content.decode()

    before = await scrape()
    for name in ("streaming_broadcasts_total", "streaming_subscribers"):
        assert f"# TYPE {name} " in before
    subscribers = sample(before, "streaming_subscribers", "exampleapp.board")
    broadcasts = sample(before, "streaming_broadcasts_total", "exampleapp.board")

    board = await Board.objects.acreate(slug="counted", title="Counted")
    socket = await connect()
    assert (await subscribe(socket, "counted"))["response_status"] == 200
    await sync_to_async(Note.objects.create)(board=board, text="one")
    await next_frame(socket, lambda f: f.get("action") == "update")

    after = await scrape()
    assert sample(after, "streaming_subscribers", "exampleapp.board") == subscribers + 1
    assert sample(after, "streaming_broadcasts_total", "exampleapp.board") > broadcasts
    assert sample(after, "streaming_last_commit_to_send_seconds", "exampleapp.board") > 0
    assert sample(after, "streaming_send_failures_total", "exampleapp.board") >= 0
    assert "streaming_conflated_total" in after
    assert "streaming_dropped_total" in after
    await socket.disconnect()
    final = await scrape()
    assert sample(final, "streaming_subscribers", "exampleapp.board") == subscribers


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_admin_lists_live_streams_with_subscriber_counts(use_redis):
    """Tests that the admin's Live streams page lists every stream and its subscribers."""
    admin = await sync_to_async(User.objects.create_superuser)("root", "root@example.com", "pw")
    client = Client()
    await sync_to_async(client.force_login)(admin)
    await Board.objects.acreate(slug="watched", title="Watched")
    socket = await connect()
    assert (await subscribe(socket, "watched"))["response_status"] == 200

    index = await sync_to_async(client.get)("/admin/")
    assert b'href="/admin/streaming/livestream/"' in index.content
    page = await sync_to_async(client.get)("/admin/streaming/livestream/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "metrics.week" in html
    row = re.search(r"exampleapp\.board</th>.*?<td class=\"subscribers\">(\d+)</td>", html, re.S)
    assert row
    assert int(row[1]) >= 1
    await socket.disconnect()


@pytest.mark.django_db
def test_admin_live_streams_needs_the_view_permission(client):
    """Tests that staff without streaming.view_livestream get 403, and with it 200."""
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/streaming/livestream/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_livestream"))
    assert client.get("/admin/streaming/livestream/").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_broadcasts_log_stream_keys_versions_and_duration(use_redis, caplog):
    """Tests that each sent batch logs one INFO line with structured fields."""
    board = Board.objects.create(slug="logged", title="Logged")
    with caplog.at_level(logging.INFO, logger="streaming.publish.publisher"):
        Note.objects.create(board=board, text="hello")
        assert publisher.flush(timeout=10)
    sent = [
        r
        for r in caplog.records
        if r.name == "streaming.publish.publisher" and r.levelno == logging.INFO
    ]
    # The board's own creation may be sent in the same batch or in an earlier one.
    assert 1 <= len(sent) <= 2
    record = sent[-1]
    assert record.stream == "exampleapp.board"
    assert record.keys == [str(board.pk)]
    assert record.versions[0] > 0
    assert record.refreshes == 0
    assert record.duration_ms >= 0
    assert record.latency_ms >= record.duration_ms
    assert f"stream=exampleapp.board updates={board.pk}@{record.versions[0]}" in record.message
