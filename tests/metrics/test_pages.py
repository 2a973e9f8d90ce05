"""The pages: the dashboard of visible series and one series' week with navigation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek

pytestmark = pytest.mark.django_db


@pytest.fixture
def series() -> dict[str, Series]:
    """Returns two public series (cpu has data this week and in 2025-W10) and a private one."""
    cpu = Series.objects.create(slug="cpu", name="CPU load", unit="%", aggregation="avg")
    Series.objects.create(slug="requests", name="HTTP requests", aggregation="sum")
    revenue = Series.objects.create(slug="revenue", name="Revenue", is_public=False)
    Metric.objects.create(series=cpu, timestamp=datetime.now(UTC), value=42.0)
    Metric.objects.create(series=cpu, timestamp=datetime(2025, 3, 4, tzinfo=UTC), value=7.0)
    Metric.objects.create(series=revenue, timestamp=datetime.now(UTC), value=1000.0)
    return {"cpu": cpu, "revenue": revenue}


def embedded(html: str) -> dict[str, dict]:
    """Returns the payloads embedded with json_script, by series slug."""
    found = re.findall(
        r'<script id="payload-([\w-]+)" type="application/json">(.*?)</script>', html
    )
    return {slug: json.loads(text) for slug, text in found}


def canvases(html: str) -> list[dict[str, str]]:
    """Returns the data-* attributes of each chart canvas."""
    return [
        dict(re.findall(r'data-([\w-]+)="([^"]*)"', tag))
        for tag in re.findall(r"<canvas[^>]*>", html)
    ]


def viewer() -> Client:
    """Returns a client logged in as a user with metrics.view_series."""
    user = User.objects.create_user("viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_series"))
    client = Client()
    client.force_login(user)
    return client


def test_dashboard_lists_visible_series_with_a_live_chart_each(client, series):
    """Tests that / has one canvas per public series, subscribed to this week's stream key."""
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    week = str(IsoWeek.current())
    assert [(c["series"], c["stream"], c["week"]) for c in canvases(html)] == [
        ("cpu", "metrics.week", week),
        ("requests", "metrics.week", week),
    ]
    assert "CPU load" in html
    assert "HTTP requests" in html
    assert 'id="connection-status"' in html


def test_dashboard_embeds_each_series_week_payload(client, series):
    """Tests that each chart's initial data is the selector's payload, as JSON in the page."""
    payloads = embedded(client.get("/").content.decode())
    assert set(payloads) == {"cpu", "requests"}
    assert payloads["cpu"] == series_week(series=series["cpu"], week=IsoWeek.current())
    assert 42.0 in payloads["cpu"]["values"]
    assert payloads["requests"]["values"] == [None] * 7


def test_dashboard_says_when_there_are_no_series(client):
    """Tests that an empty dashboard explains how to get data."""
    html = client.get("/").content.decode()
    assert "No series yet" in html
    assert "<canvas" not in html


def test_series_page_shows_the_asked_week_with_navigation(client, series):
    """Tests that /series/<slug>/?week= shows that week with previous, next and current links."""
    response = client.get("/series/cpu/", {"week": "2025-W10"})
    assert response.status_code == 200
    html = response.content.decode()
    assert embedded(html)["cpu"] == series_week(series=series["cpu"], week=IsoWeek(2025, 10))
    assert embedded(html)["cpu"]["values"][1] == 7.0
    assert [c["week"] for c in canvases(html)] == ["2025-W10"]
    assert re.search(r'id="week-previous" href="\?week=2025-W09"', html)
    assert re.search(r'id="week-next" href="\?week=2025-W11"', html)
    assert re.search(rf'id="week-current" href="\?week={IsoWeek.current()}"', html)


def test_series_page_defaults_to_the_current_week(client, series):
    """Tests that without ?week the series page shows this week, linking to its neighbours."""
    html = client.get("/series/cpu/").content.decode()
    week = IsoWeek.current()
    assert embedded(html)["cpu"]["week"] == str(week)
    assert f'href="?week={week.shift(-1)}"' in html
    assert f'href="?week={week.shift(1)}"' in html


@pytest.mark.parametrize("week", ["2026-W99", "2026-W0", "soon"])
def test_series_page_rejects_a_bad_week(client, series, week):
    """Tests that a malformed or impossible week is a 400."""
    assert client.get("/series/cpu/", {"week": week}).status_code == 400


def test_unknown_series_page_is_404(client, series):
    """Tests that a series that does not exist is a 404."""
    assert client.get("/series/nope/").status_code == 404


def test_private_series_is_hidden_from_anonymous_visitors(client, series):
    """Tests that a private series is neither on / nor reachable, and its data not embedded."""
    html = client.get("/").content.decode()
    assert "revenue" not in html
    assert "Revenue" not in html
    assert "1000" not in html
    assert client.get("/series/revenue/").status_code == 404


def test_private_series_is_hidden_from_users_without_view_permission(series):
    """Tests that logging in alone does not reveal a private series."""
    client = Client()
    client.force_login(User.objects.create_user("nobody"))
    assert "revenue" not in embedded(client.get("/").content.decode())
    assert client.get("/series/revenue/").status_code == 404


def test_private_series_is_shown_with_view_permission(series):
    """Tests that a user with metrics.view_series sees the private series and its page."""
    client = viewer()
    payloads = embedded(client.get("/").content.decode())
    assert set(payloads) == {"cpu", "requests", "revenue"}
    response = client.get("/series/revenue/")
    assert response.status_code == 200
    assert 1000.0 in embedded(response.content.decode())["revenue"]["values"]
