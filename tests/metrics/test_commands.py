"""Management commands: seed_demo, demo_admin and simulate, in-process and as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from metrics.demo import DEMO_SERIES
from metrics.models import Metric, Series
from metrics.selectors import series_week
from metrics.weeks import IsoWeek
from tests.support.processes import ROOT, process_env

DEMO_SLUGS = sorted(s["slug"] for s in DEMO_SERIES)


def run(*args: str, **options) -> str:
    """Runs a management command in this process; returns what it printed."""
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def manage(*args: str) -> subprocess.Popen[str]:
    """Starts `manage.py <args>` as its own process on the test database."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db
def test_seed_demo_fills_the_current_week_of_every_demo_series():
    """Tests that after seed_demo each demo series has data this week, up to today."""
    output = run("seed_demo")
    assert "Seeded" in output
    assert sorted(Series.objects.values_list("slug", flat=True)) == DEMO_SLUGS
    week = IsoWeek.current()
    today = week.days.index(timezone.localdate())
    for series in Series.objects.all():
        values = series_week(series=series, week=week)["values"]
        assert values[today] is not None, (series.slug, values)
        assert all(v is not None for v in values[: today + 1]), (series.slug, values)


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_spares_other_series():
    """Tests that seeding twice leaves the same demo data and keeps non-demo series."""
    mine = Series.objects.create(slug="mine", name="Mine")
    run("seed_demo", weeks=2)
    counts = {s: Metric.objects.filter(series__slug=s).count() for s in DEMO_SLUGS}
    run("seed_demo", weeks=2)
    assert sorted(Series.objects.exclude(pk=mine.pk).values_list("slug", flat=True)) == DEMO_SLUGS
    assert {s: Metric.objects.filter(series__slug=s).count() for s in DEMO_SLUGS} == counts
    assert set(counts.values()) == {2 * 7 * 8 + 1}
    assert Series.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_demo_admin_prints_credentials_that_log_in(monkeypatch, settings):
    """Tests that with DEBUG on demo_admin prints a login that opens the admin, and resets it."""
    settings.DEBUG = True
    output = run("demo_admin")
    assert "'admin'" in output
    client = Client()
    assert client.login(username="admin", password="admin")
    assert client.get("/admin/").status_code == 200

    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret-demo")
    output = run("demo_admin")
    assert "'s3cret-demo'" in output
    assert not Client().login(username="admin", password="admin")
    assert Client().login(username="admin", password="s3cret-demo")


@pytest.mark.django_db
def test_demo_admin_refuses_without_debug(settings):
    """Tests that with DEBUG off (as in settings.prod) demo_admin is an error and makes no user."""
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DEBUG on"):
        run("demo_admin")
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_demo_admin_process_refuses_under_prod_settings():
    """Tests that `manage.py demo_admin` with settings.prod exits non-zero and makes no user."""
    prod = {"DJANGO_SETTINGS_MODULE": "settings.prod", "SECRET_KEY": "test-only-prod-key"}
    process = subprocess.run(
        [sys.executable, "manage.py", "demo_admin"],
        cwd=ROOT,
        env=process_env(None, **prod),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1
    assert "CommandError: demo_admin creates a superuser" in process.stderr
    assert not User.objects.exists()


@pytest.mark.django_db
def test_simulate_writes_count_metrics_for_the_chosen_series():
    """Tests that simulate --count 3 writes exactly three metrics, round-robin, for now."""
    cpu = Series.objects.create(slug="cpu", name="CPU")
    ram = Series.objects.create(slug="requests", name="Requests")
    output = run("simulate", count=3, rate=200, series="cpu,requests")
    assert "Stopped after 3 writes" in output
    assert cpu.metrics.count() == 2
    assert ram.metrics.count() == 1
    assert series_week(series=cpu, week=IsoWeek.current())["values"].count(None) == 6


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [({"series": "cpu,nope"}, "Unknown series: nope"), ({"rate": 0}, "--rate must be positive")],
)
def test_simulate_refuses_bad_options(options, message):
    """Tests that unknown series and a non-positive rate are command errors, with no write."""
    Series.objects.create(slug="cpu", name="CPU")
    with pytest.raises(CommandError, match=message):
        run("simulate", count=1, **{"series": "cpu", **options})
    assert Metric.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_simulate_process_exits_zero_after_count():
    """Tests that `manage.py simulate --count 3` as a process writes three rows and exits 0."""
    Series.objects.create(slug="cpu", name="CPU")
    process = manage("simulate", "--count", "3", "--rate", "50", "--series", "cpu")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Stopped after 3 writes" in out
    assert Metric.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_simulate_stops_cleanly_on_ctrl_c():
    """Tests that SIGINT ends an endless simulate with exit 0 and a count of its writes."""
    Series.objects.create(slug="cpu", name="CPU")
    process = manage("simulate", "--rate", "20", "--series", "cpu")
    try:
        deadline = time.monotonic() + 30
        while Metric.objects.count() < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "simulate wrote nothing"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    written = int(out.rsplit("Stopped after ", 1)[1].split()[0])
    # Ctrl-C may land between a row's commit and the counter's increment.
    assert written <= Metric.objects.count() <= written + 1


@pytest.mark.django_db
def test_demo_fixture_loads_the_demo_series_and_three_weeks():
    """Tests that `loaddata fixtures/demo.json` gives the demo series and 2026-W46..W48 data."""
    output = run("loaddata", str(ROOT / "fixtures" / "demo.json"))
    assert "Installed 425 object(s)" in output
    loaded = {
        s["slug"]: s
        for s in Series.objects.values("slug", "name", "unit", "aggregation", "is_public")
    }
    assert loaded == {s["slug"]: s for s in DEMO_SERIES}
    for series in Series.objects.all():
        for week in (46, 47, 48):
            values = series_week(series=series, week=IsoWeek(2026, week))["values"]
            assert None not in values, (series.slug, week, values)
        assert series_week(series=series, week=IsoWeek(2026, 49))["values"] == [None] * 7
    assert Metric.objects.count() == 5 * 21 * 4
