"""The Django admin of series and metrics: lists, filters, date hierarchy, search, forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from metrics.models import Metric, Series

pytestmark = pytest.mark.django_db

METRICS = "/admin/metrics/metric/"
SERIES = "/admin/metrics/series/"


@pytest.fixture
def data() -> dict[str, Series]:
    """Returns two series: cpu with metrics in November and December 2026, ram with one."""
    cpu = Series.objects.create(slug="cpu", name="CPU load", unit="%", aggregation="avg")
    ram = Series.objects.create(slug="ram", name="Memory", aggregation="max", is_public=False)
    for month, day, value in [(11, 24, 1.25), (11, 25, 2.5), (12, 1, 3.75)]:
        Metric.objects.create(
            series=cpu, timestamp=datetime(2026, month, day, tzinfo=UTC), value=value
        )
    Metric.objects.create(series=ram, timestamp=datetime(2026, 11, 24, tzinfo=UTC), value=64.0)
    return {"cpu": cpu, "ram": ram}


def listed(client: Client, url: str, **params: str) -> list:
    """Returns the objects on an admin changelist page."""
    response = client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_admin_is_staff_only(client, data):
    """Tests that anonymous visitors are sent to the admin login page."""
    response = client.get(METRICS)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_series_changelist_displays_filters_and_searches(admin_client, data):
    """Tests that the series list shows its columns, filters, and searches slug or name."""
    html = admin_client.get(SERIES).content.decode()
    for column in ("slug", "name", "unit", "aggregation", "is_public"):
        assert f"column-{column}" in html
    assert [s.slug for s in listed(admin_client, SERIES, is_public__exact="0")] == ["ram"]
    assert [s.slug for s in listed(admin_client, SERIES, q="memory")] == ["ram"]
    assert [s.slug for s in listed(admin_client, SERIES, aggregation__exact="avg")] == ["cpu"]


def test_metric_changelist_displays_series_and_values(admin_client, data):
    """Tests that the metric list shows timestamp, series and value columns."""
    html = admin_client.get(METRICS).content.decode()
    for column in ("timestamp", "series", "value"):
        assert f"column-{column}" in html
    assert "CPU load" in html
    assert "3.75" in html


def test_metric_changelist_filters_by_series(admin_client, data):
    """Tests that metrics are filtered by series."""
    ram = data["ram"]
    assert [m.value for m in listed(admin_client, METRICS, series__id__exact=str(ram.pk))] == [64.0]
    assert len(listed(admin_client, METRICS, series__id__exact=str(data["cpu"].pk))) == 3


def test_metric_changelist_has_a_date_hierarchy(admin_client, data):
    """Tests that the timestamp date hierarchy drills down to a month and a day."""
    html = admin_client.get(METRICS).content.decode()
    assert "timestamp__year=2026" in html
    assert len(listed(admin_client, METRICS, timestamp__year="2026", timestamp__month="12")) == 1
    day = {"timestamp__year": "2026", "timestamp__month": "11", "timestamp__day": "24"}
    assert sorted(m.value for m in listed(admin_client, METRICS, **day)) == [1.25, 64.0]


def test_metric_changelist_searches_by_series(admin_client, data):
    """Tests that searching metrics matches their series' slug or name."""
    assert len(listed(admin_client, METRICS, q="ram")) == 1
    assert len(listed(admin_client, METRICS, q="CPU load")) == 3


def test_series_autocomplete_serves_the_metric_form(admin_client, data):
    """Tests that the metric form's series autocomplete finds a series by search."""
    params = {"term": "mem", "app_label": "metrics", "model_name": "metric", "field_name": "series"}
    response = admin_client.get("/admin/autocomplete/", params)
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Memory"]


def test_metric_add_change_delete_through_the_admin(admin_client, data):
    """Tests that the admin forms create, change and delete a metric."""
    cpu = data["cpu"]
    form = {
        "series": cpu.pk,
        "timestamp_0": "2026-11-26",
        "timestamp_1": "08:30:00",
        "value": "4.5",
    }
    assert admin_client.get(f"{METRICS}add/").status_code == 200
    response = admin_client.post(f"{METRICS}add/", {**form, "_save": "Save"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    metric = Metric.objects.get(value=4.5)
    assert metric.timestamp == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)

    change = f"{METRICS}{metric.pk}/change/"
    assert admin_client.get(change).status_code == 200
    response = admin_client.post(change, {**form, "value": "5.5", "_save": "Save"})
    assert response.status_code == 302
    metric.refresh_from_db()
    assert metric.value == 5.5

    delete = f"{METRICS}{metric.pk}/delete/"
    assert admin_client.get(delete).status_code == 200
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Metric.objects.filter(pk=metric.pk).exists()


def test_series_add_form_prepopulates_and_validates(admin_client, data):
    """Tests that adding a series works and a duplicate slug is a form error."""
    form = {"slug": "disk", "name": "Disk", "unit": "GB", "aggregation": "last", "is_public": "on"}
    assert admin_client.post(f"{SERIES}add/", form).status_code == 302
    assert Series.objects.get(slug="disk").aggregation == "last"
    response = admin_client.post(f"{SERIES}add/", {**form, "slug": "cpu"})
    assert response.status_code == 200
    assert "slug" in response.context["adminform"].form.errors


# Visibility: the rule of the REST API and the socket (metrics/selectors.py)


def staff(*codenames: str) -> Client:
    """Returns a client logged in as a staff user holding only the named metrics permissions."""
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="metrics", codename__in=codenames)
    assert perms.count() == len(codenames)
    user.user_permissions.add(*perms)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def editor() -> Client:
    """Returns staff who may edit metrics and series but lack metrics.view_series."""
    metric = [f"{action}_metric" for action in ("view", "add", "change", "delete")]
    return staff(*metric, "add_series", "change_series")


def series_filter_choices(client: Client) -> list[str]:
    """Returns the labels the metric changelist's series filter offers."""
    response = client.get(METRICS)
    assert response.status_code == 200
    (spec,) = response.context["cl"].filter_specs
    return [label for _, label in spec.lookup_choices]


def test_metric_changelist_hides_private_series_from_staff_without_view_series(editor, data):
    """Tests that the list, its series filter, search and dates show no private metric."""
    # A second public series: the admin hides a filter with a single choice.
    Series.objects.create(slug="disk", name="Disk", is_public=True)
    assert sorted(m.value for m in listed(editor, METRICS)) == [1.25, 2.5, 3.75]
    assert series_filter_choices(editor) == ["CPU load", "Disk"]
    assert "Memory" not in editor.get(METRICS).content.decode()
    assert listed(editor, METRICS, series__id__exact=str(data["ram"].pk)) == []
    assert listed(editor, METRICS, q="ram") == []
    day = {"timestamp__year": "2026", "timestamp__month": "11", "timestamp__day": "24"}
    assert [m.value for m in listed(editor, METRICS, **day)] == [1.25]


def test_private_metric_pages_answer_as_for_a_deleted_object(editor, data):
    """Tests that a private metric's change, delete and history pages redirect, as if deleted."""
    hidden = data["ram"].metrics.get()
    for page in ("change", "delete", "history"):
        response = editor.get(f"{METRICS}{hidden.pk}/{page}/")
        assert response.status_code == 302, page
        assert response["Location"] == "/admin/"
    form = {"series": data["cpu"].pk, "timestamp_0": "2026-11-24", "timestamp_1": "00:00:00"}
    editor.post(f"{METRICS}{hidden.pk}/change/", {**form, "value": "1"})
    editor.post(f"{METRICS}{hidden.pk}/delete/", {"post": "yes"})
    hidden.refresh_from_db()
    assert (hidden.series, hidden.value) == (data["ram"], 64.0)


def test_metric_form_offers_and_accepts_only_visible_series(editor, data):
    """Tests that the series dropdown lists public series only and a private pk is refused."""
    response = editor.get(f"{METRICS}add/")
    choices = response.context["adminform"].form.fields["series"].queryset
    assert [s.slug for s in choices] == ["cpu"]
    assert "Memory" not in response.content.decode()
    form = {"timestamp_0": "2026-11-26", "timestamp_1": "08:30:00", "value": "4.5"}
    refused = editor.post(f"{METRICS}add/", {**form, "series": data["ram"].pk})
    assert refused.status_code == 200
    assert "series" in refused.context["adminform"].form.errors
    assert data["ram"].metrics.count() == 1
    assert editor.post(f"{METRICS}add/", {**form, "series": data["cpu"].pk}).status_code == 302
    assert data["cpu"].metrics.count() == 4


def test_series_admin_hides_private_series_from_staff_without_view_series(editor, data):
    """Tests that the series list, search, autocomplete and change page hide a private series."""
    assert [s.slug for s in listed(editor, SERIES)] == ["cpu"]
    assert listed(editor, SERIES, q="memory") == []
    assert "Memory" not in editor.get(SERIES).content.decode()
    response = editor.get(f"{SERIES}{data['ram'].pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    params = {"term": "", "app_label": "metrics", "model_name": "metric", "field_name": "series"}
    results = editor.get("/admin/autocomplete/", params).json()["results"]
    assert [r["text"] for r in results] == ["CPU load"]


def test_the_slug_space_is_shared_with_private_series(editor, data):
    """Tests that a private series' slug is reported taken: slugs are unique across series."""
    form = {"slug": "ram", "name": "Mine", "unit": "", "aggregation": "sum"}
    response = editor.post(f"{SERIES}add/", form)
    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors["slug"])
    assert Series.objects.filter(slug="ram").get() == data["ram"]


def test_view_series_permission_shows_staff_the_private_series(data):
    """Tests that staff with metrics.view_series see private series and their metrics."""
    viewer = staff("view_metric", "view_series")
    assert sorted(m.value for m in listed(viewer, METRICS)) == [1.25, 2.5, 3.75, 64.0]
    assert series_filter_choices(viewer) == ["CPU load", "Memory"]
    assert sorted(s.slug for s in listed(viewer, SERIES)) == ["cpu", "ram"]
    assert viewer.get(f"{METRICS}{data['ram'].metrics.get().pk}/change/").status_code == 200
