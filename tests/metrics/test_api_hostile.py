"""
Hostile input on the REST write endpoints: every case is a JSON 400 naming what is wrong,
never a 500, and leaves the database as it was (docs/security.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from metrics.models import Metric, Series
from metrics.parsers import too_deep

pytestmark = pytest.mark.django_db

GOOD = {"series": "cpu", "timestamp": "2026-11-24T12:00:00Z", "value": 1.5}


@pytest.fixture
def api() -> APIClient:
    """Returns a client authenticated as a user holding every metrics permission."""
    Series.objects.create(slug="cpu", name="CPU")
    Metric.objects.create(
        series=Series.objects.get(slug="cpu"), timestamp=datetime(2026, 11, 23, tzinfo=UTC), value=1
    )
    user = User.objects.create_user("writer")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="metrics"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def snapshot() -> tuple[list[tuple], list[tuple]]:
    """Returns every series and metric row, to compare before and after a request."""
    series = list(Series.objects.order_by("pk").values_list())
    metrics = list(Metric.objects.order_by("pk").values_list())
    return series, metrics


def post(api: APIClient, body: str | bytes, url: str = "/api/metrics/", **kwargs: Any) -> Any:
    """Posts a raw JSON body; returns the response."""
    return api.generic("POST", url, body, content_type="application/json", **kwargs)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"NaN"', "value"),
        ('"Infinity"', "value"),
        ('"-Infinity"', "value"),
        ('"nan"', "value"),
        ("1e309", "value"),
        ("-1e400", "value"),
        ("9" * 400, "value"),
        ('"ten"', "value"),
        ('""', "value"),
        ("null", "value"),
        ("true", "value"),
        ("[1]", "value"),
        ('{"v": 1}', "value"),
    ],
)
def test_values_that_are_not_finite_numbers_are_400(api, raw, field):
    """Tests that NaN, Infinity, strings, out-of-range and non-scalar values are refused."""
    before = snapshot()
    response = post(api, json.dumps(GOOD).replace("1.5", raw))
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert snapshot() == before


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-24T12:00:00",
        "2026-11-24",
        "yesterday",
        "",
        "2026-13-45T00:00:00Z",
        "2026-11-24T25:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:00:00Z",
        "9999-12-31T23:59:59-01:00",
        12345,
        1e300,
        None,
        ["2026-11-24T12:00:00Z"],
    ],
)
def test_naive_unparseable_or_out_of_range_timestamps_are_400(api, timestamp):
    """Tests that naive, malformed and out-of-range timestamps get a timestamp message."""
    before = snapshot()
    response = post(api, json.dumps({**GOOD, "timestamp": timestamp}))
    assert response.status_code == 400, response.content
    assert "timestamp" in response.json()
    assert snapshot() == before


@pytest.mark.parametrize("series", ["nope", "CPU", "cpu\x00", "x" * 10_000, 5, None, ["cpu"], {}])
def test_unknown_series_are_400(api, series):
    """Tests that a series that does not exist, or cannot, gets a series message."""
    before = snapshot()
    response = post(api, json.dumps({**GOOD, "series": series}))
    assert response.status_code == 400, response.content
    assert "series" in response.json()
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"series": "cpu", "timestamp": "2026-11-24T12:00:00Z", "value": NaN}', "NaN"),
        ('{"series": "cpu", "timestamp": "2026-11-24T12:00:00Z", "value": Infinity}', "Infinity"),
        ("[" * 10_000 + "]" * 10_000, "nested"),
        ('{"a":' * 3000 + "1" + "}" * 3000, "nested"),
        (json.dumps({**GOOD, "pad": "x" * 100_000}), "too large"),
        (b'{"series": "\xff"}', "JSON parse error"),
        ("{", "JSON parse error"),
        ("", None),
        ("[]", None),
        ("null", None),
        ('"cpu"', None),
    ],
)
def test_malformed_oversized_and_deep_bodies_are_json_400s(api, body, message):
    """Tests that bad JSON, bare NaN, deep nesting and big bodies are JSON 400s, not 500s."""
    before = snapshot()
    response = post(api, body)
    assert response.status_code == 400, response.content
    detail = json.dumps(response.json())
    if message is not None:
        assert message in detail, detail
    assert snapshot() == before


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/metrics/", {**GOOD, "series": "\udc00"}),
        ("/api/metrics/", {**GOOD, "series": "cpu\ud800"}),
        ("/api/metrics/", {**GOOD, "timestamp": "2026-11-24T12:00:00Z\udfff"}),
        ("/api/metrics/", {**GOOD, "\udc00": 1}),
        ("/api/series/", {"slug": "\udc00", "name": "x"}),
        ("/api/series/", {"slug": "mem", "name": "ok", "unit": ["\ud83d"]}),
        ("/api/series/cpu/", {"name": "\udc00"}),
    ],
)
def test_lone_surrogate_escapes_are_json_400s(api, url, body):
    """Tests that a `\\udc00` escape without its pair, anywhere in a body, is a JSON 400."""
    before = snapshot()
    # ensure_ascii writes the surrogate as the escape a client would send: `\\udc00`.
    raw = json.dumps(body)
    assert "\\ud" in raw
    method = "PATCH" if url.endswith("cpu/") else "POST"
    response = api.generic(method, url, raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "lone surrogate" in response.json()["detail"]
    assert snapshot() == before


def test_surrogate_pairs_are_valid_text(api):
    """Tests that a correctly paired escape (an emoji) is accepted and stored as one character."""
    response = post(api, '{"slug": "mood", "name": "Mood \\ud83d\\ude00"}', url="/api/series/")
    assert response.status_code == 201, response.content
    assert Series.objects.get(slug="mood").name == "Mood \U0001f600"


def test_oversized_forms_and_multipart_bodies_are_json_400s(api):
    """Tests that the browsable API's form encodings are capped like JSON bodies."""
    before = snapshot()
    form = api.generic(
        "POST",
        "/api/metrics/",
        "value=1&pad=" + "x" * 100_000,
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 400
    assert "too large" in form.json()["detail"]
    multipart = api.post("/api/metrics/", {"series": "cpu", "pad": "x" * 100_000})
    assert multipart.status_code == 400
    assert "too large" in multipart.json()["detail"]
    assert snapshot() == before


def test_hostile_updates_leave_the_row_as_it_was(api):
    """Tests that a PUT or PATCH with a bad field changes nothing, not even the good fields."""
    metric = Metric.objects.get()
    before = snapshot()
    url = f"/api/metrics/{metric.pk}/"
    bad = {**GOOD, "value": 7.0, "timestamp": "2026-11-24T12:00:00"}
    assert api.put(url, bad, format="json").status_code == 400
    assert api.patch(url, {"value": 7.0, "timestamp": "nope"}, format="json").status_code == 400
    assert (
        api.patch(url, {"value": "NaN", "timestamp": GOOD["timestamp"]}, format="json").status_code
        == 400
    )
    assert snapshot() == before


def test_depth_scan_ignores_brackets_inside_strings():
    """Tests that the nesting cap counts structure, not bracket characters in strings."""
    assert not too_deep(json.dumps({"text": "[" * 100 + '\\"{' * 100}).encode())
    assert too_deep(b"[" * 21 + b"]" * 21)
    assert not too_deep(b"[" * 20 + b"]" * 20)


# Any code point, lone surrogates included: json.dumps writes those as `\\udXXX` escapes.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
timestamps = (
    st.sampled_from(
        ["2026-11-24T12:00:00Z", "2026-11-24T12:00:00", "9999-12-31T23:00:00Z", "2026-02-30T00:00Z"]
    )
    | st.datetimes().map(lambda d: d.isoformat())
    | json_values
)
metric_bodies = st.fixed_dictionaries(
    {},
    optional={
        "series": st.sampled_from(["cpu", "nope", "", "cpu\x00"]) | json_values,
        "timestamp": timestamps,
        "value": st.floats() | st.integers() | json_values,
        "id": json_values,
    },
)
series_bodies = st.fixed_dictionaries(
    {},
    optional={
        "slug": st.sampled_from(["cpu", "mem", "bad slug", "x" * 51]) | json_values,
        "name": st.text(max_size=210) | json_values,
        "unit": st.text(max_size=25) | json_values,
        "aggregation": st.sampled_from(["sum", "avg", "median"]) | json_values,
        "is_public": st.booleans() | json_values,
    },
)
requests = st.one_of(
    st.tuples(st.sampled_from(["POST", "PUT", "PATCH"]), st.just("metric"), metric_bodies),
    st.tuples(st.sampled_from(["POST", "PATCH"]), st.just("series"), series_bodies),
    st.tuples(
        st.sampled_from(["POST", "PATCH"]), st.sampled_from(["metric", "series"]), json_values
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_write_endpoints_never_fail_and_400s_change_nothing(api, request):
    """Tests that random bodies on writes get 2xx, 400 or 404, never 5xx; errors write nothing."""
    method, kind, body = request
    if kind == "metric":
        url = "/api/metrics/" if method == "POST" else f"/api/metrics/{Metric.objects.first().pk}/"
    else:
        url = "/api/series/" if method == "POST" else "/api/series/cpu/"
    before = snapshot()
    # Python writes NaN and Infinity bare, as a careless client would.
    response = api.generic(method, url, json.dumps(body), content_type="application/json")
    # A PATCH may have renamed `cpu` in an earlier example: then it is gone (404).
    assert response.status_code in (200, 201, 400, 404), (body, response.content)
    assert response["Content-Type"].startswith("application/json")
    if response.status_code in (400, 404):
        assert snapshot() == before
