"""
One test per write path: each write reaches a real subscriber of a real daphne server
through a real Redis channel layer. Admin and REST go over HTTP to that server; ORM writes
come from other processes (a script, `manage.py shell`, a management command) or this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from metrics.models import Metric, Series
from metrics.weeks import IsoWeek
from streaming.publish.publisher import publisher
from tests.support.processes import ROOT, process_env, run_script
from tests.support.wsclient import StreamSubscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

STREAM = "metrics.week"


def noon(week: int, weekday: int) -> datetime:
    """Returns noon UTC of a day (1 = Monday) of an ISO week of 2026."""
    return datetime.combine(date.fromisocalendar(2026, week, weekday), time(12), tzinfo=UTC)


class Browser:
    """A cookie-keeping HTTP client for the admin, as a browser would fill in its forms."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[str, str]:
        """Returns the final URL path and the body of a GET."""
        with self.opener.open(self.base_url + path, timeout=30) as response:
            return urllib.parse.urlsplit(response.url).path, response.read().decode()

    def submit(self, path: str, fields: dict[str, Any]) -> tuple[str, str]:
        """Fetches the form at `path`, posts `fields` with its CSRF token; returns where it ends."""
        _, html = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert token, f"no CSRF token in {path}"
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token[1]}).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method="POST")
        with self.opener.open(request, timeout=30) as response:
            return urllib.parse.urlsplit(response.url).path, response.read().decode()

    def login(self, username: str, password: str) -> None:
        """Logs in through the admin's login form."""
        fields = {"username": username, "password": password, "next": "/admin/"}
        landed, _ = self.submit("/admin/login/?next=/admin/", fields)
        assert landed == "/admin/", "admin login failed"


def api(base_url: str, method: str, path: str, token: str, body: dict | None = None) -> Any:
    """Calls the REST API with token auth; returns the decoded JSON (None when empty)."""
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


async def make_series(slug: str = "cpu", aggregation: str = "sum") -> Series:
    """Creates a public series, once its own broadcast is out (so tests count only theirs)."""
    series = await sync_to_async(Series.objects.create)(
        slug=slug, name=slug, aggregation=aggregation
    )
    assert await asyncio.to_thread(publisher.flush, 10)
    return series


async def subscribed(daphne, *weeks: str | None) -> tuple[StreamSubscriber, list[str]]:
    """Returns a subscriber of series cpu's weeks on the daphne server, and their keys."""
    client = await StreamSubscriber(daphne.ws_url).connect()
    keys = []
    for week in weeks:
        params = {"series": "cpu", **({"week": week} if week else {})}
        reply = await client.subscribe(STREAM, **params)
        assert reply["response_status"] == 200, reply
        keys.append(reply["data"]["key"])
    return client, keys


def w48(*values: float | None) -> dict[str, Any]:
    """Returns the expected 2026-W48 payload of series cpu (sum, no unit)."""
    return {
        "series": "cpu",
        "week": "2026-W48",
        "labels": [f"2026-11-{day}" for day in range(23, 30)],
        "values": list(values),
        "unit": "",
        "aggregation": "sum",
    }


def updates(client: StreamSubscriber, key: str) -> list[dict]:
    """Returns the update frames the subscriber received for `key`, in order."""
    return [m for m in client.received if m.get("action") == "update" and m["key"] == key]


async def test_admin_add_change_delete_each_broadcast(daphne):
    """Tests that adding, changing and deleting a metric in the admin each reach a subscriber."""
    cpu = await make_series()
    await sync_to_async(User.objects.create_superuser)("root", "root@example.com", "pw")
    client, [key] = await subscribed(daphne, "2026-W48")
    browser = Browser(daphne.http_url)
    await asyncio.to_thread(browser.login, "root", "pw")
    changelist = "/admin/metrics/metric/"

    form = {"series": cpu.pk, "timestamp_0": "2026-11-24", "timestamp_1": "10:00:00"}
    landed, _ = await asyncio.to_thread(
        browser.submit, f"{changelist}add/", {**form, "value": "4.5", "_save": "Save"}
    )
    assert landed == changelist
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 4.5)
    assert client.payload(key) == w48(None, 4.5, None, None, None, None, None)
    metric = await sync_to_async(Metric.objects.get)()

    landed, _ = await asyncio.to_thread(
        browser.submit, f"{changelist}{metric.pk}/change/", {**form, "value": "6", "_save": "Save"}
    )
    assert landed == changelist
    await client.wait_for(lambda c: c.payload(key)["values"][1] == 6.0)

    landed, _ = await asyncio.to_thread(
        browser.submit, f"{changelist}{metric.pk}/delete/", {"post": "yes"}
    )
    assert landed == changelist
    await client.wait_for(lambda c: c.payload(key)["values"][1] is None)
    assert [u["payload"]["values"][1] for u in updates(client, key)] == [4.5, 6.0, None]
    assert client.payload(key)["values"] == [None] * 7
    await client.close()


async def test_rest_create_update_delete_each_broadcast(daphne):
    """Tests that REST writes with token auth to the server each reach a subscriber."""
    await make_series()
    user = await sync_to_async(User.objects.create_user)("script")
    perms = Permission.objects.filter(codename__in=["add_metric", "change_metric", "delete_metric"])
    await sync_to_async(user.user_permissions.add)(*await sync_to_async(list)(perms))
    token = (await sync_to_async(Token.objects.create)(user=user)).key
    client, [key] = await subscribed(daphne, "2026-W48")
    url = daphne.http_url

    body = {"series": "cpu", "timestamp": "2026-11-27T08:00:00+01:00", "value": 12.5}
    created = await asyncio.to_thread(api, url, "POST", "/api/metrics/", token, body)
    await client.wait_for(lambda c: c.payload(key)["values"][4] == 12.5)
    assert client.payload(key) == w48(None, None, None, None, 12.5, None, None)

    path = f"/api/metrics/{created['id']}/"
    await asyncio.to_thread(api, url, "PATCH", path, token, {"value": 20})
    await client.wait_for(lambda c: c.payload(key)["values"][4] == 20.0)

    await asyncio.to_thread(api, url, "DELETE", path, token)
    await client.wait_for(lambda c: c.payload(key)["values"][4] is None)
    assert [u["payload"]["values"][4] for u in updates(client, key)] == [12.5, 20.0, None]
    await client.close()


async def test_orm_create_save_delete_in_a_standalone_script_broadcast(daphne, use_redis):
    """Tests that create, save and delete in a script calling django.setup() each broadcast."""
    await make_series()
    client, [key] = await subscribed(daphne, "2026-W48")
    run_script(
        """
        from datetime import datetime, timezone
        from metrics.models import Metric, Series
        from streaming.publish.publisher import publisher

        cpu = Series.objects.get(slug="cpu")
        at = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
        metric = Metric.objects.create(series=cpu, timestamp=at, value=1.5)
        publisher.flush()
        metric.value = 2.5
        metric.save()
        publisher.flush()
        metric.delete()
        """,
        use_redis,
    )
    await client.wait_for(lambda c: len(updates(c, key)) == 3)
    assert [u["payload"]["values"][5] for u in updates(client, key)] == [1.5, 2.5, None]
    versions = [u["version"] for u in updates(client, key)]
    assert versions == sorted(set(versions))
    await client.close()


def test_a_script_that_only_reads_starts_no_broadcaster(use_redis):
    """
    Tests that a process that reads observed models but writes none, with Redis configured,
    starts no sender thread and imports no channel layer backend: the broadcaster warms up
    at a process's first write, and costs a reader nothing.
    """
    Series.objects.create(slug="cpu", name="CPU", unit="%", aggregation="avg")
    out = run_script(
        """
        import json, sys, threading
        from metrics.models import Metric, Series
        from streaming.publish.publisher import publisher

        list(Series.objects.all()), list(Metric.objects.all())
        publisher.flush()
        threads = [t.name for t in threading.enumerate()]
        print(json.dumps([threads, "channels_redis" in sys.modules]))
        """,
        use_redis,
    )
    threads, imported = json.loads(out.strip().splitlines()[-1])
    assert "streaming-publisher" not in threads
    assert imported is False


async def test_orm_write_from_manage_py_shell_broadcasts(daphne, use_redis):
    """Tests that a save typed into `manage.py shell` reaches the subscriber."""
    await make_series()
    client, [key] = await subscribed(daphne, "2026-W48")
    code = (
        "from datetime import datetime, timezone; from metrics.models import Metric, Series; "
        "Metric.objects.create(series=Series.objects.get(slug='cpu'), "
        "timestamp=datetime(2026, 11, 23, 6, tzinfo=timezone.utc), value=3.25)"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=process_env(use_redis),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    await client.wait_for(lambda c: c.payload(key)["values"][0] == 3.25)
    await client.close()


async def test_orm_writes_from_a_management_command_broadcast(daphne, use_redis):
    """Tests that `manage.py simulate --count 3` writes reach a subscriber of this week."""
    cpu = await make_series()
    client, [key] = await subscribed(daphne, None)
    args = ["simulate", "--count", "3", "--rate", "50", "--series", "cpu"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(use_redis),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Stopped after 3 writes" in result.stdout
    metrics = await sync_to_async(list)(cpu.metrics.all())
    assert len(metrics) == 3
    today = IsoWeek.current().days.index(timezone.localdate())
    total = sum(m.value for m in metrics)
    await client.wait_for(lambda c: abs((c.payload(key)["values"][today] or 0) - total) < 1e-9)
    assert client.payload(key)["week"] == str(IsoWeek.current())
    await client.close()


class Rollback(Exception):
    """Raised to roll a transaction back."""


async def test_rolled_back_transaction_sends_nothing(daphne):
    """Tests that a rolled-back write sends nothing, while a later committed one arrives."""
    cpu = await make_series()
    client, [rolled_back, sentinel] = await subscribed(daphne, "2026-W48", "2026-W49")

    def write() -> None:
        with contextlib.suppress(Rollback), transaction.atomic():
            Metric.objects.create(series=cpu, timestamp=noon(48, 2), value=1.0)
            Metric.objects.create(series=cpu, timestamp=noon(48, 3), value=1.0)
            raise Rollback
        Metric.objects.create(series=cpu, timestamp=noon(49, 2), value=2.0)

    await sync_to_async(write)()
    await client.wait_for(lambda c: c.payload(sentinel)["values"][1] == 2.0)
    assert updates(client, rolled_back) == []
    assert client.payload(rolled_back)["values"] == [None] * 7
    assert await sync_to_async(Metric.objects.count)() == 1
    await client.close()


async def test_saves_in_one_atomic_block_send_one_message_per_key(daphne):
    """Tests that five saves over two keys in one transaction send exactly one message each."""
    cpu = await make_series()
    client, [w48, w49, sentinel] = await subscribed(daphne, "2026-W48", "2026-W49", "2026-W50")

    def write() -> None:
        with transaction.atomic():
            first = Metric.objects.create(series=cpu, timestamp=noon(48, 1), value=1.0)
            Metric.objects.create(series=cpu, timestamp=noon(48, 2), value=2.0)
            first.value = 5.0
            first.save()
            Metric.objects.create(series=cpu, timestamp=noon(49, 1), value=3.0)
            Metric.objects.create(series=cpu, timestamp=noon(49, 2), value=4.0)
        Metric.objects.create(series=cpu, timestamp=noon(50, 1), value=9.0)

    await sync_to_async(write)()
    await client.wait_for(lambda c: c.payload(sentinel)["values"][0] == 9.0)
    assert [u["payload"]["values"][:2] for u in updates(client, w48)] == [[5.0, 2.0]]
    assert [u["payload"]["values"][:2] for u in updates(client, w49)] == [[3.0, 4.0]]
    await client.close()
