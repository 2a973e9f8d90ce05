"""The REST API: series and metrics by slug, the week endpoint, permissions, auth, validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek

pytestmark = pytest.mark.django_db

WEEK_KEYS = {"series", "week", "labels", "values", "unit", "aggregation"}


def grant(user: User, *codenames: str) -> User:
    """Gives `user` the metrics permissions named by codename; returns a fresh copy."""
    perms = Permission.objects.filter(content_type__app_label="metrics", codename__in=codenames)
    assert perms.count() == len(codenames)
    user.user_permissions.add(*perms)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def cpu() -> Series:
    """Returns a public series with two metrics in 2026-W48 and one in W49."""
    series = Series.objects.create(slug="cpu", name="CPU", unit="%", aggregation="avg")
    for day, value in [(23, 1.0), (24, 3.0), (30, 9.0)]:
        Metric.objects.create(
            series=series, timestamp=datetime(2026, 11, day, 12, tzinfo=UTC), value=value
        )
    return series


@pytest.fixture
def revenue() -> Series:
    """Returns a private series with one metric in 2026-W48."""
    series = Series.objects.create(slug="revenue", name="Revenue", is_public=False)
    Metric.objects.create(series=series, timestamp=datetime(2026, 11, 24, tzinfo=UTC), value=5.0)
    return series


@pytest.fixture
def anon() -> APIClient:
    """Returns a client with no credentials."""
    return APIClient()


@pytest.fixture
def reader() -> APIClient:
    """Returns a client logged in as a user without any metrics permission."""
    client = APIClient()
    client.force_login(User.objects.create_user("reader", password="pw"))
    return client


@pytest.fixture
def writer_user() -> User:
    """Returns a user with every metrics model permission but view_series."""
    user = User.objects.create_user("writer", password="pw")
    return grant(
        user,
        *[f"{a}_{m}" for a in ("add", "change", "delete") for m in ("metric", "series")],
    )


@pytest.fixture
def writer(writer_user: User) -> APIClient:
    """Returns a client logged in (session) as the writer."""
    client = APIClient()
    client.force_login(writer_user)
    return client


def metric_body(**overrides) -> dict:
    """Returns a valid metric POST body for series cpu, with overrides."""
    return {"series": "cpu", "timestamp": "2026-11-25T10:00:00Z", "value": 4.5, **overrides}


# Series


def test_series_list_and_retrieve_are_open_to_anonymous(anon, cpu):
    """Tests that anyone lists public series and retrieves one by slug."""
    listing = anon.get("/api/series/")
    assert listing.status_code == 200
    assert listing.json()["results"] == [
        {"slug": "cpu", "name": "CPU", "unit": "%", "aggregation": "avg", "is_public": True}
    ]
    detail = anon.get("/api/series/cpu/")
    assert detail.status_code == 200
    assert detail.json()["name"] == "CPU"


def test_series_create_update_partial_update_delete_by_slug(writer, cpu):
    """Tests that a series is created, updated, patched and deleted by its slug."""
    body = {"slug": "ram", "name": "RAM", "unit": "GB", "aggregation": "max", "is_public": True}
    created = writer.post("/api/series/", body, format="json")
    assert created.status_code == 201, created.content
    assert Series.objects.get(slug="ram").aggregation == "max"

    body.update(name="Memory", aggregation="min")
    updated = writer.put("/api/series/ram/", body, format="json")
    assert updated.status_code == 200, updated.content
    assert Series.objects.get(slug="ram").name == "Memory"

    patched = writer.patch("/api/series/ram/", {"unit": "MB"}, format="json")
    assert patched.status_code == 200
    assert patched.json() == {
        "slug": "ram",
        "name": "Memory",
        "unit": "MB",
        "aggregation": "min",
        "is_public": True,
    }

    assert writer.delete("/api/series/ram/").status_code == 204
    assert not Series.objects.filter(slug="ram").exists()
    assert writer.get("/api/series/ram/").status_code == 404


def test_series_create_rejects_bad_fields(writer, cpu):
    """Tests that a duplicate slug and an unknown aggregation get 400 with field messages."""
    response = writer.post(
        "/api/series/", {"slug": "cpu", "name": "x", "aggregation": "median"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"slug", "aggregation"}


# Metrics


def test_metrics_list_is_filterable_by_series_and_week(anon, cpu):
    """Tests that /api/metrics/ filters by series slug and by ISO week."""
    ram = Series.objects.create(slug="ram", name="RAM")
    Metric.objects.create(series=ram, timestamp=datetime(2026, 11, 24, tzinfo=UTC), value=7.0)

    everything = anon.get("/api/metrics/").json()
    assert everything["count"] == 4
    by_series = anon.get("/api/metrics/", {"series": "cpu"}).json()["results"]
    assert sorted(m["value"] for m in by_series) == [1.0, 3.0, 9.0]
    assert {m["series"] for m in by_series} == {"cpu"}
    by_week = anon.get("/api/metrics/", {"series": "cpu", "week": "2026-W48"}).json()["results"]
    assert sorted(m["value"] for m in by_week) == [1.0, 3.0]
    assert anon.get("/api/metrics/", {"week": "2026-W49"}).json()["count"] == 1
    bad = anon.get("/api/metrics/", {"week": "2026-W99"})
    assert bad.status_code == 400
    assert "week" in bad.json()


def test_metric_create_retrieve_update_partial_update_delete(writer, cpu):
    """Tests that a metric is created, read, updated, patched and deleted; series as slug."""
    Series.objects.create(slug="ram", name="RAM")
    created = writer.post("/api/metrics/", metric_body(), format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["series"] == "cpu"
    assert data["value"] == 4.5
    metric = Metric.objects.get(pk=data["id"])
    assert metric.timestamp == datetime(2026, 11, 25, 10, tzinfo=UTC)

    url = f"/api/metrics/{metric.pk}/"
    assert writer.get(url).json() == data

    put = writer.put(url, metric_body(series="ram", value=6.0), format="json")
    assert put.status_code == 200, put.content
    metric.refresh_from_db()
    assert (metric.series.slug, metric.value) == ("ram", 6.0)

    patch = writer.patch(url, {"value": 2.0}, format="json")
    assert patch.status_code == 200
    assert patch.json()["series"] == "ram"
    metric.refresh_from_db()
    assert metric.value == 2.0

    assert writer.delete(url).status_code == 204
    assert not Metric.objects.filter(pk=metric.pk).exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"series": "nope"}, "series"),
        ({"series": "c\x00pu"}, "series"),
        ({"series": ["cpu"]}, "series"),
        ({"series": None}, "series"),
        ({"value": "NaN"}, "value"),
        ({"value": "Infinity"}, "value"),
        ({"value": "many"}, "value"),
        ({"timestamp": "2026-11-25T10:00:00"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_invalid_metric_input_is_400_with_field_messages(writer, cpu, override, field):
    """Tests that unknown series, non-finite values and naive timestamps are field errors."""
    response = writer.post("/api/metrics/", metric_body(**override), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert errors[field]
    assert all(isinstance(m, str) and m for m in errors[field])
    assert Metric.objects.count() == 3


def test_values_that_cannot_be_slugs_find_nothing(anon, cpu):
    """Tests that a NUL byte or a non-slug in a filter or a URL finds nothing (no 500)."""
    for slug in ("\x00", "c\x00pu", "cpu%", "x" * 51):
        response = anon.get("/api/metrics/", {"series": slug})
        assert response.status_code == 200
        assert response.json()["count"] == 0
    assert anon.get("/api/series/%00/").status_code == 404
    assert anon.get("/api/series/c%00pu/week/").status_code == 404


def test_missing_metric_fields_are_400_with_field_messages(writer, cpu):
    """Tests that an empty body names each required field."""
    response = writer.post("/api/metrics/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"series", "timestamp", "value"}


# The week endpoint


def test_week_endpoint_returns_the_selector_payload(anon, cpu):
    """Tests that /api/series/<slug>/week/?week= returns exactly the week payload."""
    response = anon.get("/api/series/cpu/week/", {"week": "2026-W48"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == WEEK_KEYS
    assert body == {
        "series": "cpu",
        "week": "2026-W48",
        "labels": [f"2026-11-{d}" for d in range(23, 30)],
        "values": [1.0, 3.0, None, None, None, None, None],
        "unit": "%",
        "aggregation": "avg",
    }


def test_week_endpoint_defaults_to_the_current_week(anon, cpu):
    """Tests that without ?week the endpoint answers for this week."""
    body = anon.get("/api/series/cpu/week/").json()
    assert body == series_week(series=cpu, week=IsoWeek.current())
    assert body["week"] == str(IsoWeek.current())


@pytest.mark.parametrize("week", ["2026-W99", "2026-W00", "2026-48", "", "x" * 100])
def test_week_endpoint_rejects_a_bad_week(anon, cpu, week):
    """Tests that a malformed or impossible week is a 400 naming the `week` field."""
    response = anon.get("/api/series/cpu/week/", {"week": week})
    assert response.status_code == 400
    assert response.json()["week"][0]


def test_week_endpoint_of_unknown_series_is_404(anon):
    """Tests that the week of a series that does not exist is 404."""
    assert anon.get("/api/series/nope/week/").status_code == 404


def test_week_endpoint_answers_the_json_format_suffix(anon, cpu, revenue):
    """Tests that /week.json returns the same JSON as /week/, and 404s what /week/ 404s."""
    params = {"week": "2026-W48"}
    suffixed = anon.get("/api/series/cpu/week.json", params)
    assert suffixed.status_code == 200
    assert suffixed["Content-Type"].startswith("application/json")
    assert suffixed.json() == anon.get("/api/series/cpu/week/", params).json()
    for url in ("/api/series/revenue/week.json", "/api/series/nope/week.json"):
        missing = anon.get(url)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No Series matches the given query."}


@pytest.mark.parametrize(
    "url",
    [
        "/api/.json",
        "/api/series.json",
        "/api/series/cpu.json",
        "/api/series/cpu/week.json",
        "/api/metrics.json",
    ],
)
def test_every_route_answers_its_format_suffixes(anon, cpu, url):
    """Tests that each router route serves `.json` as JSON and `.api` as the browsable API."""
    response = anon.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    browsable = anon.get(url.removesuffix(".json") + ".api")
    assert browsable.status_code == 200
    assert b"Django REST framework" in browsable.content


# Visibility


def test_private_series_are_hidden_from_anonymous(anon, cpu, revenue):
    """Tests that anonymous users neither list nor find a private series or its metrics."""
    assert [s["slug"] for s in anon.get("/api/series/").json()["results"]] == ["cpu"]
    assert anon.get("/api/series/revenue/").status_code == 404
    assert anon.get("/api/series/revenue/week/", {"week": "2026-W48"}).status_code == 404
    metrics = anon.get("/api/metrics/").json()["results"]
    assert {m["series"] for m in metrics} == {"cpu"}
    assert anon.get("/api/metrics/", {"series": "revenue"}).json()["count"] == 0
    hidden = revenue.metrics.get()
    assert anon.get(f"/api/metrics/{hidden.pk}/").status_code == 404


def test_private_series_are_hidden_from_users_without_view_permission(reader, revenue):
    """Tests that a logged-in user without metrics.view_series gets 404 too."""
    assert reader.get("/api/series/revenue/").status_code == 404
    assert reader.get("/api/series/").json()["count"] == 0


def test_view_permission_reveals_private_series(revenue):
    """Tests that metrics.view_series lists private series, their week and metrics."""
    user = grant(User.objects.create_user("viewer"), "view_series")
    client = APIClient()
    client.force_login(user)
    assert [s["slug"] for s in client.get("/api/series/").json()["results"]] == ["revenue"]
    week = client.get("/api/series/revenue/week/", {"week": "2026-W48"}).json()
    assert week["values"][1] == 5.0
    assert client.get("/api/metrics/", {"series": "revenue"}).json()["count"] == 1


def test_private_series_slug_cannot_be_written_to_without_view_permission(writer, revenue):
    """Tests that a writer who may not see a private series cannot post metrics into it."""
    response = writer.post("/api/metrics/", metric_body(series="revenue"), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["series"]
    assert revenue.metrics.count() == 1


def test_the_slug_space_is_shared_with_private_series(writer, revenue):
    """Tests that a private series' slug is reported taken, and nothing more of it shows."""
    body = {"slug": "revenue", "name": "Mine", "aggregation": "sum"}
    response = writer.post("/api/series/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"slug": ["series with this slug already exists."]}
    assert Series.objects.get(slug="revenue").name == "Revenue"


# Authentication and permissions


def test_anonymous_writes_are_refused(anon, cpu):
    """Tests that anonymous POST, PATCH and DELETE are refused and change nothing."""
    metric = cpu.metrics.first()
    assert anon.post("/api/metrics/", metric_body(), format="json").status_code in (401, 403)
    assert anon.patch(f"/api/metrics/{metric.pk}/", {"value": 0}).status_code in (401, 403)
    assert anon.delete(f"/api/metrics/{metric.pk}/").status_code in (401, 403)
    assert anon.delete("/api/series/cpu/").status_code in (401, 403)
    assert Metric.objects.count() == 3
    assert Series.objects.filter(slug="cpu").exists()


def test_writes_need_model_permissions(reader, cpu):
    """Tests that a logged-in user without the model permissions gets 403."""
    metric = cpu.metrics.first()
    assert reader.post("/api/metrics/", metric_body(), format="json").status_code == 403
    patch = reader.patch(f"/api/metrics/{metric.pk}/", {"value": 0}, format="json")
    assert patch.status_code == 403
    assert reader.delete("/api/series/cpu/").status_code == 403
    assert Metric.objects.count() == 3


def test_each_write_needs_its_own_permission(cpu):
    """Tests that add_metric allows creating but not deleting."""
    user = grant(User.objects.create_user("adder"), "add_metric")
    client = APIClient()
    client.force_login(user)
    created = client.post("/api/metrics/", metric_body(), format="json")
    assert created.status_code == 201
    assert client.delete(f"/api/metrics/{created.json()['id']}/").status_code == 403


def test_token_authentication_writes(writer_user, cpu):
    """Tests that `Authorization: Token <key>` authenticates a write; a bad token is refused."""
    token = Token.objects.create(user=writer_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/metrics/", metric_body(), format="json").status_code == 201
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.post("/api/metrics/", metric_body(), format="json").status_code in (401, 403)
    assert Metric.objects.count() == 4


def test_session_writes_enforce_csrf(writer_user, cpu):
    """Tests that a session write without the CSRF token is 403, and 201 with it."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(writer_user)
    refused = client.post("/api/metrics/", metric_body(), format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]

    # The browsable API's forms set the CSRF cookie, as they do for a browser.
    assert client.get("/api/metrics/", HTTP_ACCEPT="text/html").status_code == 200
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/metrics/", metric_body(), format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content
    assert Metric.objects.count() == 4


# Browsable API


@pytest.mark.parametrize(
    "url",
    ["/api/", "/api/series/", "/api/series/cpu/", "/api/series/cpu/week/", "/api/metrics/"],
)
def test_browsable_api_renders(anon, writer, cpu, url):
    """Tests that the browsable API renders HTML for anonymous visitors and for writers."""
    for client in (anon, writer):
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        assert b"Django REST framework" in response.content


def test_browsable_api_shows_writers_a_form(writer, cpu):
    """Tests that a writer gets the metric form with the visible series to choose from."""
    html = writer.get("/api/metrics/", HTTP_ACCEPT="text/html").content.decode()
    assert 'name="value"' in html
    assert '<option value="cpu"' in html
